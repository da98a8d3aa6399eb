import MLXCIR

/// XNN elementwise nodes: the binary arithmetic nodes (numpy broadcasting, as in the IR), the unary
/// math nodes, Softmax over the last dim, Clamp and any node's fused `output_min_max`.
extension XNNInliner {
    static let binary: [String: (ValueID, ValueID, ValueID) -> Op] = [
        "XNNAdd": { .add(AddOp(a: $0, b: $1, out: $2)) },
        "XNNSubtract": { .subtract(SubtractOp(a: $0, b: $1, out: $2)) },
        "XNNMultiply": { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) },
        "XNNDiv": { .divide(DivideOp(a: $0, b: $1, out: $2)) },
        "XNNMinimum": { .minimum(MinimumOp(a: $0, b: $1, out: $2)) },
        "XNNMaximum": { .maximum(MaximumOp(a: $0, b: $1, out: $2)) },
    ]

    static let unary: [String: (ValueID, ValueID) -> Op] = [
        "XNNSigmoid": { .sigmoid(SigmoidOp(x: $0, out: $1)) },
        "XNNFloor": { .floor(FloorOp(x: $0, out: $1)) },
        "XNNCeiling": { .ceil(CeilOp(x: $0, out: $1)) },
        "XNNSquareRoot": { .sqrt(SqrtOp(x: $0, out: $1)) },
        "XNNReciprocalSquareRoot": { .rsqrt(RsqrtOp(x: $0, out: $1)) },
        "XNNNegate": { .neg(NegOp(x: $0, out: $1)) },
        "XNNSquare": { .square(SquareOp(x: $0, out: $1)) },
        "XNNAbs": { .abs(AbsOp(x: $0, out: $1)) },
        "XNNLog": { .log(LogOp(x: $0, out: $1)) },
        "XNNExp": { .exp(ExpOp(x: $0, out: $1)) },
        "XNNSin": { .sin(SinOp(x: $0, out: $1)) },
        "XNNCos": { .cos(CosOp(x: $0, out: $1)) },
        "XNNTanh": { .tanh(TanhOp(x: $0, out: $1)) },
        "XNNGelu": { .gelu(GeluOp(x: $0, out: $1, approximate: "none")) },
        "XNNCopy": { .idCopy(IdCopyOp(x: $0, out: $1)) },
    ]

    /// Emits `make(out)` for the node's output, followed by the clamp of `output_min_max` when it bounds anything.
    func define(_ node: XNNNode, _ make: (ValueID) throws -> Op) throws {
        let out = try result(node.outputs[0])
        guard let (lo, hi) = node.outputMinMax, lo.isFinite || hi.isFinite else { return emit(try make(out)) }
        let raw = importer.graph.addValue(nil, .computed)
        emit(try make(raw))
        emit(.clip(ClipOp(x: raw, out: out, aMin: lo.isFinite ? scalar(Double(lo)) : nil, aMax: hi.isFinite ? scalar(Double(hi)) : nil)))
    }

    func translateElementwise(_ node: XNNNode) throws -> Bool {
        if let make = Self.binary[node.name] {
            let a = try operand(node.inputs[0], node.inputFields[0]), b = try operand(node.inputs[1], node.inputFields[1])
            try define(node) { make(a, b, $0) }
        } else if let make = Self.unary[node.name] {
            let x = try operand(node.inputs[0], "input_id")
            try define(node) { make(x, $0) }
        } else if node.name == "XNNSoftmax" {
            let x = try operand(node.inputs[0], "input_id")
            let axis = max(rank(node.inputs[0]) - 1, 0)
            try define(node) { .softmax(SoftmaxOp(x: x, out: $0, axis: axis, precise: false)) }
        } else if node.name == "XNNClamp" {
            // The bounds are the node's output_min_max (no bounds: a copy).
            let x = try operand(node.inputs[0], "input_id")
            try define(node) { .idCopy(IdCopyOp(x: x, out: $0)) }
        } else {
            return false
        }
        return true
    }
}
