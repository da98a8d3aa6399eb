import MLXCIR

/// Matrix products, convolutions, embeddings and index ops.
extension PlanImporter {
    static var linalgTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["aten::linear.out"] = { imp, a in
            // (input, weight [out, in], bias?, out): input @ weightᵀ + bias.
            try imp.arity(a, 4, "linear")
            let x = try imp.read(a[0]), w = try imp.read(a[1])
            try imp.requireFloatProduct(x, w, "aten::linear.out")
            let wt = imp.temporary(imp.graph.type(w).map { TensorType($0.dtype, $0.shape.reversed()) })
            imp.emit(.transpose(TransposeOp(x: w, out: wt, perm: [1, 0])))
            imp.emit(.addmm(AddmmOp(mat1: x, mat2: wt, out: try imp.write(a.last!), bias: try imp.optionalTensor(a[2]), alpha: 1, beta: 1)))
        }
        let matmul: ATenTranslator = { imp, a in
            try imp.arity(a, 3, "matmul")
            let x = try imp.read(a[0]), y = try imp.read(a[1])
            try imp.requireFloatProduct(x, y, "matrix product")
            imp.emit(.matmul(MatmulOp(a: x, b: y, out: try imp.write(a.last!))))
        }
        t["aten::mm.out"] = matmul
        t["aten::bmm.out"] = matmul
        t["aten::matmul.out"] = matmul
        t["aten::addmm.out"] = { imp, a in
            // (bias, mat1, mat2, beta, alpha, out)
            try imp.arity(a, 6, "addmm")
            try imp.requireFloatProduct(try imp.read(a[1]), try imp.read(a[2]), "aten::addmm.out")
            imp.emit(.addmm(AddmmOp(mat1: try imp.read(a[1]), mat2: try imp.read(a[2]), out: try imp.write(a.last!),
                                    bias: try imp.read(a[0]), alpha: try imp.doubleArg(a[4]), beta: try imp.doubleArg(a[3]))))
        }
        t["aten::embedding.out"] = { imp, a in
            try imp.arity(a, 6, "embedding")
            imp.emit(.take(TakeOp(x: try imp.read(a[0]), out: try imp.write(a.last!), index: .value(try imp.read(a[1])), axis: 0)))
        }
        t["aten::index_select.out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.take(TakeOp(x: x, out: try imp.write(a.last!), index: .value(try imp.read(a[2])),
                                  axis: imp.axis(try imp.literalInt(a[1]), of: x))))
        }
        t["aten::index.Tensor_out"] = { imp, a in
            let x = try imp.read(a[0])
            let indices = try imp.tensorList(a[1])
            let given = indices.enumerated().filter { $0.element != nil }
            guard given.count == 1, let only = given.first else {
                throw imp.fail("aten::index.Tensor_out with \(given.count) index tensors is not supported (only one)")
            }
            imp.emit(.take(TakeOp(x: x, out: try imp.write(a.last!), index: .value(only.element!), axis: only.offset)))
        }
        t["aten::gather.out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.takeAlongAxis(TakeAlongAxisOp(x: x, indices: try imp.read(a[2]), out: try imp.write(a.last!),
                                                    axis: imp.axis(try imp.literalInt(a[1]), of: x))))
        }
        t["aten::scatter_add.out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.scatterAdd(ScatterAddOp(x: x, indices: try imp.read(a[2]), updates: try imp.read(a[3]),
                                              out: try imp.write(a.last!), axis: imp.axis(try imp.literalInt(a[1]), of: x))))
        }
        t["aten::convolution.out"] = { imp, a in
            try imp.translateConvolution(a)
        }
        return t
    }

    /// `aten::convolution.out(input, weight, bias?, stride, padding, dilation, transposed, output_padding, groups, out)`.
    /// ATen is channels-first (NCL / NCHW); the IR's conv ops are channels-last like MLX, so the
    /// input and weight are transposed in and the result transposed back.
    func translateConvolution(_ a: [Int]) throws {
        try arity(a, 10, "convolution")
        let x = try read(a[0]), w = try read(a[1])
        let stride = try literalInts(a[3]), padding = try literalInts(a[4]), dilation = try literalInts(a[5])
        guard try !boolArg(a[6]) else { throw fail("transposed convolution is not supported by the importer yet") }
        let groups = try literalInt(a[8])
        guard let xt = graph.type(x), let wt = graph.type(w) else { throw fail("convolution operands of unknown type") }
        let spatial = xt.rank - 2
        guard spatial == 1 || spatial == 2, wt.rank == xt.rank, stride.count == spatial, padding.count == spatial else {
            throw fail("convolution with \(spatial) spatial dims (stride \(stride), padding \(padding)) is not supported")
        }
        let toLast = [0] + Array(2..<(2 + spatial)) + [1]      // NC… → N…C
        let toFirst = [0, spatial + 1] + Array(1...spatial)     // N…C → NC…
        func permuted(_ v: ValueID, _ type: TensorType, _ perm: [Int]) -> ValueID {
            let r = temporary(TensorType(type.dtype, perm.map { type.shape[$0] }))
            emit(.transpose(TransposeOp(x: v, out: r, perm: perm)))
            return r
        }
        let xl = permuted(x, xt, toLast), wl = permuted(w, wt, toLast)
        let out = try write(a.last!)
        let outType = graph.type(out)
        let yl = temporary(outType.map { t in TensorType(t.dtype, toLast.map { t.shape[$0] }) })
        if spatial == 1 {
            emit(.conv1D(Conv1DOp(x: xl, w: wl, out: yl, stride: stride[0], padding: padding[0], dilation: dilation.first ?? 1, groups: groups)))
        } else {
            emit(.conv2D(Conv2DOp(x: xl, w: wl, out: yl, strideH: stride[0], strideW: stride[1], paddingH: padding[0],
                                  paddingW: padding[1], dilationH: dilation[safe: 0] ?? 1, dilationW: dilation[safe: 1] ?? 1, groups: groups)))
        }
        var result = yl
        if let bias = try optionalTensor(a[2]) {
            let biased = temporary(graph.type(yl))
            emit(.add(AddOp(a: yl, b: bias, out: biased)))
            result = biased
        }
        emit(.transpose(TransposeOp(x: result, out: out, perm: toFirst)))
    }

    /// A float operand times an integer one is no product a program means: ExecuTorch 1.5.1 writes
    /// `aten::linear(x, int8 codes)` for 8da4w without a backend (torchao's scales dropped; its own
    /// runtime rejects it). Refused, naming the op and both dtypes.
    func requireFloatProduct(_ a: ValueID, _ b: ValueID, _ op: String) throws {
        guard let ta = graph.type(a)?.dtype, let tb = graph.type(b)?.dtype, ta.isFloatingPoint != tb.isFloatingPoint else { return }
        throw fail("\(op) of \(ta.name) and \(tb.name): integer codes times floats is not a matrix product (a quantized weight whose scales the export dropped)")
    }
}
