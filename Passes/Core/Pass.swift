import MLXCIR

/// A graph transformation. Its kebab-case name is the handle in `--pipeline=a,b,c`, in
/// `--print-after=NAME` and in remarks; every pass can run alone on any verified graph.
public protocol GraphPass {
    var name: String { get }
    /// Rewrites the graph; returns how many changes it made (0 = nothing to do).
    func run(_ graph: inout Graph) throws -> Int
}

/// Checks the IR's structural invariants (the `Verifier`), so a pipeline can verify between passes.
public struct VerifyPass: GraphPass {
    public let name = "verify"
    public init() {}
    public func run(_ graph: inout Graph) throws -> Int {
        try Verifier.verify(graph)
        return 0
    }
}

/// Effects that keep a node alive and unmerged even when nothing reads its results.
public enum OpEffects {
    /// The node writes state in place, changes control flow, or is not a pure function of its operands.
    public static func hasSideEffects(_ node: Node, in graph: Graph) -> Bool {
        switch node.op {
        case .if, .scan, .metalKernel, .delegateCall, .randomBits, .updateAndAttend, .noop:
            return true
        default:
            return node.op.results.contains { v in
                guard graph.values.indices.contains(v.index) else { return true }
                if case .state = graph.values[v.index].kind { return true }
                return false
            } || node.op.results.isEmpty
        }
    }
}
