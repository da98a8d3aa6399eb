import MLXCIR

/// A tensor for the reference executor: dense, row-major, every element held as a `Double`
/// (exact for f32/f16/bf16 values, all ints up to 2^53, bools and packed uint32 words).
/// Results are rounded to their dtype after each op, so bf16 and f16 models see the same
/// precision loss as PyTorch's eager kernels. Clear before fast: this is the oracle.
public struct HostTensor: Equatable, Sendable {
    public var dtype: DType
    public var shape: [Int]
    public var storage: [Double]

    public init(dtype: DType, shape: [Int], storage: [Double]) {
        precondition(storage.count == shape.reduce(1, *), "storage \(storage.count) does not match shape \(shape)")
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    public init(dtype: DType, shape: [Int], repeating value: Double = 0) {
        self.init(dtype: dtype, shape: shape, storage: [Double](repeating: value, count: shape.reduce(1, *)))
    }

    public static func scalar(_ x: Double, _ dtype: DType) -> HostTensor { HostTensor(dtype: dtype, shape: [], storage: [x]) }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// Row-major strides in elements.
    public var strides: [Int] { HostTensor.strides(shape) }

    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// The single element of a one-element tensor.
    public func item() throws -> Double {
        guard count == 1 else { throw ReferenceError("expected a single element, got shape \(shape)") }
        return storage[0]
    }

    /// Rounds every element to what `dtype` can hold (float formats round to nearest even; ints wrap like C).
    public func rounded() -> HostTensor {
        var r = self
        r.storage = storage.map { DTypeCodec.round($0, to: dtype) }
        return r
    }

    public func converted(to target: DType) -> HostTensor {
        var r = HostTensor(dtype: target, shape: shape, storage: storage)
        r = r.rounded()
        return r
    }

    public func reshaped(_ newShape: [Int]) -> HostTensor {
        HostTensor(dtype: dtype, shape: newShape, storage: storage)
    }
}

/// A failure while executing: names the op and what is wrong (shapes, dtypes, missing values).
public struct ReferenceError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
