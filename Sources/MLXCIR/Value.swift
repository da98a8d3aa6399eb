/// An SSA value: `%N` in IR text. Tensors and scalars alike (a scalar is a rank-0 value).
public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let index: Int
    public init(_ index: Int) { self.index = index }
    public var description: String { "%\(index)" }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
}

/// Where a constant's bytes come from. The bytes themselves stay in the mapped file (zero-copy).
public enum ConstantSource: Hashable, Sendable, CustomStringConvertible {
    /// `Program.constant_segment` entry `index` (plain `.pte`).
    case constantBuffer(index: Int)
    /// `Program.named_data` / `.ptd` key (MLX weights, external constants).
    case namedData(key: String)
    /// `Program.mutable_data_segments[0]` entry `index`: the initial bytes of a mutable buffer.
    case mutableData(index: Int)
    /// A literal folded into the graph (e.g. a scalar tensor).
    case literal([Double])

    public var description: String {
        switch self {
        case .constantBuffer(let i): return "buffer(\(i))"
        case .namedData(let key): return "named(\(quoteIR(key)))"
        case .mutableData(let i): return "mutable(\(i))"
        case .literal(let xs): return "literal(\(xs.map { formatIRNumber($0) }.joined(separator: ", ")))"
        }
    }
}

/// What a value is, beyond its type.
public enum ValueKind: Hashable, Sendable {
    /// Argument `position` of the graph.
    case input(position: Int)
    /// Read-only data known at load time.
    case constant(ConstantSource)
    /// Mutable state that persists across calls (KV caches, recurrent state). `initial` names
    /// where its starting bytes come from; nil means zero-filled.
    case state(initial: ConstantSource?)
    /// Produced by a node.
    case computed
}

public struct ValueInfo: Hashable, Sendable {
    /// nil where the file does not state it (MLX temporaries); shape inference fills it in.
    public var type: TensorType?
    public var kind: ValueKind
    /// A human name from the file (FQN, slot name), if any.
    public var name: String?

    public init(type: TensorType?, kind: ValueKind, name: String? = nil) {
        self.type = type
        self.kind = kind
        self.name = name
    }
}
