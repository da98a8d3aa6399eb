/// One dimension: a fixed size, or a size known only at run time within bounds
/// (a prefill length, say). `max == nil` means unbounded.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case dynamic(min: Int, max: Int?)

    public var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .dynamic(let lo, let hi): return "?\(lo)..\(hi.map(String.init) ?? "")"
        }
    }

    public var fixedValue: Int? { if case .fixed(let n) = self { return n } else { return nil } }
    /// The largest size this dimension can take (what memory planning must reserve), if bounded.
    public var upperBound: Int? {
        switch self {
        case .fixed(let n): return n
        case .dynamic(_, let hi): return hi
        }
    }
}

/// The type of every IR value: element type and shape. Scalars (symbolic ints, `item()` results) are rank 0.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Dim]

    public init(_ dtype: DType, _ shape: [Dim]) {
        self.dtype = dtype
        self.shape = shape
    }

    public init(_ dtype: DType, fixed: [Int]) {
        self.init(dtype, fixed.map { .fixed($0) })
    }

    public var rank: Int { shape.count }
    /// The sizes, when every dimension is fixed.
    public var staticShape: [Int]? {
        var sizes: [Int] = []
        for d in shape {
            guard let n = d.fixedValue else { return nil }
            sizes.append(n)
        }
        return sizes
    }
    public var isStatic: Bool { shape.allSatisfy { $0.fixedValue != nil } }
    /// Element count at the upper bound of every dimension (nil if some dimension is unbounded
    /// or the count does not fit in an Int).
    public var maxElementCount: Int? {
        var total = 1
        for d in shape {
            guard let n = d.upperBound else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: n)
            guard !overflow else { return nil }
            total = product
        }
        return total
    }

    /// Bytes at the upper bound of every dimension (nil if unbounded or too large).
    public var maxByteCount: Int? {
        guard let n = maxElementCount else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: dtype.byteSize)
        return overflow ? nil : bytes
    }

    public var description: String { "\(dtype.name)[\(shape.map(\.description).joined(separator: ", "))]" }
}
