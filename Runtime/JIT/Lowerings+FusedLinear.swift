import MLXCCodegen
import MLXCIR

/// `fused_linear` (made by fuse-linear) → `LinearKernels.fused`: the float linears' weights read as
/// stored ([N, K] f32/bf16/f16 constants), x read once per block of rows, the bias, gated activation
/// and residual applied as the sums come out. A call whose x does not end in K, or whose residual
/// does not have the result's shape (a broadcast), runs on the reference (the unfused definition).
extension Lowerings {
    static func fusedLinear(_ o: FusedLinearOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let epilogue = LinearKernels.Epilogue(rawValue: o.epilogue), o.biases.count == o.biasOf.count else { return nil }
        let weights = o.w.map { c.constant($0) }
        guard let first = weights.first ?? nil, first.shape.count == 2, let wt = ElementType(first.dtype),
              ElementType.activations.contains(wt) else { return nil }
        let k = first.shape[1]
        guard weights.allSatisfy({ $0?.dtype == first.dtype && $0?.shape.count == 2 && $0?.shape[1] == k }) else { return nil }
        let ns = weights.map { $0!.shape[0] }
        let xDType = c.dtype(o.x) ?? first.dtype
        guard let xt = ElementType(xDType), ElementType.activations.contains(xt) else { return nil }

        // Biases in weight order, each a constant [n_i].
        var operands = [o.x] + o.w, dtypes: [DType?] = [xDType] + o.w.map { _ in first.dtype }
        var biasTypes: [ElementType?] = [], products: [DType] = []
        for i in o.w.indices {
            var product = ShapeRules.promote(xDType, first.dtype)
            if let j = o.biasOf.firstIndex(of: i) {
                guard let bias = c.constant(o.biases[j]), bias.count == ns[i], let bt = ElementType(bias.dtype),
                      ElementType.activations.contains(bt) else { return nil }
                operands.append(o.biases[j]); dtypes.append(bias.dtype); biasTypes.append(bt)
                product = ShapeRules.promote(product, bias.dtype)
            } else {
                biasTypes.append(nil)
            }
            products.append(product)
        }
        var outs = epilogue.gated ? [ShapeRules.promote(products[0], products[1])] : products
        let gated = epilogue.gated ? outs[0] : nil
        var residualType: ElementType? = nil
        if let r = o.residual {
            guard o.outs.count == 1, let rd = c.dtype(r), let rt = ElementType(rd), ElementType.activations.contains(rt) else { return nil }
            operands.append(r); dtypes.append(rd); residualType = rt
            outs = [ShapeRules.promote(outs[0], rd)]
        }
        guard outs.count == o.outs.count, !epilogue.gated || (ns.count == 2 && ns[0] == ns[1]), !epilogue.unary || ns.count == 1 else { return nil }
        let outTypes = outs.compactMap(ElementType.init), productTypes = products.compactMap(ElementType.init)
        guard outTypes.count == outs.count, productTypes.count == products.count,
              (outTypes + productTypes).allSatisfy(ElementType.activations.contains) else { return nil }
        let types = LinearKernels.Types(weight: wt, activation: xt, biases: biasTypes, products: productTypes,
                                        gated: gated.flatMap(ElementType.init), residual: residualType, outs: outTypes)
        // f32 weights whose every value is an f16 also go in as f16 copies, which one-token calls read.
        let halves = LinearKernels.takesHalfCopies(types, epilogue) ? c.halfCopies(of: o.w) : nil
        let definition = LinearKernels.fused(k: k, ns: ns, types: types, epilogue: epilogue, lanes: c.lanes, halfCopies: halves != nil)
        let resultNs = epilogue.gated ? [ns[0]] : ns
        let work = resultNs.reduce(0, +)
        let residualAt: Int? = o.residual != nil ? operands.count - 1 : nil
        var constants: [NativeTensor?] = []
        if let halves {
            constants = [NativeTensor?](repeating: nil, count: operands.count) + halves.map { Optional($0) }
            operands += o.w   // read from `constants`
            dtypes += halves.map { _ in DType.f16 }
        }
        return launch(definition, node, operands: operands, results: o.outs, resultDTypes: outs, operandDTypes: dtypes,
                      grain: LinearKernels.fusedGrain(types, epilogue, lanes: c.lanes), constantOperands: constants) { inputs in
            let x = inputs[0]
            guard x.shape.last == k else { return nil }
            let shapes = resultNs.map { Array(x.shape.dropLast()) + [$0] }
            if let residualAt { guard inputs[residualAt].shape == shapes[0] else { return nil } }
            return CallLayout(shapes: shapes, dims: [Int64(x.count / k)], work: work)
        }
    }
}
