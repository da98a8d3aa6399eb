import MLXCCodegen
import MLXCIR

extension ElementType {
    /// The kernels' element type for a dtype (nil for quantized and fp8 formats).
    init?(_ d: DType) {
        switch d {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f64: self = .f64
        case .i8: self = .i8
        case .u8: self = .u8
        case .bool: self = .bool
        case .i16: self = .i16
        case .i32: self = .i32
        case .i64: self = .i64
        case .u32: self = .u32
        default: return nil
        }
    }
}

/// What one call of a kernel needs, worked out from its operands' shapes (and run-time scalars).
struct CallLayout {
    var shapes: [[Int]]
    var dims: [Int64]
    var work: Int
}

/// The layout of the last call, reused while the operands' shapes and scalars stay the same (a
/// decode step repeats the previous step's shapes). `execute` asks for shapes, dims and work in turn.
final class LayoutMemo {
    private var key: [Int] = [Int.min]
    private var value: CallLayout?

    /// The raw bits of a scalar's first element (ints and floats alike).
    static func bits(_ t: NativeTensor) -> Int {
        guard t.count > 0 else { return Int.min }
        switch t.dtype.byteSize {
        case 1: return Int(t.data.load(as: UInt8.self))
        case 2: return Int(t.data.load(as: UInt16.self))
        case 4: return Int(t.data.load(as: UInt32.self))
        default: return Int(t.data.load(as: Int64.self))
        }
    }

    func get(_ inputs: [NativeTensor], scalars: [Int], _ make: ([NativeTensor]) -> CallLayout?) -> CallLayout? {
        if matches(inputs, scalars) { return value }
        var k: [Int] = []
        k.reserveCapacity(inputs.count * 5 + scalars.count)
        for t in inputs { k.append(t.shape.count); k.append(contentsOf: t.shape) }
        for i in scalars { k.append(Self.bits(inputs[i])) }
        key = k
        value = make(inputs)
        return value
    }

    /// Whether this call's shapes and scalars are the last call's, compared in place (a decode step
    /// asks once per launch: building a key array to compare would allocate every time).
    private func matches(_ inputs: [NativeTensor], _ scalars: [Int]) -> Bool {
        var at = 0
        for t in inputs {
            guard at < key.count, key[at] == t.shape.count, at + t.shape.count < key.count else { return false }
            at += 1
            for d in t.shape {
                guard key[at] == d else { return false }
                at += 1
            }
        }
        for i in scalars {
            guard at < key.count, key[at] == Self.bits(inputs[i]) else { return false }
            at += 1
        }
        return at == key.count
    }
}

extension Lowerings {
    /// A launch whose shapes, dims and work come from `plan` (nil: this call falls back to the
    /// reference, which also reports invalid shapes with its own message). `scalars` are the operands
    /// whose values the plan reads; `check` runs on every call (for plans that read tensor contents,
    /// such as index bounds) and falls back when it fails.
    /// `absorbs` are results of other nodes the kernel computes or reads through (folded away);
    /// `fallbackNodes` is then what the reference runs instead of a call the kernel cannot take.
    static func launch(_ definition: KernelDefinition, _ node: Node, operands: [ValueID], results: [ValueID],
                       resultDTypes: [DType], operandDTypes: [DType?], grain: Int, inPlace: [Int: Int] = [:],
                       scalars: [Int] = [], check: (([NativeTensor]) -> Bool)? = nil,
                       absorbs: Set<ValueID> = [], fallbackNodes: [Node]? = nil, constantOperands: [NativeTensor?] = [],
                       plan: @escaping ([NativeTensor]) -> CallLayout?) -> LoweredKernel {
        LoweredKernel(definition: definition, absorbs: absorbs) { function in
            let memo = LayoutMemo()
            func get(_ inputs: [NativeTensor]) -> CallLayout? { memo.get(inputs, scalars: scalars, plan) }
            let launch = KernelLaunch(name: definition.name, function: function, operands: operands, results: results,
                                resultDTypes: resultDTypes,
                                resultShapes: { inputs in
                                    guard let p = get(inputs) else { throw ReferenceError("\(definition.name): no layout") }
                                    return p.shapes
                                },
                                dims: { get($0)?.dims ?? [] }, work: { get($0)?.work ?? 0 }, grain: grain, inPlace: inPlace,
                                operandDTypes: operandDTypes,
                                accepts: { inputs in get(inputs) != nil && (check?(inputs) ?? true) }, node: node,
                                fallbackNodes: fallbackNodes)
            launch.constantOperands = constantOperands
            launch.layout = get
            launch.check = check
            return launch
        }
    }

