import MLXCCodegen
import MLXCIR

/// `addmm(x, transpose(W), bias)` where the constant weight, the activations or the bias are bf16
/// or f16 (`LinearKernels.typed`): W [N, K] read as stored, f32 accumulation, the result rounded
/// once to the promoted dtype (as the reference rounds addmm's result).
extension Lowerings {
    static func typedLinear(_ o: AddmmOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.alpha == 1, o.beta == 1, case .transpose(let t)? = c.producer(o.mat2), t.perm == [1, 0],
              let w = c.constant(t.x), w.shape.count == 2 else { return nil }
        let xDType = c.dtype(o.mat1) ?? w.dtype
        guard let wt = ElementType(w.dtype), let xt = ElementType(xDType),
              ElementType.activations.contains(wt), ElementType.activations.contains(xt) else { return nil }
        let (n, k) = (w.shape[0], w.shape[1])
        var operands = [o.mat1, t.x]
        var outDType = ShapeRules.promote(xDType, w.dtype)
        var biasType: ElementType? = nil
        if let bias = o.bias {
            guard let bt = c.constant(bias), bt.count == n, let bet = ElementType(bt.dtype), ElementType.activations.contains(bet) else { return nil }
            operands.append(bias)
            biasType = bet
            outDType = ShapeRules.promote(outDType, bt.dtype)
        }
        // All-f32 linears keep their own kernel (`LinearKernels.f32`).
        guard [wt, xt, biasType ?? .f32].contains(where: \.isHalf), let ot = ElementType(outDType),
              ElementType.activations.contains(ot) else { return nil }
        let definition = LinearKernels.typed(k: k, n: n, weight: wt, activation: xt, bias: biasType, output: ot, lanes: c.lanes)
        let absorbs: Set<ValueID> = c.useCounts[o.mat2] == 1 ? [o.mat2] : []
        let operandDTypes: [DType?] = [xDType, w.dtype] + (o.bias.flatMap { c.constant($0) }.map { [$0.dtype] } ?? [])
        return LoweredKernel(definition: definition, absorbs: absorbs) { function in
            KernelLaunch(name: definition.name, function: function, operands: operands, results: [o.out], resultDTypes: [outDType],
                         resultShapes: { inputs in
                             guard inputs[0].shape.last == k else { throw ReferenceError("linear: x \(inputs[0].shape) does not end in K = \(k)") }
                             return [Array(inputs[0].shape.dropLast()) + [n]]
                         },
                         dims: { inputs in [Int64(inputs[0].count / k)] },
                         work: { _ in n }, grain: 4, operandDTypes: operandDTypes, node: node)
        }
    }
}
