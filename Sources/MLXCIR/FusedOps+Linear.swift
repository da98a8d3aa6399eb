/// The definition of `fused_linear` (made by fuse-linear): per weight `transpose(w, [1, 0])` and
/// `addmm` (with its bias, if any), then the epilogue's ops on the products, then the residual add.
extension FusedOps {
    /// "none"; the gated epilogues (the activation of the first product times the second); the
    /// activations of one product.
    public static let linearEpilogues = ["none", "swiglu", "geglu_tanh", "geglu", "silu", "gelu_tanh", "gelu"]
    static let unaryLinearEpilogues: Set<String> = ["silu", "gelu_tanh", "gelu"]

    static func unfusedLinear(_ o: FusedLinearOp, temp: (Int) -> ValueID) -> [Op]? {
        guard !o.w.isEmpty, o.biases.count == o.biasOf.count, o.biasOf.allSatisfy({ o.w.indices.contains($0) }),
              Set(o.biasOf).count == o.biasOf.count else { return nil }
        let unary = unaryLinearEpilogues.contains(o.epilogue), gated = o.epilogue != "none" && !unary
        guard linearEpilogues.contains(o.epilogue), gated ? (o.w.count == 2 && o.outs.count == 1) : o.outs.count == o.w.count,
              !unary || o.w.count == 1,
              o.residual == nil || o.outs.count == 1 else { return nil }
        // temps: 2i the transposed weight, 2i + 1 a product not written to an out; 2n… the epilogue's.
        let n = o.w.count
        let last = o.residual == nil ? o.outs[0] : temp(2 * n + 2)
        var ops: [Op] = []
        var products: [ValueID] = []
        for i in o.w.indices {
            let product = gated || unary ? temp(2 * i + 1) : (i == 0 ? last : o.outs[i])
            let bias = o.biasOf.firstIndex(of: i).map { o.biases[$0] }
            ops.append(.transpose(TransposeOp(x: o.w[i], out: temp(2 * i), perm: [1, 0])))
            ops.append(.addmm(AddmmOp(mat1: o.x, mat2: temp(2 * i), out: product, bias: bias, alpha: 1, beta: 1)))
            products.append(product)
        }
        switch o.epilogue {
        case "swiglu": ops.append(.silu(SiluOp(x: products[0], out: temp(2 * n))))
        case "geglu_tanh": ops.append(.gelu(GeluOp(x: products[0], out: temp(2 * n), approximate: "tanh")))
        case "geglu": ops.append(.gelu(GeluOp(x: products[0], out: temp(2 * n), approximate: "none")))
        case "silu": ops.append(.silu(SiluOp(x: products[0], out: last)))
        case "gelu_tanh": ops.append(.gelu(GeluOp(x: products[0], out: last, approximate: "tanh")))
        case "gelu": ops.append(.gelu(GeluOp(x: products[0], out: last, approximate: "none")))
        default: break
        }
        if gated { ops.append(.multiply(MultiplyOp(a: temp(2 * n), b: products[1], out: last))) }
        if let residual = o.residual { ops.append(.add(AddOp(a: residual, b: last, out: o.outs[0]))) }
        return ops
    }
}