    /// A transpose swapping dims 1 and 2 of a rank-4 f32, bf16 or f16 value (BSHD ↔ BHSD) whose
    /// result nothing but one op reads: that op's kernel can read (or write) through it instead of a
    /// copy (the reader checks its own dtypes first; the transpose keeps the dtype).
    static func headSwap(_ v: ValueID, _ c: LoweringContext) -> (source: ValueID, node: Node)? {
        guard c.useCounts[v] == 1, !c.graph.outputs.contains(v), let node = c.definingNode(v),
              case .transpose(let t) = node.op, t.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 2, 1, 3],
              c.type(t.x)?.rank == 4, let d = c.dtype(t.x), let e = ElementType(d), ElementType.activations.contains(e),
              c.constant(t.x) == nil else { return nil }
        return (t.x, node)
    }

    /// (H, sB, sH, sT) that read rows (batch, head, t) of a [B, H, T, D] view: of `t` itself, or of
    /// the [B, T, H, D] tensor `t` read through a head swap.
    static func rowStrides(_ t: NativeTensor, swapped: Bool) -> [Int64]? {
        guard t.shape.count == 4 else { return nil }
        let (b1, b2, d) = (t.shape[1], t.shape[2], t.shape[3])
        // Unswapped: H = shape[1], T = shape[2]; swapped: T = shape[1], H = shape[2].
        return swapped ? [Int64(b2), Int64(b1 * b2 * d), Int64(d), Int64(b2 * d)]
                       : [Int64(b1), Int64(b1 * b2 * d), Int64(b2 * d), Int64(d)]
    }

    /// A run-time int operand: the literal, or the index of the operand holding it (appended to `operands`).
    static func scalarOperand(_ x: IntOrValue, _ operands: inout [ValueID], _ scalars: inout [Int]) -> ([NativeTensor]) -> Int {
        switch x {
        case .literal(let n): return { _ in Int(n) }
        case .value(let v):
            let index = operands.count
            operands.append(v)
            scalars.append(index)
            return { $0[index].intValue() }
        }
    }

    /// The static shape of a value, if inference knows every dim.
    static func staticShape(_ v: ValueID, _ c: LoweringContext) -> [Int]? { c.type(v)?.staticShape }

    /// The size of a value's last dim, if fixed.
    static func lastDim(_ v: ValueID, _ c: LoweringContext) -> Int? { c.type(v)?.shape.last?.fixedValue }
}

extension LoweringContext {
    /// The node that writes `v` (the first, for state values written more than once).
    func definingNode(_ v: ValueID) -> Node? {
        for block in graph.blocks { for node in block.nodes where node.op.results.contains(v) { return node } }
        return nil
    }

    /// The nodes that read `v`.
    func readers(_ v: ValueID) -> [Node] {
        graph.blocks.flatMap { $0.nodes.filter { $0.op.operands.contains(v) } }
    }
}

/// Strided views over a contiguous output, as `StridedMapKernels` takes them.
enum StridedLayout {
    static func rowMajor(_ shape: [Int]) -> [Int] { HostTensor.strides(shape) }

    /// The strides that read `shape` broadcast (NumPy rules) to `target`: 0 on broadcast dims.
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int]? {
        guard shape.count <= target.count else { return nil }
        let pad = target.count - shape.count
        let own = rowMajor(shape)
        var strides = [Int](repeating: 0, count: target.count)
        for d in 0..<shape.count {
            if shape[d] == target[d + pad] { strides[d + pad] = shape[d] == 1 ? 0 : own[d] }
            else if shape[d] != 1 { return nil }
        }
        return strides
    }

    /// `StridedMapKernels` dims for an output of `shape` read from operands at (offset, strides):
    /// size-1 dims are dropped and neighbours every operand walks contiguously are merged; nil if
    /// more than `StridedMapKernels.rank` dims remain.
    static func mapDims(_ shape: [Int], _ operands: [(offset: Int, strides: [Int])]) -> [Int64]? {
        let rank = StridedMapKernels.rank
        var sizes: [Int] = []                                   // innermost first
        var strides = [[Int]](repeating: [], count: operands.count)
        if shape.contains(0) {
            sizes = [0]
            strides = operands.map { _ in [1] }
        } else {
            for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] != 1 {
                if let inner = sizes.last,
                   operands.indices.allSatisfy({ operands[$0].strides[d] == strides[$0].last! * inner }) {
                    sizes[sizes.count - 1] *= shape[d]
                } else {
                    sizes.append(shape[d])
                    for k in operands.indices { strides[k].append(operands[k].strides[d]) }
                }
            }
            if sizes.isEmpty {
                sizes = [1]
                strides = operands.map { _ in [1] }
            }
        }
        guard sizes.count <= rank else { return nil }
        while sizes.count < rank {
            sizes.append(1)
            for k in operands.indices { strides[k].append(0) }
        }
        // dims: [inner, outer dims outermost first, per operand: base, strides outermost first].
        var dims: [Int64] = [Int64(sizes[0])] + sizes[1...].reversed().map { Int64($0) }
        for (k, o) in operands.enumerated() {
            dims.append(Int64(o.offset))
            dims += strides[k].reversed().map { Int64($0) }
        }
        return dims
    }

    /// Dims for a copy of `shape` elements read at (offset, strides) of the source.
    static func copyLayout(_ shape: [Int], offset: Int, strides: [Int]) -> CallLayout? {
        guard let dims = mapDims(shape, [(offset, strides)]) else { return nil }
        return CallLayout(shapes: [shape], dims: dims, work: shape.reduce(1, *))
    }
}
