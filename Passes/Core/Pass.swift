import MLXCIR

/// A graph transformation with a kebab-case name, the handle used in `--pipeline=a,b,c` and dumps.
public protocol GraphPass {
    static var name: String { get }
    static var summary: String { get }
    func run(_ graph: inout Graph) throws
}

/// Checks the IR's structural invariants (the `Verifier`), so a pipeline can verify between passes.
public struct VerifyPass: GraphPass {
    public static let name = "verify"
    public static let summary = "check that every value is defined before use and defined once (state excepted)"
    public init() {}
    public func run(_ graph: inout Graph) throws { try Verifier.verify(graph) }
}

/// The one registry of passes, by name. Pipelines are strings of these names.
public enum PassRegistry {
    public static let all: [any GraphPass.Type] = [VerifyPass.self]

    public static func pass(named name: String) -> (any GraphPass.Type)? { all.first { $0.name == name } }
}
