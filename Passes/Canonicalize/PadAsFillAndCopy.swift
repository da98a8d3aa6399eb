import MLXCIR

/// A constant-mode `pad` that widens one axis — ExecuTorch's mel preprocessor pads the waveform with zeros to whole
/// 30 s chunks, `pad(x, [0, n·480000 − L], constant 0)` with the width computed at run time — becomes the two ops
/// the compiled engine has kernels for:
///
///     n = sym_size(x, axis) + before + after;  f = full([..., n, ...], value);  slice_update(f, x, axis, before, before + L)
///
/// A pad of several axes (TF-style "same" padding before a vision model's convolutions: H and W) is that, one axis
/// after the other; a pad of all-zero widths is a copy. A zero pad of an image that one conv2d alone reads
/// (`ConvInputPad`) is left for the conv kernel, which pads itself; so is the edge mode (the reference executor runs
/// it). The result keeps its value and type.
public struct PadAsFillAndCopy: GraphPass {
    public let name = "pad-as-fill-and-copy"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var count = 0
        var inferred: [TensorType?]? = nil
        let forConvs = ConvInputPad.absorbed(in: graph)
        func type(_ v: ValueID, _ graph: Graph) -> TensorType? {
            if let t = graph[v].type { return t }
            if inferred == nil { inferred = ShapeInference.infer(graph).types }   // values the importer left untyped
            return v.index < inferred!.count ? inferred![v.index] : nil
        }
        for b in graph.blocks.indices {
            var rewritten: [Node] = []
            for node in graph.blocks[b].nodes {
                guard case .pad(let p) = node.op, p.mode == "constant", forConvs[p.out] == nil, let xt = type(p.x, graph),
                      p.padWidth.count == 2 * xt.rank else {
                    rewritten.append(node)
                    continue
                }
                let widened = (0..<xt.rank).filter { p.padWidth[2 * $0] != .literal(0) || p.padWidth[2 * $0 + 1] != .literal(0) }
                var nodes: [Node] = []
                func emit(_ op: Op) { nodes.append(Node(op, origin: node.origin)) }
                guard !widened.isEmpty else {   // all widths 0 (TF-style "same" padding before a 1x1 conv): a copy
                    emit(.idCopy(IdCopyOp(x: p.x, out: p.out)))
                    rewritten += nodes
                    count += 1
                    continue
                }
                func scalar() -> ValueID { graph.addValue(TensorType(.i64, []), .computed) }
                // Several widened axes (a 2-D image pad) are padded one axis after the other.
                var x = p.x
                var shape: [IntOrValue] = []
                for (k, axis) in widened.enumerated() {
                    func size(_ i: Int) -> IntOrValue {
                        if let n = xt.shape[i].fixedValue { return .literal(Int64(n)) }
                        let v = scalar()
                        emit(.symSize(SymSizeOp(a: p.x, dim: i, out: v)))
                        return .value(v)
                    }
                    if k == 0 { shape = (0..<xt.rank).map(size) }
                    let length = shape[axis], before = p.padWidth[2 * axis], after = p.padWidth[2 * axis + 1]
                    let head = scalar(), total = scalar(), stop = scalar()
                    emit(.addInt(AddIntOp(a: length, b: before, out: head)))
                    emit(.addInt(AddIntOp(a: .value(head), b: after, out: total)))
                    emit(.addInt(AddIntOp(a: before, b: length, out: stop)))
                    shape[axis] = .value(total)
                    let last = k == widened.count - 1
                    let filled = graph.addValue(last ? type(p.out, graph) : nil, .computed)
                    emit(.full(FullOp(out: filled, shape: shape, v: .literal(p.constantValue), scalarType: xt.dtype)))
                    let out = last ? p.out : graph.addValue(nil, .computed)
                    emit(.sliceUpdate(SliceUpdateOp(dst: filled, update: x, out: out, axis: .literal(Int64(axis)),
                                                    start: before, stop: .value(stop), step: 1)))
                    x = out
                }
                rewritten += nodes
                count += 1
            }
            graph.blocks[b].nodes = rewritten
        }
        return count
    }
}
