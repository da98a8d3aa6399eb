/// Result dtypes, as the reference kernels choose them (Runtime/Reference: `ReferenceDTypes` and
/// `Broadcast.promote`). Kept here, below the runtime, so compiled kernels and the reference agree.
extension ShapeRules {
    /// bool < integer < floating point (the reference's `ReferenceDTypes.Kind`).
    public enum Kind: Int, Comparable, Sendable {
        case bool = 0, integer = 1, float = 2
        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    public static func kind(_ d: DType) -> Kind {
        switch d {
        case .bool: return .bool
        case .f16, .bf16, .f32, .f64, .f8e5m2, .f8e4m3fn, .f8e5m2fnuz, .f8e4m3fnuz: return .float
        default: return .integer
        }
    }

    static func isFloat(_ d: DType) -> Bool { kind(d) == .float }
    static func isInteger(_ d: DType) -> Bool { kind(d) == .integer }

    /// MLX `at_least_float`: floats stay, bools and ints become f32.
    public static func atLeastFloat(_ d: DType) -> DType { isFloat(d) ? d : .f32 }

    /// Type promotion of two dtypes regardless of rank (`Broadcast.promote`): floats win over ints
    /// over bools; bf16 with f16 gives f32; among ints the wider (the first on a tie).
    public static func promote(_ a: DType, _ b: DType) -> DType {
        if a == b { return a }
        func rank(_ d: DType) -> Int {
            switch d {
            case .bool: return 0
            case .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return 1
            default: return 2
            }
        }
        let ra = rank(a), rb = rank(b)
        if ra != rb { return ra > rb ? a : b }
        if ra == 2 {
            if (a == .bf16 && b == .f16) || (a == .f16 && b == .bf16) { return .f32 }
            func order(_ d: DType) -> Int {
                switch d {
                case .bf16: return 0
                case .f16: return 1
                case .f32: return 2
                case .f64: return 3
                default: return 2
                }
            }
            return order(a) >= order(b) ? a : b
        }
        return a.byteSize >= b.byteSize ? a : b
    }

    /// The dtype of a binary elementwise op (`ReferenceDTypes.binary`): equal dtypes keep it; a rank-0
    /// operand against a tensor of rank > 0 does not promote within or above its own kind (a bf16
    /// tensor times an f32 scalar stays bf16), and a rank-0 f64 with an int or bool tensor gives f32;
    /// otherwise `promote`.
    public static func binary(_ a: DType, rank ra: Int, _ b: DType, rank rb: Int) -> DType {
        if a == b { return a }
        func scalarWith(_ scalar: DType, tensor: DType) -> DType {
            if kind(scalar) <= kind(tensor) { return tensor }
            if scalar == .f64 { return .f32 }
            return promote(scalar, tensor)
        }
        if ra == 0 && rb > 0 { return scalarWith(a, tensor: b) }
        if rb == 0 && ra > 0 { return scalarWith(b, tensor: a) }
        return promote(a, b)
    }

    @inline(__always)
    static func binary(_ a: TensorType, _ b: TensorType) -> DType { binary(a.dtype, rank: a.rank, b.dtype, rank: b.rank) }
}
