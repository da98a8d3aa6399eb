/// A bounds-checked, little-endian, read-only window over bytes that somebody else owns
/// (a memory-mapped file, or a slice of one). Every read checks its range first and throws.
public struct ByteView: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    /// Keeps the owner (e.g. the mapping) alive while views exist.
    public let owner: AnyObject?

    public init(base: UnsafeRawPointer, count: Int, owner: AnyObject?) {
        self.base = base
        self.count = count
        self.owner = owner
    }

    @inline(__always)
    public func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    public func check(_ offset: Int, _ length: Int, _ context: @autoclosure () -> String) throws {
        guard contains(offset, length) else {
            throw FormatError(context(), at: offset,
                              "\(length) bytes needed but the data ends at \(count)")
        }
    }

    @inline(__always)
    public func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int, _ context: @autoclosure () -> String) throws -> T {
        try check(offset, MemoryLayout<T>.size, context())
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    public func loadFloat(at offset: Int, _ context: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try load(UInt32.self, at: offset, context()))
    }

    public func loadDouble(at offset: Int, _ context: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try load(UInt64.self, at: offset, context()))
    }

    public func slice(_ offset: Int, _ length: Int, _ context: @autoclosure () -> String) throws -> ByteView {
        try check(offset, length, context())
        return ByteView(base: base + offset, count: length, owner: owner)
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    public func string(at offset: Int, length: Int, _ context: @autoclosure () -> String) throws -> String {
        try check(offset, length, context())
        let buffer = UnsafeRawBufferPointer(start: base + offset, count: length)
        return String(decoding: buffer, as: UTF8.self)
    }
}
