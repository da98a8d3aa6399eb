import MLXCIR

/// Shape helpers shared by the reference kernels: NumPy broadcasting, axis normalization, and
/// index arithmetic over row-major tensors.
enum Broadcast {
    /// The broadcast of two shapes (NumPy rules), or an error naming both.
    static func shape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard x == y || x == 1 || y == 1 else { throw ReferenceError("shapes \(a) and \(b) do not broadcast") }
            out[i] = x == 1 ? y : x
        }
        return out
    }

    static func shape(_ shapes: [[Int]]) throws -> [Int] {
        try shapes.reduce([]) { try shape($0, $1) }
    }

    /// `t` expanded to `target` (which it must broadcast to), materialized.
    static func expand(_ t: HostTensor, to target: [Int]) throws -> HostTensor {
        if t.shape == target { return t }
        guard try shape(t.shape, target) == target else { throw ReferenceError("shape \(t.shape) does not broadcast to \(target)") }
        let rank = target.count
        let padded = [Int](repeating: 1, count: rank - t.rank) + t.shape
        let sourceStrides = HostTensor.strides(padded).enumerated().map { padded[$0.offset] == 1 ? 0 : $0.element }
        let count = target.reduce(1, *)
        var out = [Double](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: rank)
        for flat in 0..<count {
            var src = 0
            for d in 0..<rank { src += index[d] * sourceStrides[d] }
            out[flat] = t.storage[src]
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < target[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return HostTensor(dtype: t.dtype, shape: target, storage: out)
    }

    /// Applies `f` elementwise over broadcast operands.
    static func map(_ a: HostTensor, _ b: HostTensor, dtype: DType, _ f: (Double, Double) -> Double) throws -> HostTensor {
        let target = try shape(a.shape, b.shape)
        let x = try expand(a, to: target), y = try expand(b, to: target)
        var out = [Double](repeating: 0, count: x.count)
        for i in 0..<out.count { out[i] = f(x.storage[i], y.storage[i]) }
        return HostTensor(dtype: dtype, shape: target, storage: out)
    }

    /// A possibly negative axis, checked against `rank`.
    static func axis(_ a: Int, rank: Int) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < max(rank, 1) else { throw ReferenceError("axis \(a) is out of range for rank \(rank)") }
        return r
    }

    /// Splits a shape around `axis` into (outer, size, inner) element counts.
    static func around(_ shape: [Int], axis: Int) -> (outer: Int, size: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Type promotion for binary ops (floats win; bool < ints < floats); the rule lives in `ShapeRules`.
    static func promote(_ a: DType, _ b: DType) -> DType { ShapeRules.promote(a, b) }
}
