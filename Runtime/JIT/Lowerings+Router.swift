import MLXCCodegen
import MLXCIR

/// The small ops of an MoE router (top-k over a few experts, tokens grouped by expert; `sum` is
/// `Lowerings.plain`'s reduction) →
/// `SortKernels` and `RouterKernels`; `repeat` is a strided copy (a stride-0 dim per repeat).
extension Lowerings {
    /// Longest lane the rank sort takes (size² compares per lane); longer lanes (a top-p over a
    /// vocabulary) stay on the reference.
    static let maxSortLane = 512

    static func router(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        switch node.op {
        case .sort(let o): return sortAlong(node, c, x: o.x, out: o.out, axis: o.axis, indices: false, kth: nil)
        case .argsort(let o): return sortAlong(node, c, x: o.x, out: o.out, axis: o.axis, indices: true, kth: nil)
        case .partition(let o): return sortAlong(node, c, x: o.x, out: o.out, axis: o.axis, indices: false, kth: o.kth)
        case .argPartition(let o): return sortAlong(node, c, x: o.x, out: o.out, axis: o.axis, indices: true, kth: o.kth)
        case .takeAlongAxis(let o): return takeAlongAxis(o, node, c)
        case .repeat(let o): return repeatElements(o, node, c)
        case .floorDivide(let o): return floorDivide(o, node, c)
        default: return nil
        }
    }

    /// sort/argsort/partition/arg_partition (partitions are full sorts, as the reference defines
    /// them). Indices take the graph's declared integer type, else MLX's uint32.
    static func sortAlong(_ node: Node, _ c: LoweringContext, x: ValueID, out: ValueID, axis: Int, indices: Bool,
                          kth: IntOrValue?) -> LoweredKernel? {
        guard let xd = c.dtype(x), let t = ElementType(xd), SortKernels.supports(t) else { return nil }
        var resultDType = xd
        if indices {
            let declared = c.graph[out].type?.dtype
            resultDType = declared.flatMap { [.i32, .u32, .i64].contains($0) ? $0 : nil } ?? .u32
            if let declared, declared != resultDType { return nil }
        }
        var operands = [x], scalars: [Int] = []
        let kthValue = kth.map { scalarOperand($0, &operands, &scalars) }
        // A run-time kth is an operand the kernel does not read: its buffer sits before the result's.
        let definition = SortKernels.sort(t, indices: indices ? ElementType(resultDType) : nil, lanes: c.lanes, skip: scalars.count)
        return launch(definition, node, operands: operands, results: [out], resultDTypes: [resultDType],
                      operandDTypes: [xd] + scalars.map { _ in nil }, grain: 1, scalars: scalars) { inputs in
            let x = inputs[0]
            let shape = x.shape
            let a: Int
            if shape.isEmpty {
                guard axis == 0 || axis == -1 else { return nil }
                a = 0
            } else {
                guard let n = try? Layout.axis(axis, rank: shape.count, "sort") else { return nil }
                a = n
            }
            let (outer, size, inner) = shape.isEmpty ? (1, 1, 1) : Broadcast.around(shape, axis: a)
            guard size <= maxSortLane else { return nil }
            if let kthValue {
                let k = kthValue(inputs)
                guard (k < 0 ? k + size : k) >= 0, (k < 0 ? k + size : k) < size else { return nil }
            }
            return CallLayout(shapes: [shape], dims: [Int64(outer), Int64(size), Int64(inner)], work: outer * inner)
        }
    }

    static func takeAlongAxis(_ o: TakeAlongAxisOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let xd = copyDType(o.x, c), let id = c.dtype(o.indices), let it = ElementType(id),
              GatherMatmulKernels.Indices.supported(it) else { return nil }
        let definition = RouterKernels.takeAlongAxis(byteSize: xd.byteSize, index: it)
        return launch(definition, node, operands: [o.x, o.indices], results: [o.out], resultDTypes: [xd],
                      operandDTypes: [xd, id], grain: copyGrain,
                      check: { inputs in
                          guard let a = try? Layout.axis(o.axis, rank: inputs[0].shape.count, "take_along_axis") else { return false }
                          let n = inputs[0].shape[a]
                          return indicesWrapInRange(inputs[1], n)   // negative ones count from the end
                      }) { inputs in
            let x = inputs[0], idx = inputs[1]
            guard x.shape.count == idx.shape.count, let a = try? Layout.axis(o.axis, rank: x.shape.count, "take_along_axis") else { return nil }
            for d in x.shape.indices where d != a && x.shape[d] != idx.shape[d] { return nil }   // broadcasts stay on the reference
            let (_, m, inner) = Broadcast.around(idx.shape, axis: a)
            return CallLayout(shapes: [idx.shape], dims: [Int64(x.shape[a]), Int64(m), Int64(inner)], work: idx.count)
        }
    }

    /// Whether every index lies in -n..<n.
    static func indicesWrapInRange(_ t: NativeTensor, _ n: Int) -> Bool {
        func all<T: BinaryInteger>(_ type: T.Type) -> Bool {
            let p = t.data.assumingMemoryBound(to: T.self)
            for i in 0..<t.count where p[i] < -n || p[i] >= n { return false }
            return true
        }
        switch t.dtype {
        case .i32: return all(Int32.self)
        case .u32: return all(UInt32.self)
        case .i64: return all(Int64.self)
        default: return false
        }
    }

    /// `repeat` (NumPy repeat: each element `repeats` times along `axis`) as a strided copy of x
    /// viewed with a stride-0 dim after `axis`.
    static func repeatElements(_ o: RepeatOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = copyDType(o.x, c) else { return nil }
        var operands = [o.x], scalars: [Int] = []
        let repeats = scalarOperand(o.repeats, &operands, &scalars)
        let definition = StridedMapKernels.copy(byteSize: dtype.byteSize, lanes: c.lanes, skip: operands.count - 1)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype] + scalars.map { _ in nil }, grain: copyGrain, scalars: scalars) { inputs in
            let x = inputs[0], r = repeats(inputs)
            guard r >= 0, let a = try? Layout.axis(o.axis, rank: x.shape.count, "repeat") else { return nil }
            var view = x.shape, strides = StridedLayout.rowMajor(x.shape)
            view.insert(r, at: a + 1)
            strides.insert(0, at: a + 1)
            var out = x.shape
            out[a] *= r
            guard let dims = StridedLayout.mapDims(view, [(0, strides)]) else { return nil }
            return CallLayout(shapes: [out], dims: dims, work: out.reduce(1, *))
        }
    }

    /// Integer floor_divide; like remainder, only by a constant divisor without zeros (the
    /// reference throws on a zero divisor).
    static func floorDivide(_ o: FloorDivideOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let dtype = commonDType([o.a, o.b], c), let t = ElementType(dtype), t != .bool, !t.isFloat || t == .f32 else { return nil }
        // Integers trap on a zero divisor: only a constant one known to hold none is compiled. f32 needs no such proof.
        if t != .f32 {
            guard let divisor = c.constant(o.b), let host = try? divisor.host(), !host.storage.contains(0) else { return nil }
        }
        return mapLaunch(RouterKernels.floorDivide(t, lanes: c.lanes), node, operands: [o.a, o.b], out: o.out, resultDType: dtype,
                         operandDTypes: [dtype, dtype], grain: elementwiseGrain(transcendental: false))
    }
}
