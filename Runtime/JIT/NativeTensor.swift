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

/// Memory for one call's intermediate values: a bump allocator over 64-byte-aligned chunks.
/// After the first call it holds one chunk big enough for a whole call, so later calls do not allocate.
final class Arena {
    private var chunks: [(base: UnsafeMutableRawPointer, size: Int)] = []
    private var offset = 0
    private var used = 0
    private(set) var highWater = 0

    deinit { for c in chunks { c.base.deallocate() } }

    /// Forgets every allocation; merges chunks into one when a call needed more than the first.
    func reset() {
        if chunks.count > 1 {
            let total = max(highWater, chunks.reduce(0) { $0 + $1.size })
            for c in chunks { c.base.deallocate() }
            chunks = [(UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 64), total)]
        }
        offset = 0
        used = 0
    }

    /// Whether `p` points into this arena's memory (a value that dies with the call).
    func contains(_ p: UnsafeRawPointer) -> Bool {
        chunks.contains { p >= UnsafeRawPointer($0.base) && p < UnsafeRawPointer($0.base) + $0.size }
    }

    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = (max(bytes, 1) + 63) & ~63
        if chunks.isEmpty || offset + size > chunks[chunks.count - 1].size {
            let chunkSize = max(size, 1 << 20, (chunks.last?.size ?? 0) * 2)
            chunks.append((UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 64), chunkSize))
            offset = 0
        }
        let p = chunks[chunks.count - 1].base + offset
        offset += size
        used += size
        highWater = max(highWater, used)
        return p
    }
}
