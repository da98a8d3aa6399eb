import MLXCCodegen
import MLXCIR

/// The table of op lowerings, tried in order. Each returns nil when the node's dtypes, layout or
/// attributes are outside what its kernel handles; the node then runs on the reference executor
/// and `reason` says why.
enum Lowerings {
    static func lower(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        switch node.op {
        case .addmm(let o): return linear(o, node, c)
        case .quantizedMatmul(let o): return o.mode == "affine" ? quantizedLinear(o, node, c) : floatQuantizedLinear(o, node, c)
        case .fusedLinear(let o): return fusedLinear(o, node, c)
        case .dynamicQuantLinear(let o): return dynamicQuantLinear(o, node, c)
        case .ropeAttention(let o): return ropeAttention(o, node, c)
        case .gatedDeltaRule(let o): return gatedDeltaRule(o, node, c)
        case .metalKernel(let o): return metalKernel(o, node, c)
        case .transpose(let o) where foldedIntoRopeAttention(o, c): return nil
        default: return elementwise(node, c) ?? llm(node, c) ?? dataMovement(node, c) ?? quantized(node, c) ?? moe(node, c) ?? plain(node, c)
        }
    }

    static func reason(_ node: Node, _ c: LoweringContext) -> String {
        switch node.op {
        case .addmm: return "needs x @ transpose(W) with a constant 2-D f32/bf16/f16 weight (alpha = beta = 1), or one f32/bf16/f16 dtype for every operand and a bias [N] or [M, N]"
        case .quantizedMatmul(let o) where o.mode != "affine":
            return "only nvfp4 (group 16) / mxfp4 / mxfp8 (group 32) constant 2-D weights without biases, u8 scales that are not NaN (E8M0 exponents 1…254, mxfp8 ≤ 246), f32/bf16/f16 activations and transpose = true have a kernel"
        case .fusedLinear:
            return "needs constant 2-D weights of one f32/bf16/f16 dtype and one K, f32/bf16/f16 activations, [N] biases and residual, a known epilogue"
        case .dynamicQuantLinear: return "needs f32 x ending in K, constant 4-bit (group a multiple of 8) or 8-bit codes with f32 scales, K <= 65536"
        case .quantizedMatmul: return "only affine 2/4/8-bit constant weights (group a multiple of the vector width) with f32/bf16/f16 activations and transpose = true have a kernel"
        case .transpose(let o) where c.constant(o.x) != nil:
            return "transposes of constants are only folded into the matmul that reads them"
        case .rmsNorm, .layerNorm: return "needs f32 operands and a static feature size (from the weight or x's type)"
        case .sdpa, .llamaCustomSdpa: return "needs f32 q/k/v with static head sizes and an f32 or bool mask"
        case .indexCopy, .sliceUpdate, .llamaUpdateCache:
            return "writes in place only into a state value it redefines or a temporary nothing else reads (and slice_update only with step 1)"
        case .gatedDeltaRule:
            return "needs q, k, v, g, beta and the state of one f32/bf16/f16 dtype and static Dk, Dv"
        case .metalKernel(let o):
            do {
                _ = try o.subsetProgram(inputTypes: o.inputs.map { c.type($0) })
                return "a compiled Metal kernel needs literal grid, threadgroup and output shapes"
            } catch { return "\(error)" }
        case .remainder: return "integer remainder needs a constant divisor without zeros; float remainder has no kernel"
        default:
            if let why = plainReason(node, c) { return why }
            if let why = moeReason(node) { return why }
            if binaryOp(node.op) != nil || unaryOp(node.op) != nil {
                return "no kernel for \(node.op.name) on these dtypes (\(node.op.operands.map { c.dtype($0)?.name ?? "?" }.joined(separator: ", ")))"
            }
            return "no kernel for \(node.op.name) yet"
        }
    }

    /// Output shape of a matmul-like op: x [..., K] → [..., N].
    static func rowsTimes(_ n: Int) -> ([NativeTensor]) throws -> [[Int]] {
        { inputs in [Array(inputs[0].shape.dropLast()) + [n]] }
    }

    /// `addmm(x, transpose(W), bias)` with W a constant [N, K] f32: the nn.Linear layout, read as stored.
    static func linear(_ o: AddmmOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        if let typed = typedLinear(o, node, c) { return typed }
        guard o.alpha == 1, o.beta == 1, c.dtype(o.mat1) ?? .f32 == .f32,
              case .transpose(let t)? = c.producer(o.mat2), t.perm == [1, 0],
              let w = c.constant(t.x), w.dtype == .f32, w.shape.count == 2 else { return batchedAddmm(o, node, c) }
        let (n, k) = (w.shape[0], w.shape[1])
        var operands = [o.mat1, t.x]
        if let bias = o.bias {
            guard let bt = c.constant(bias), bt.dtype == .f32, bt.count == n else { return batchedAddmm(o, node, c) }
            operands.append(bias)
        }
        // A weight whose every value is an f16 also goes in as its f16 copy, which one-token calls read.
        let half = c.halfCopies(of: [t.x])?.first
        var operandDTypes: [DType?] = operands.map { _ in .f32 }
        var constants: [NativeTensor?] = []
        if let half {
            constants = [NativeTensor?](repeating: nil, count: operands.count) + [half]
            operands.append(t.x)   // read from `constants`
            operandDTypes.append(.f16)
        }
        let definition = LinearKernels.f32(k: k, n: n, hasBias: o.bias != nil, lanes: c.lanes, halfCopy: half != nil)
        let absorbs: Set<ValueID> = c.useCounts[o.mat2] == 1 ? [o.mat2] : []
        return LoweredKernel(definition: definition, absorbs: absorbs) { function in
            let launch = KernelLaunch(name: definition.name, function: function, operands: operands, results: [o.out], resultDTypes: [.f32],
                         resultShapes: { inputs in
                             guard inputs[0].shape.last == k else { throw ReferenceError("linear: x \(inputs[0].shape) does not end in K = \(k)") }
                             return [Array(inputs[0].shape.dropLast()) + [n]]
                         },
                         dims: { inputs in [Int64(inputs[0].count / k)] },
                         work: { _ in n }, grain: 4, operandDTypes: operandDTypes, node: node)
            launch.constantOperands = constants
            return launch
        }
    }
}
