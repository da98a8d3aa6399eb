/// Everything the frontend can reject in a file. Each case names what was being read and where,
/// so a corrupt file is diagnosed from the message alone.
public struct FormatError: Error, CustomStringConvertible, Equatable {
    /// The file, schema table or structure being read, e.g. `Program`, `Tensor.sizes`, `MLX0 header`.
    public var context: String
    /// Absolute byte offset in the file (or in the payload, when `space` says so).
    public var offset: Int
    public var message: String
    /// Where `offset` counts from: "" for the file itself, else e.g. "MLX payload of delegate 0".
    public var space: String

    public init(_ context: String, at offset: Int, _ message: String, space: String = "") {
        self.context = context
        self.offset = offset
        self.message = message
        self.space = space
    }

    public var description: String {
        let whereText = space.isEmpty ? "byte \(offset)" : "byte \(offset) of \(space)"
        return "\(context) at \(whereText): \(message)"
    }
}
