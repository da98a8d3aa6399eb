import MLXCCodegen
import MLXCIR

/// `slice_update` (step 1) into a value something else still reads (GatedDeltaNet's conv state: the reset state is
/// both concatenated with the new columns and overwritten by the window it keeps): a new tensor, dst's rows with
/// the slice replaced (`SpliceKernels`), instead of the in-place scatter.
extension Lowerings {
    static func sliceUpdateCopy(_ o: SliceUpdateOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.step == 1, let dtype = copyDType(o.dst, c) else { return nil }
        var operands = [o.dst, o.update], scalars: [Int] = []
        let axis = scalarOperand(o.axis, &operands, &scalars)
        let start = scalarOperand(o.start, &operands, &scalars)
        let stop = scalarOperand(o.stop, &operands, &scalars)
        let definition = SpliceKernels.rows(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 2)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype] + scalars.map { _ in nil }, grain: 16, scalars: scalars) { inputs in
            let dst = inputs[0], update = inputs[1]
            guard let a = try? Layout.axis(axis(inputs), rank: dst.shape.count, "slice_update"),
                  let (s, count) = try? Layout.sliceRange(size: dst.shape[a], start: start(inputs), stop: stop(inputs), step: 1, "slice_update")
            else { return nil }
            var target = dst.shape
            target[a] = count
            guard update.shape == target else { return nil }   // broadcast updates: reference
            let (outer, n, inner) = Broadcast.around(dst.shape, axis: a)
            return CallLayout(shapes: [dst.shape], dims: [Int64(outer), Int64(n), Int64(inner), Int64(count), Int64(s)],
                              work: outer * n)
        }
    }
}
