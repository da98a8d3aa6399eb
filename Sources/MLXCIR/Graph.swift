/// One instruction: an op whose fields name the values it reads and writes.
public struct Node: Hashable, Sendable {
    public var op: Op
    /// Where it came from in the file, for diagnostics (e.g. "chain 0 instruction 12").
    public var origin: String?

    public init(_ op: Op, origin: String? = nil) {
        self.op = op
        self.origin = origin
    }
}

/// A straight-line list of nodes. Block 0 is the body; others are init code or control-flow bodies
/// (`if`/`scan` name them by index).
public struct Block: Hashable, Sendable {
    public var name: String
    public var nodes: [Node]
    public init(name: String, nodes: [Node] = []) {
        self.name = name
        self.nodes = nodes
    }
}

/// The graph IR shared by both input families (plain ExecuTorch programs and MLX-delegated payloads):
/// typed values, ops from one closed set, constants as zero-copy references, persistent state.
public struct Graph: Hashable, Sendable {
    public var name: String
    public var values: [ValueInfo] = []
    public var blocks: [Block] = [Block(name: "main")]
    /// Block run once at load, before the first call (MLX init chains).
    public var initBlock: Int?
    public var inputs: [ValueID] = []
    public var outputs: [ValueID] = []

    public init(name: String) { self.name = name }

    @discardableResult
    public mutating func addValue(_ type: TensorType?, _ kind: ValueKind, name: String? = nil) -> ValueID {
        values.append(ValueInfo(type: type, kind: kind, name: name))
        return ValueID(values.count - 1)
    }

    public subscript(_ id: ValueID) -> ValueInfo {
        get { values[id.index] }
        set { values[id.index] = newValue }
    }

    public func type(_ id: ValueID) -> TensorType? { values[id.index].type }

    public var mainBlock: Block {
        get { blocks[0] }
        set { blocks[0] = newValue }
    }

    public mutating func append(_ op: Op, origin: String? = nil, block: Int = 0) {
        blocks[block].nodes.append(Node(op, origin: origin))
    }

    /// Histogram of op names over every block, for inspection and tests.
    public var opHistogram: [String: Int] {
        var counts: [String: Int] = [:]
        for block in blocks { for node in block.nodes { counts[node.op.name, default: 0] += 1 } }
        return counts
    }
}
