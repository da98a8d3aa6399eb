import MLXCIR

/// XNN data-movement nodes: StaticTranspose, StaticReshape (a 0 in `new_shape` is the one dim
/// XNNPACK infers: the export writes it for a dynamic dim), Concatenate2–5, StaticSlice (a dim whose
/// slice is the whole exported extent is left alone, so dynamic dims stay whole; a size of 0 runs to
/// the end), StaticConstantPad (pre/post paddings per dim, first dim first: the IR's constant pad) and float
/// Converts.
extension XNNInliner {
    func translateShape(_ node: XNNNode) throws -> Bool {
        switch node.params {
        case .perm(let perm) where node.name == "XNNStaticTranspose":
            let x = try operand(node.inputs[0], "input_id")
            try define(node) { .transpose(TransposeOp(x: x, out: $0, perm: perm)) }
        case .newShape(let shape) where node.name == "XNNStaticReshape":
            let x = try operand(node.inputs[0], "input_id")
            guard shape.filter({ $0 == 0 }).count <= 1 else { throw fail("new_shape \(shape) leaves more than one dim to infer") }
            try define(node) { .reshape(ReshapeOp(x: x, out: $0, shape: shape.map { .literal(Int64($0 == 0 ? -1 : $0)) })) }
        case .axis(let axis) where node.name.hasPrefix("XNNConcatenate"):
            let xs = try zip(node.inputs, node.inputFields).map { try operand($0, $1) }
            try define(node) { .concatenate(ConcatenateOp(tensors: xs, out: $0, axis: axis)) }
        case .slice(let offsets, let sizes) where node.name == "XNNStaticSlice":
            var x = try operand(node.inputs[0], "input_id")
            let dims = graph.value(node.inputs[0])?.dims ?? []
            let cuts = offsets.indices.filter { d in !(offsets[d] == 0 && (sizes[d] == 0 || sizes[d] == dims[safe: d])) }
            guard !cuts.isEmpty else {
                try define(node) { .idCopy(IdCopyOp(x: x, out: $0)) }
                return true
            }
            for (j, d) in cuts.enumerated() {
                let stop: IntOrValue = sizes[d] == 0 ? .literal(Int64.max) : .literal(Int64(offsets[d] + sizes[d]))
                let make = { (out: ValueID) in Op.slice(SliceOp(x: x, out: out, axis: .literal(Int64(d)), start: .literal(Int64(offsets[d])), stop: stop, step: 1)) }
                if j == cuts.count - 1 {
                    try define(node, make)
                } else {
                    let t = importer.graph.addValue(nil, .computed)
                    emit(make(t))
                    x = t
                }
            }
        case .pad(let pre, let post, let value) where node.name == "XNNStaticConstantPad":
            let x = try operand(node.inputs[0], "input_id")
            let rank = graph.value(node.inputs[0])?.dims.count ?? pre.count
            guard pre.count == post.count, pre.count == rank, (pre + post).allSatisfy({ $0 >= 0 }) else {
                throw fail("pre_paddings \(pre) / post_paddings \(post) for a rank-\(rank) input (one non-negative pair per dim expected)")
            }
            let widths = zip(pre, post).flatMap { [IntOrValue.literal(Int64($0)), .literal(Int64($1))] }
            try define(node) { .pad(PadOp(x: x, out: $0, padWidth: widths, mode: "constant", constantValue: Double(value))) }
        default:
            if node.name == "XNNConvert", let from = graph.value(node.inputs[0]), let to = graph.value(node.outputs[0]),
               let a = Self.floatDType(from.datatype), let b = Self.floatDType(to.datatype) {
                let x = try operand(node.inputs[0], "input_id")
                try define(node) { a == b ? .idCopy(IdCopyOp(x: x, out: $0)) : .asType(AsTypeOp(x: x, out: $0, scalarType: b)) }
                return true
            }
            return false
        }
        return true
    }
}
