import Foundation
import MLXCIR

/// Reduction helpers of the reference kernels: grouping elements by output position, walking
/// the lanes along one axis, and the NaN-aware orderings.
enum ReductionMath {
    /// The axes a reduction runs over, sorted: empty means all; negative axes count from the end;
    /// duplicates are an error. A rank-0 input accepts 0 and -1 (and reduces nothing).
    static func axes(_ axes: [Int], rank: Int, _ name: String) throws -> [Int] {
        if axes.isEmpty { return Array(0..<rank) }
        if rank == 0 {
            guard axes.allSatisfy({ $0 == 0 || $0 == -1 }) else {
                throw ReferenceError("\(name): axes \(axes) are out of range for a rank-0 tensor")
            }
            return []
        }
        var seen = Set<Int>()
        for a in axes {
            let r = a < 0 ? a + rank : a
            guard r >= 0 && r < rank else { throw ReferenceError("\(name): axis \(a) is out of range for rank \(rank)") }
            guard seen.insert(r).inserted else { throw ReferenceError("\(name): axis \(a) appears twice in \(axes)") }
        }
        return seen.sorted()
    }

    /// The shape after reducing `axes` of `shape` (kept as 1 with `keepdims`).
    static func reducedShape(_ shape: [Int], axes: [Int], keepdims: Bool) -> [Int] {
        var out: [Int] = []
        for (d, n) in shape.enumerated() {
            if axes.contains(d) { if keepdims { out.append(1) } } else { out.append(n) }
        }
        return out
    }

