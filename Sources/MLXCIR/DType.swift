/// Element types. Raw values are ExecuTorch's `ScalarType` codes, which both input families use.
public enum DType: Int8, CaseIterable, Sendable, Hashable {
    case u8 = 0, i8 = 1, i16 = 2, i32 = 3, i64 = 4
    case f16 = 5, f32 = 6, f64 = 7
    case bool = 11
    case qi8 = 12, qu8 = 13, qi32 = 14
    case bf16 = 15
    case qu4x2 = 16, qu2x4 = 17
    case bits16 = 22
    case f8e5m2 = 23, f8e4m3fn = 24, f8e5m2fnuz = 25, f8e4m3fnuz = 26
    case u16 = 27, u32 = 28, u64 = 29

    /// Bytes per element (packed sub-byte types report their container byte).
    public var byteSize: Int {
        switch self {
        case .u8, .i8, .bool, .qi8, .qu8, .qu4x2, .qu2x4, .f8e5m2, .f8e4m3fn, .f8e5m2fnuz, .f8e4m3fnuz: return 1
        case .i16, .f16, .bf16, .bits16, .u16: return 2
        case .i32, .f32, .qi32, .u32: return 4
        case .i64, .f64, .u64: return 8
        }
    }

    /// The short name used in IR text, e.g. `f32`.
    public var name: String {
        switch self {
        case .u8: "u8"; case .i8: "i8"; case .i16: "i16"; case .i32: "i32"; case .i64: "i64"
        case .f16: "f16"; case .f32: "f32"; case .f64: "f64"; case .bool: "bool"
        case .qi8: "qi8"; case .qu8: "qu8"; case .qi32: "qi32"; case .bf16: "bf16"
        case .qu4x2: "qu4x2"; case .qu2x4: "qu2x4"; case .bits16: "bits16"
        case .f8e5m2: "f8e5m2"; case .f8e4m3fn: "f8e4m3fn"; case .f8e5m2fnuz: "f8e5m2fnuz"; case .f8e4m3fnuz: "f8e4m3fnuz"
        case .u16: "u16"; case .u32: "u32"; case .u64: "u64"
        }
    }

    /// ExecuTorch's own spelling (`Float`, `Long`, …), as `inspect` shows it.
    public var executorchName: String {
        switch self {
        case .u8: "Byte"; case .i8: "Char"; case .i16: "Short"; case .i32: "Int"; case .i64: "Long"
        case .f16: "Half"; case .f32: "Float"; case .f64: "Double"; case .bool: "Bool"
        case .qi8: "QInt8"; case .qu8: "QUInt8"; case .qi32: "QInt32"; case .bf16: "BFloat16"
        case .qu4x2: "QUInt4x2"; case .qu2x4: "QUInt2x4"; case .bits16: "Bits16"
        case .f8e5m2: "Float8_e5m2"; case .f8e4m3fn: "Float8_e4m3fn"; case .f8e5m2fnuz: "Float8_e5m2fnuz"
        case .f8e4m3fnuz: "Float8_e4m3fnuz"; case .u16: "UInt16"; case .u32: "UInt32"; case .u64: "UInt64"
        }
    }

    public init?(name: String) {
        guard let match = DType.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }

    public var isFloatingPoint: Bool { [.f16, .bf16, .f32, .f64].contains(self) }
}
