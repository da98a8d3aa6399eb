import MLXCCodegen
import MLXCIR

/// `tile` (numpy/torch semantics: x and reps right-aligned, missing leading entries 1) → one strided copy: the
/// output viewed as [r₀, d₀, r₁, d₁, …] reads x with stride 0 along every rᵢ and x's own stride along dᵢ
/// (size-1 axes collapse away, so an all-ones tile — Whisper's XNNPACK export repeats the positions once — is a
/// plain copy). Reps must be compile-time integers; otherwise the op stays on the reference.
extension Lowerings {
    static func tile(_ o: TileOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = copyDType(o.x, c) else { return nil }
        var reps: [Int] = []
        for r in o.reps {
            guard case .literal(let n) = r, n >= 0 else { return nil }
            reps.append(Int(n))
        }
        let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes, skip: 0)
        return launch(definition, node, operands: [o.x], results: [o.out], resultDTypes: [dtype], operandDTypes: [dtype],
                      grain: copyGrain) { inputs in
            let x = inputs[0]
            let rank = max(x.shape.count, reps.count)
            let dims = [Int](repeating: 1, count: rank - x.shape.count) + x.shape
            let r = [Int](repeating: 1, count: rank - reps.count) + reps
            let own = StridedLayout.rowMajor(dims)
            var shape: [Int] = [], strides: [Int] = []
            for i in 0..<rank {
                shape += [r[i], dims[i]]
                strides += [0, own[i]]
            }
            return StridedLayout.copyLayout(shape, offset: 0, strides: strides)
                .map { CallLayout(shapes: [zip(r, dims).map { $0 * $1 }], dims: $0.dims, work: $0.work) }
        }
    }
}