    /// Reduces `x` over `axes` (already normalized): `f` receives the elements of each output
    /// position, in row-major order.
    static func reduce(_ x: HostTensor, axes: [Int], keepdims: Bool, dtype: DType,
                       _ f: ([Double]) throws -> Double) throws -> HostTensor {
        let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let keptStrides = HostTensor.strides(kept).enumerated().map { axes.contains($0.offset) ? 0 : $0.element }
        var groups = [[Double]](repeating: [], count: kept.reduce(1, *))
        var index = [Int](repeating: 0, count: x.rank)
        for flat in 0..<x.count {
            var o = 0
            for d in 0..<x.rank { o += index[d] * keptStrides[d] }
            groups[o].append(x.storage[flat])
            var d = x.rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < x.shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return HostTensor(dtype: dtype, shape: reducedShape(x.shape, axes: axes, keepdims: keepdims),
                          storage: try groups.map(f))
    }

    /// Calls `f` with the element offsets of every lane along `axis` (rank-0 tensors are one lane of one).
    static func lanes(_ shape: [Int], axis: Int, _ f: ([Int]) throws -> Void) rethrows {
        if shape.isEmpty { try f([0]); return }
        let (outer, size, inner) = Broadcast.around(shape, axis: axis)
        for o in 0..<outer {
            for i in 0..<inner {
                try f((0..<size).map { o * size * inner + $0 * inner + i })
            }
        }
    }

    /// A total ascending order with NaN last (MLX, NumPy), ties broken by position: a stable sort.
    static func ascending(_ values: [Double]) -> [Int] {
        values.indices.sorted { i, j in
            let a = values[i], b = values[j]
            if a.isNaN != b.isNaN { return b.isNaN }
            if !a.isNaN && a != b { return a < b }
            return i < j
        }
    }

    /// Index of the first maximum (or minimum); a NaN counts as the extreme (PyTorch, NumPy).
    static func argExtreme(_ values: [Double], max: Bool) -> Int {
        var best = 0
        for (i, v) in values.enumerated() {
            if values[best].isNaN { break }
            if v.isNaN || (max ? v > values[best] : v < values[best]) { best = i }
        }
        return best
    }

    static func logSumExp(_ xs: [Double]) -> Double {
        if xs.contains(where: \.isNaN) { return .nan }
        guard let m = xs.max() else { return -.infinity }
        if m.isInfinite { return m }
        return m + log(xs.reduce(0) { $0 + exp($1 - m) })
    }

    /// MLX median: the middle of the sorted values, or the mean of the two middles; NaN if any is NaN.
    static func median(_ xs: [Double]) -> Double {
        if xs.contains(where: \.isNaN) { return .nan }
        let s = xs.sorted()
        let mid = s.count / 2
        return s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
    }

    static func variance(_ xs: [Double], ddof: Int) -> Double {
        let n = Double(xs.count)
        let mean = xs.reduce(0, +) / n
        let ss = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return ss / Swift.max(n - Double(ddof), 0)
    }
}

extension Environment {
    /// Reference kernels: Reduction ops. Returns false for ops of other families.
    mutating func executeReduction(_ op: Op) throws -> Bool {
        typealias R = ReductionMath
        switch op {
        case .sum(let o):
            try reduction("sum", o.x, o.out, o.axes, o.keepdims, dtype: integerAccumulator) { $0.reduce(0, +) }
        case .prod(let o):
            try reduction("prod", o.x, o.out, o.axes, o.keepdims, dtype: integerAccumulator) { xs in
                xs.reduce(1.0) { $0 * $1 }
            }
        case .mean(let o):
            try reduction("mean", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in ReferenceDTypes.atLeastFloat(d) }) {
                $0.reduce(0, +) / Double($0.count)
            }
        case .`var`(let o):
            try reduction("var", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in ReferenceDTypes.atLeastFloat(d) }) {
                R.variance($0, ddof: o.ddof)
            }
        case .std(let o):
            try reduction("std", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in ReferenceDTypes.atLeastFloat(d) }) {
                R.variance($0, ddof: o.ddof).squareRoot()
            }
        case .max(let o):
            try reduction("max", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in d }) { xs in
                guard !xs.isEmpty else { throw ReferenceError("max: cannot reduce over an axis of size 0") }
                return xs.contains(where: \.isNaN) ? .nan : xs.max()!
            }
        case .min(let o):
            try reduction("min", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in d }) { xs in
                guard !xs.isEmpty else { throw ReferenceError("min: cannot reduce over an axis of size 0") }
                return xs.contains(where: \.isNaN) ? .nan : xs.min()!
            }
        case .median(let o):
            try reduction("median", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in ReferenceDTypes.atLeastFloat(d) }) { xs in
                guard !xs.isEmpty else { throw ReferenceError("median: cannot take the median over an axis of size 0") }
                return R.median(xs)
            }
        case .logSumExp(let o):
            try reduction("log_sum_exp", o.x, o.out, o.axes, o.keepdims, dtype: { d, _ in ReferenceDTypes.atLeastFloat(d) }) { xs in
                guard !xs.isEmpty else { throw ReferenceError("log_sum_exp: cannot reduce an empty array") }
                return R.logSumExp(xs)
            }
        case .any(let o):
            try reduction("any", o.x, o.out, o.axes, o.keepdims, dtype: { _, _ in .bool }) { $0.contains { $0 != 0 } ? 1 : 0 }
        case .all(let o):
            try reduction("all", o.x, o.out, o.axes, o.keepdims, dtype: { _, _ in .bool }) { $0.allSatisfy { $0 != 0 } ? 1 : 0 }

        case .argmax(let o): try argReduce("argmax", o.x, o.out, o.axis, o.keepdims, max: true)
        case .argmin(let o): try argReduce("argmin", o.x, o.out, o.axis, o.keepdims, max: false)

        case .cumsum(let o):
            let x = try tensor(o.x)
            let axis = try alongAxis("cumsum", x, o.axis)
            // Bools sum as ints: the graph's declared integer type, else MLX's int32.
            let dt = x.dtype == .bool ? integerResult(o.out, default: .i32) : x.dtype
            var out = [Double](repeating: 0, count: x.count)
            R.lanes(x.shape, axis: axis) { lane in
                let order = o.reverse ? Array(lane.reversed()) : lane
                var acc = 0.0
                for k in order {
                    if o.inclusive { acc += x.storage[k]; out[k] = acc } else { out[k] = acc; acc += x.storage[k] }
                }
            }
            set(o.out, HostTensor(dtype: dt, shape: x.shape, storage: out))

        case .sort(let o): try sortAlong("sort", o.x, o.out, o.axis, indices: false, kth: nil)
        case .argsort(let o): try sortAlong("argsort", o.x, o.out, o.axis, indices: true, kth: nil)
        case .partition(let o): try sortAlong("partition", o.x, o.out, o.axis, indices: false, kth: try int(o.kth))
        case .argPartition(let o): try sortAlong("arg_partition", o.x, o.out, o.axis, indices: true, kth: try int(o.kth))

        default: return false
        }
        return true
    }

    /// The dtype of sum/prod: floats keep theirs; ints and bools take the graph's declared integer
    /// type (PyTorch's int64), else MLX's rule (int32 for bool and ints up to 32 bits, int64 above;
    /// unsigned likewise).
    private func integerAccumulator(_ d: DType, _ out: ValueID) -> DType {
        if ReferenceDTypes.isFloat(d) { return d }
        let fallback: DType
        switch d {
        case .i64: fallback = .i64
        case .u64: fallback = .u64
        case .u8, .u16, .u32: fallback = .u32
        default: fallback = .i32
        }
        return integerResult(out, default: fallback)
    }

    /// The declared dtype of `out` if it is an integer type, else `fallback`.
    private func integerResult(_ out: ValueID, default fallback: DType) -> DType {
        if let d = executor.graph[out].type?.dtype, ReferenceDTypes.isInteger(d) { return d }
        return fallback
    }

    private func alongAxis(_ name: String, _ x: HostTensor, _ axis: Int) throws -> Int {
        if x.rank == 0 {
            guard axis == 0 || axis == -1 else { throw ReferenceError("\(name): axis \(axis) is out of range for a rank-0 tensor") }
            return 0
        }
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0 && a < x.rank else { throw ReferenceError("\(name): axis \(axis) is out of range for shape \(x.shape)") }
        return a
    }

    private mutating func reduction(_ name: String, _ v: ValueID, _ out: ValueID, _ axes: [Int], _ keepdims: Bool,
                                    dtype: (DType, ValueID) -> DType, _ f: ([Double]) throws -> Double) throws {
        let x = try tensor(v)
        let ax = try ReductionMath.axes(axes, rank: x.rank, name)
        set(out, try ReductionMath.reduce(x, axes: ax, keepdims: keepdims, dtype: dtype(x.dtype, out), f))
    }

    /// argmax/argmin: the first extreme along `axis`; indices in the graph's declared integer type, else MLX's uint32.
    private mutating func argReduce(_ name: String, _ v: ValueID, _ out: ValueID, _ axis: Int, _ keepdims: Bool, max: Bool) throws {
        let x = try tensor(v)
        let a = try alongAxis(name, x, axis)
        guard x.count > 0 else { throw ReferenceError("\(name): cannot reduce the empty shape \(x.shape)") }
        var result: [Double] = []
        ReductionMath.lanes(x.shape, axis: a) { lane in
            result.append(Double(ReductionMath.argExtreme(lane.map { x.storage[$0] }, max: max)))
        }
        // `lanes` walks outer then inner positions: exactly row-major order of the reduced shape.
        let shape = x.rank == 0 ? [] : ReductionMath.reducedShape(x.shape, axes: [a], keepdims: keepdims)
        set(out, HostTensor(dtype: integerResult(out, default: .u32), shape: shape, storage: result))
    }

    /// sort/argsort, and partition/argpartition as a full sort (a sorted lane is a valid partition).
    /// Ascending, stable, NaN last. Indices take the graph's declared integer type, else MLX's uint32.
    private mutating func sortAlong(_ name: String, _ v: ValueID, _ out: ValueID, _ axis: Int, indices: Bool, kth: Int?) throws {
        let x = try tensor(v)
        let a = try alongAxis(name, x, axis)
        if let kth {
            let size = x.rank == 0 ? 1 : x.shape[a]
            let k = kth < 0 ? kth + size : kth
            guard k >= 0 && k < size else { throw ReferenceError("\(name): kth \(kth) is out of range for axis \(axis) of shape \(x.shape)") }
        }
        var storage = [Double](repeating: 0, count: x.count)
        ReductionMath.lanes(x.shape, axis: a) { lane in
            let order = ReductionMath.ascending(lane.map { x.storage[$0] })
            for (k, src) in order.enumerated() {
                storage[lane[k]] = indices ? Double(src) : x.storage[lane[src]]
            }
        }
        set(out, HostTensor(dtype: indices ? integerResult(out, default: .u32) : x.dtype, shape: x.shape, storage: storage))
    }
}
