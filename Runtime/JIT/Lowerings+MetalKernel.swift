import MLXCCodegen
import MLXCIR

/// A user Metal kernel (`metal_kernel` the known-kernel registry did not replace) compiled from its source as the
/// Metal subset: one work item runs the grid (MetalSubsetKernels). The grid, threadgroup and output shapes must be
/// literals (a value among them leaves the op to the reference, which resolves it per call).
extension Lowerings {
    static func metalKernel(_ o: MetalKernelOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let program = try? o.subsetProgram(inputTypes: o.inputs.map { c.type($0) }) else { return nil }
        func literal(_ x: IntOrValue) -> Int? { if case .literal(let n) = x { return Int(n) } else { return nil } }
        let grid = o.grid.compactMap(literal), group = o.threadgroup.compactMap(literal)
        guard grid.count == 3, group.count == 3, grid.allSatisfy({ $0 >= 0 }), group.allSatisfy({ $0 > 0 }) else { return nil }
        let lengths = o.outputShapeLengths.isEmpty && o.outputs.count == 1 ? [o.outputShapesFlat.count] : o.outputShapeLengths
        let flat = o.outputShapesFlat.compactMap(literal)
        guard flat.count == o.outputShapesFlat.count, lengths.count == o.outputs.count, lengths.reduce(0, +) == flat.count else { return nil }
        var shapes: [[Int]] = [], at = 0
        for n in lengths {
            shapes.append(Array(flat[at..<(at + n)]))
            at += n
        }
        let definition = MetalSubsetKernels.kernel(program, name: o.name, initValue: o.initValue)
        let inputDTypes = o.inputs.map { c.dtype($0) }
        return launch(definition, node, operands: o.inputs, results: o.outputs, resultDTypes: o.outputDtypes,
                      operandDTypes: inputDTypes, grain: 1) { inputs in
            guard zip(inputs, program.inputRanks).allSatisfy({ $0.shape.count == $1 }) else { return nil }
            let dims = (grid + group).map(Int64.init) + inputs.flatMap { $0.shape.map(Int64.init) }
                + shapes.map { Int64($0.reduce(1, *)) }
            return CallLayout(shapes: shapes, dims: dims, work: 1)
        }
    }
}
