import MLXCIR

/// A tensor in its native layout for compiled kernels: dense row-major bytes of `dtype`
/// somewhere the runtime owns (the per-call arena, a state buffer, or the mapped program file).
public struct NativeTensor {
    public var dtype: DType
    public var shape: [Int]
    public var data: UnsafeMutableRawPointer

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

    /// A copy as a reference-executor tensor (decodes every element).
    public func host() throws -> HostTensor {
        HostTensor(dtype: dtype, shape: shape,
                   storage: try DTypeCodec.decode(UnsafeRawBufferPointer(start: data, count: byteCount), dtype, count: count))
    }

    /// Writes a reference tensor's elements into this tensor's bytes (shapes must agree).
    public func store(_ t: HostTensor) {
        let bytes = DTypeCodec.encode(t.storage, dtype)
        bytes.withUnsafeBytes { data.copyMemory(from: $0.baseAddress!, byteCount: min(bytes.count, byteCount)) }
    }

    /// The scalar held by a one-element tensor, as an Int (SymInts, positions).
    public func intValue() -> Int {
        switch dtype {
        case .i64: return Int(data.load(as: Int64.self))
        case .i32: return Int(data.load(as: Int32.self))
        case .u32: return Int(data.load(as: UInt32.self))
        case .i16: return Int(data.load(as: Int16.self))
        case .i8: return Int(data.load(as: Int8.self))
        case .u8, .bool: return Int(data.load(as: UInt8.self))
        case .f32: return Int(Int64(clampingToInt: Double(data.load(as: Float.self))))
        case .f64: return Int(Int64(clampingToInt: data.load(as: Double.self)))
        default: return Int(Int64(clampingToInt: (try? host().storage.first) ?? 0))
        }
    }
}
