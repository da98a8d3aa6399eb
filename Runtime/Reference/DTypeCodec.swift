import MLXCIR

/// Conversion between raw little-endian bytes of each dtype and the reference executor's `Double`s.
public enum DTypeCodec {
    public static func decode(_ bytes: UnsafeRawBufferPointer, _ dtype: DType, count: Int) throws -> [Double] {
        guard bytes.count >= count * dtype.byteSize else {
            throw ReferenceError("\(count) \(dtype.name) elements need \(count * dtype.byteSize) bytes, got \(bytes.count)")
        }
        func load<T: FixedWidthInteger>(_ t: T.Type) -> [Double] {
            (0..<count).map { Double(T(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
        }
        switch dtype {
        case .f32: return (0..<count).map { Double(Float(bitPattern: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        case .f64: return (0..<count).map { Double(bitPattern: bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        case .f16: return (0..<count).map { Double(halfToFloat(bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        case .bf16: return (0..<count).map { Double(Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16)) }
        case .i64: return load(Int64.self)
        case .i32, .qi32: return load(Int32.self)
        case .i16: return load(Int16.self)
        case .i8, .qi8: return load(Int8.self)
        case .u8, .qu8, .qu4x2, .qu2x4: return load(UInt8.self)
        case .bool: return load(UInt8.self).map { $0 != 0 ? 1 : 0 }
        case .u16, .bits16: return load(UInt16.self)
        case .u32: return load(UInt32.self)
        case .u64: return load(UInt64.self)
        case .f8e4m3fn: return load(UInt8.self).map { fp8e4m3ToDouble(UInt8($0)) }
        case .f8e5m2: return load(UInt8.self).map { Double(halfToFloat(UInt16(UInt8($0)) << 8)) }
        case .f8e5m2fnuz, .f8e4m3fnuz:
            throw ReferenceError("dtype \(dtype.name) is not supported by the reference executor")
        }
    }

    public static func encode(_ values: [Double], _ dtype: DType) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * dtype.byteSize)
        func put<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) } }
        for v in values {
            switch dtype {
            case .f32: put(Float(v).bitPattern)
            case .f64: put(v.bitPattern)
            case .f16: put(floatToHalf(Float(v)))
            case .bf16: put(floatToBF16(Float(v)))
            case .i64: put(Int64(clampingToInt: v))
            case .i32, .qi32: put(Int32(truncatingIfNeeded: Int64(clampingToInt: v)))
            case .i16: put(Int16(truncatingIfNeeded: Int64(clampingToInt: v)))
            case .i8, .qi8: put(Int8(truncatingIfNeeded: Int64(clampingToInt: v)))
            case .u8, .qu8, .qu4x2, .qu2x4, .f8e4m3fn, .f8e5m2, .f8e5m2fnuz, .f8e4m3fnuz: put(UInt8(truncatingIfNeeded: Int64(clampingToInt: v)))
            case .bool: put(UInt8(v != 0 ? 1 : 0))
            case .u16, .bits16: put(UInt16(truncatingIfNeeded: Int64(clampingToInt: v)))
            case .u32: put(UInt32(truncatingIfNeeded: Int64(clampingToInt: v)))
            case .u64: put(UInt64(truncatingIfNeeded: Int64(clampingToInt: v)))
            }
        }
        return out
    }

    /// The nearest value `dtype` can represent (ints truncate toward zero and wrap, like a C cast).
    @inline(__always)
    public static func round(_ v: Double, to dtype: DType) -> Double {
        switch dtype {
        case .f32: return Double(Float(v))
        case .f64: return v
        case .f16: return Double(halfToFloat(floatToHalf(Float(v))))
        case .bf16: return Double(Float(bitPattern: UInt32(floatToBF16(Float(v))) << 16))
        case .bool: return v != 0 ? 1 : 0
        case .i64: return Double(Int64(clampingToInt: v))
        case .i32, .qi32: return Double(Int32(truncatingIfNeeded: Int64(clampingToInt: v)))
        case .i16: return Double(Int16(truncatingIfNeeded: Int64(clampingToInt: v)))
        case .i8, .qi8: return Double(Int8(truncatingIfNeeded: Int64(clampingToInt: v)))
        case .u8, .qu8: return Double(UInt8(truncatingIfNeeded: Int64(clampingToInt: v)))
        case .u16: return Double(UInt16(truncatingIfNeeded: Int64(clampingToInt: v)))
        case .u32: return Double(UInt32(truncatingIfNeeded: Int64(clampingToInt: v)))
        default: return v
        }
    }

    /// float → bfloat16 bits, round to nearest even (NaN stays NaN).
    public static func floatToBF16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let bits = f.bitPattern
        let rounding = ((bits >> 16) & 1) &+ 0x7FFF
        return UInt16((bits &+ rounding) >> 16)
    }

    public static func halfToFloat(_ h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

    public static func floatToHalf(_ f: Float) -> UInt16 { Float16(f).bitPattern }

    /// OCP FP8 E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa; no infinities, 0x7F/0xFF are NaN.
    public static func fp8e4m3ToDouble(_ b: UInt8) -> Double {
        let sign: Double = b & 0x80 != 0 ? -1 : 1
        let e = Int((b >> 3) & 0xF), m = Double(b & 0x7)
        if e == 0xF && b & 0x7 == 0x7 { return .nan }
        if e == 0 { return sign * m / 8 * pow2(-6) }
        return sign * (1 + m / 8) * pow2(e - 7)
    }

    static func pow2(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }
}

extension Int64 {
    /// Truncates toward zero, saturating at the Int64 range (NaN → 0), so no cast ever traps.
    init(clampingToInt v: Double) {
        if v.isNaN { self = 0 }
        else if v >= 9.2e18 { self = .max }
        else if v <= -9.2e18 { self = .min }
        else { self = Int64(v.rounded(.towardZero)) }
    }
}
