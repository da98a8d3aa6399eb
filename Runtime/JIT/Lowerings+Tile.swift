import MLXCCodegen
import MLXCIR

/// `tile` (numpy/torch semantics: x and reps right-aligned, missing leading entries 1) → one strided copy: the
/// output viewed as [r₀, d₀, r₁, d₁, …] reads x with stride 0 along every rᵢ and x's own stride along dᵢ
/// (size-1 axes collapse away, so an all-ones tile — Whisper's XNNPACK export repeats the positions once — is a
/// plain copy). Reps are compile-time integers or integer scalars read at run time.
extension Lowerings {
    static func tile(_ o: TileOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = copyDType(o.x, c) else { return nil }
        // Repeats known at compile time or read at run time (a conformer's mask is tiled by its traced length).
        var operands = [o.x], scalars: [Int] = []
        let repeatCounts = o.reps.map { scalarOperand($0, &operands, &scalars) }
        let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 1)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype] + scalars.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
            let reps = repeatCounts.map { $0(inputs) }
            guard reps.allSatisfy({ $0 >= 0 }) else { return nil }
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
