import MLXCIR

extension JITProgram {
    /// Views share their operand's bytes and only change the shape.
    func executeView(_ node: Node) throws {
        let what = node.op.name
        switch node.op {
        case .reshape(let o):
            let x = try tensor(o.x, what)
            var shape = try o.shape.map { try intValue($0, what) }
            if let hole = shape.firstIndex(of: -1) {
                let known = shape.enumerated().filter { $0.offset != hole }.reduce(1) { $0 * $1.element }
                guard known > 0, x.count % known == 0 else { throw ReferenceError("reshape of \(x.shape) to \(shape)") }
                shape[hole] = x.count / known
            }
            guard shape.reduce(1, *) == x.count else { throw ReferenceError("reshape of \(x.shape) to \(shape): sizes differ") }
            values[o.out.index] = NativeTensor(dtype: x.dtype, shape: shape, data: x.data)
        case .idCopy(let o):
            // A copy into state (the MLX delegate's write-back of a mutated buffer, e.g. a recurrent state computed
            // out of place) lands in the state's own buffer: the next call starts from it, not from this call's arena.
            if case .state = graph[o.out].kind, let buffer = baseValues[o.out.index], let x = values[o.x.index],
               x.data != buffer.data {
                guard x.shape == buffer.shape, x.dtype == buffer.dtype else {
                    throw ReferenceError("id_copy of \(x.dtype.name)\(x.shape) into state \(o.out) of \(buffer.dtype.name)\(buffer.shape)")
                }
                buffer.data.copyMemory(from: x.data, byteCount: buffer.byteCount)
                values[o.out.index] = buffer
            } else {
                values[o.out.index] = values[o.x.index]   // undefined stays undefined (an `if` path not taken)
            }
        case .contiguous(let o):
            values[o.out.index] = try tensor(o.x, what)
        case .expandDims(let o):
            let x = try tensor(o.x, what)
            let axis = o.axis < 0 ? o.axis + x.shape.count + 1 : o.axis
            guard axis >= 0, axis <= x.shape.count else { throw ReferenceError("expand_dims axis \(o.axis) for \(x.shape)") }
            var shape = x.shape
            shape.insert(1, at: axis)
            values[o.out.index] = NativeTensor(dtype: x.dtype, shape: shape, data: x.data)
        case .squeeze(let o):
            let x = try tensor(o.x, what)
            let axes = Set(o.dims.map { $0 < 0 ? $0 + x.shape.count : $0 })
            let shape = x.shape.enumerated().filter { !(($0.element == 1) && (axes.isEmpty || axes.contains($0.offset))) }.map(\.element)
            values[o.out.index] = NativeTensor(dtype: x.dtype, shape: shape, data: x.data)
        default:
            throw ReferenceError("\(what) is not a view")
        }
    }

    static func isView(_ op: Op) -> Bool {
        switch op {
        case .reshape, .idCopy, .contiguous, .expandDims, .squeeze: return true
        default: return false
        }
    }

    /// Integer arithmetic on rank-0 values (sizes and positions), done in Swift.
    func executeScalar(_ node: Node) throws {
        let what = node.op.name
        func store(_ out: ValueID, _ n: Int) {
            let p = arena.allocate(8)
            p.storeBytes(of: Int64(n), as: Int64.self)
            values[out.index] = NativeTensor(dtype: .i64, shape: [], data: p)
        }
        func floorDiv(_ a: Int, _ b: Int) throws -> Int {
            guard b != 0 else { throw ReferenceError("\(what): division by zero") }
            let q = a / b
            return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
        }
        switch node.op {
        case .addInt(let o): store(o.out, try intValue(o.a, what) &+ intValue(o.b, what))
        case .subtractInt(let o): store(o.out, try intValue(o.a, what) &- intValue(o.b, what))
        case .multiplyInt(let o): store(o.out, try intValue(o.a, what) &* intValue(o.b, what))
        case .floorDivideInt(let o): store(o.out, try floorDiv(intValue(o.a, what), intValue(o.b, what)))
        case .modInt(let o):
            let a = try intValue(o.a, what), b = try intValue(o.b, what)
            store(o.out, a - b * (try floorDiv(a, b)))
        case .symSize(let o):
            let x = try tensor(o.a, what)
            let d = o.dim < 0 ? o.dim + x.shape.count : o.dim
            guard d >= 0, d < x.shape.count else { throw ReferenceError("sym_size dim \(o.dim) of \(x.shape)") }
            store(o.out, x.shape[d])
        case .itemInt(let o):
            let x = try tensor(o.x, what)
            guard x.count == 1 else { throw ReferenceError("item of a tensor with shape \(x.shape)") }
            store(o.out, x.intValue())
        default:
            throw ReferenceError("\(what) is not a native scalar op")
        }
    }

    static func isNativeScalar(_ op: Op) -> Bool {
        switch op {
        case .addInt, .subtractInt, .multiplyInt, .floorDivideInt, .modInt, .symSize, .itemInt: return true
        default: return false
        }
    }
}
