/// A malformed op or graph in IR text or in a hand-built op: names the op (and field) at fault.
public struct IRError: Error, CustomStringConvertible, Equatable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
