import MLXCIR

/// TurboQuant's Metal kernels (ExecuTorch's custom_kernel_ops/tq_norm.py, tq_dequant.py, tq4_compress.py: the MLX
/// delegate's compressed KV cache) written as the graph of mlxc ops that computes what their eager definitions do,
/// so each step has the reference's definition and a compiled kernel:
///   tq_norm(x [..., D]) = ‖x‖₂ over the last axis [..., 1], accumulated in f32 and rounded once to x's dtype
///     (as_type f32 → square → sum keepdims → sqrt → as_type);
///   tq_dequant(packed u8 [..., D/2], norms [..., 1], centroids [16]) = centroids[code] · norms, code j of a row being
///     the high nibble of byte j/2 for even j and the low one for odd j (the byte read twice by a take, its nibble
///     looked up in a 512-entry table by byte + 256 · (j mod 2), the centroids gathered by a take);
///   tq4_compress(values [..., D], boundaries [15]) = per value the number of boundaries below it (strictly: the
///     kernel's `v > bnd`, torch.bucketize's left buckets), even positions in the high nibble of byte j/2, odd in
///     the low one (greater → as_type f32 → sum, then the even and odd counts taken and packed as 16·hi + lo → u8;
///     counts ≤ 15 and bytes ≤ 255 are exact in f32, which the reduction kernels take).
struct TurboQuantOps {
    var graph: Graph
    let kernel: MetalKernelOp
    let what: String
    let fail: (String) -> Error
    var ops: [Op] = []

    init(graph: Graph, kernel: MetalKernelOp, what: String, fail: @escaping (String) -> Error) {
        self.graph = graph
        self.kernel = kernel
        self.what = what
        self.fail = fail
    }

    mutating func build() throws -> [Op] {
        let names = kernel.templateArgNames, values = kernel.templateArgValues
        guard names.count == values.count, let dtypeCode = values.first, let dtype = DType(rawValue: Int8(truncatingIfNeeded: dtypeCode)),
              dtype == .f32 || dtype == .bf16 || dtype == .f16 else {
            throw fail("\(what): template_arg_values \(values) do not give a float InT")
        }
        switch kernel.name {
        case "tq_norm":
            try expect(inputs: 1, outputs: 1)
            let d = try dimension(values)
            try requireLastDim(kernel.inputs[0], d, "x")
            let xf = temp(), sq = temp(), total = temp(), root = temp()
            ops += [.asType(AsTypeOp(x: kernel.inputs[0], out: xf, scalarType: .f32)), .square(SquareOp(x: xf, out: sq)),
                    .sum(SumOp(x: sq, out: total, axes: [-1], keepdims: true)), .sqrt(SqrtOp(x: total, out: root)),
                    .asType(AsTypeOp(x: root, out: kernel.outputs[0], scalarType: dtype))]
        case "tq_dequant":
            try expect(inputs: 3, outputs: 1)
            let d = try dimension(values)
            try requireLastDim(kernel.inputs[0], d / 2, "packed")
            let byteOf = constant((0..<d).map { Double($0 / 2) }, .i64, [d])
            // Code j is nibbles[byte + 256 · (j mod 2)]: the high nibble for even j, the low one for odd j.
            let half = constant((0..<d).map { $0 % 2 == 0 ? 0 : 256 }, .i32, [d])
            let nibbles = constant((0..<512).map { Double($0 < 256 ? $0 >> 4 : ($0 - 256) & 15) }, .i32, [512])
            let bytes = temp(), wide = temp(), slot = temp(), codes = temp(), picked = temp()
            ops += [.take(TakeOp(x: kernel.inputs[0], out: bytes, index: .value(byteOf), axis: -1)),
                    .asType(AsTypeOp(x: bytes, out: wide, scalarType: .i32)),
                    .add(AddOp(a: wide, b: half, out: slot)),
                    .take(TakeOp(x: nibbles, out: codes, index: .value(slot), axis: 0)),
                    .take(TakeOp(x: kernel.inputs[2], out: picked, index: .value(codes), axis: 0)),
                    .multiply(MultiplyOp(a: picked, b: kernel.inputs[1], out: kernel.outputs[0]))]
        case "tq4_compress":
            try expect(inputs: 2, outputs: 1)
            guard names == ["InT", "B"], values.count == 2, values[1] == 15 else {
                throw fail("\(what): template_arg_values \(values) are not [InT, 15]")
            }
            // D/2 is the output's last dim, a literal (the delegate requires a static last dim).
            guard kernel.outputShapeLengths.count == 1, case .literal(let halfD)? = kernel.outputShapesFlat.last, halfD > 0 else {
                throw fail("\(what): the output's last dim is not a positive literal (\(kernel.outputShapesFlat))")
            }
            let d = 2 * Int(halfD)
            try requireLastDim(kernel.inputs[0], d, "values")
            let evens = constant((0..<(d / 2)).map { Double(2 * $0) }, .i64, [d / 2])
            let odds = constant((0..<(d / 2)).map { Double(2 * $0 + 1) }, .i64, [d / 2])
            let sixteen = constant([16], .f32, [])
            let column = temp(), above = temp(), ones = temp(), counts = temp(), hi = temp(), lo = temp(), hiShifted = temp(), packed = temp()
            ops += [.expandDims(ExpandDimsOp(x: kernel.inputs[0], out: column, axis: -1)),
                    .greater(GreaterOp(a: column, b: kernel.inputs[1], out: above)),
                    .asType(AsTypeOp(x: above, out: ones, scalarType: .f32)),
                    .sum(SumOp(x: ones, out: counts, axes: [-1], keepdims: false)),
                    .take(TakeOp(x: counts, out: hi, index: .value(evens), axis: -1)),
                    .take(TakeOp(x: counts, out: lo, index: .value(odds), axis: -1)),
                    .multiply(MultiplyOp(a: hi, b: sixteen, out: hiShifted)),
                    .add(AddOp(a: hiShifted, b: lo, out: packed)),
                    .asType(AsTypeOp(x: packed, out: kernel.outputs[0], scalarType: .u8))]
        default:
            throw fail("\(what) is not a TurboQuant kernel")
        }
        return ops
    }

    func expect(inputs: Int, outputs: Int) throws {
        guard kernel.inputs.count == inputs, kernel.outputs.count == outputs else {
            throw fail("\(what) has \(kernel.inputs.count) inputs and \(kernel.outputs.count) outputs, \(inputs) and \(outputs) expected")
        }
    }

    /// D from template [InT, D] (a multiple of 32: the kernels split rows over a simdgroup).
    func dimension(_ values: [Int]) throws -> Int {
        guard kernel.templateArgNames == ["InT", "D"], values.count == 2, values[1] > 0, values[1] % 32 == 0 else {
            throw fail("\(what): template \(kernel.templateArgNames) = \(values) is not [InT, D] with D a positive multiple of 32")
        }
        return values[1]
    }

    /// The operand's last dim, when its type says, must be `n`.
    func requireLastDim(_ v: ValueID, _ n: Int, _ name: String) throws {
        if let last = graph.type(v)?.shape.last?.fixedValue, last != n {
            throw fail("\(what): \(name) has last dim \(last), the template says \(n)")
        }
    }

    mutating func temp() -> ValueID { graph.addValue(nil, .computed) }

    mutating func constant(_ values: [Double], _ dtype: DType, _ shape: [Int]) -> ValueID {
        graph.addValue(TensorType(dtype, fixed: shape), .constant(.literal(values)))
    }
}
