/// A bounds-checked FlatBuffers decoder. It only follows what a schema asks for, so reading is
/// bounded by the schema's depth; vectors are checked against the buffer before any element is
/// touched, and a shared work budget stops inputs that reference one large table many times.
public final class FlatBuffer: @unchecked Sendable {
    public let data: ByteView
    /// Names the byte space in errors (empty for the file itself).
    public let space: String
    /// Offset of `data` inside the file, added to every offset reported in errors.
    public let fileOffset: Int
    private var budget: Int

    public init(_ data: ByteView, space: String = "", fileOffset: Int = 0) {
        self.data = data
        self.space = space
        self.fileOffset = fileOffset
        // Honest files decode far below this: every element is read once or a few times.
        self.budget = 64 * max(data.count, 1024) + 1_000_000
    }

    public func error(_ context: String, _ offset: Int, _ message: String) -> FormatError {
        FormatError(context, at: fileOffset + offset, message, space: space)
    }

    func spend(_ units: Int, _ context: String, _ offset: Int) throws {
        budget -= units
        if budget < 0 {
            throw error(context, offset, "decoding work exceeds 64x the buffer size (tables referenced over and over)")
        }
    }

    /// The root table, from the uoffset at byte 0.
    public func root(_ tableName: String) throws -> FBTable {
        let rootOffset = try u32(0, "\(tableName) root offset")
        return try table(at: Int(rootOffset), tableName)
    }

    @inline(__always)
    func u32(_ offset: Int, _ context: @autoclosure () -> String) throws -> UInt32 {
        guard data.contains(offset, 4) else {
            throw error(context(), offset, "4 bytes needed but the buffer ends at \(data.count)")
        }
        return UInt32(littleEndian: data.base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func table(at position: Int, _ name: String) throws -> FBTable {
        try spend(1, name, position)
        let soffset = Int32(bitPattern: try u32(position, "\(name) vtable offset"))
        let vtable = position - Int(soffset)
        guard data.contains(vtable, 4) else {
            throw error(name, position, "vtable at \(fileOffset + vtable) lies outside the buffer (size \(data.count))")
        }
        let vtableSize = Int(UInt16(littleEndian: data.base.loadUnaligned(fromByteOffset: vtable, as: UInt16.self)))
        let tableSize = Int(UInt16(littleEndian: data.base.loadUnaligned(fromByteOffset: vtable + 2, as: UInt16.self)))
        guard vtableSize >= 4, vtableSize & 1 == 0, data.contains(vtable, vtableSize) else {
            throw error(name, vtable, "invalid vtable size \(vtableSize)")
        }
        guard tableSize >= 4, data.contains(position, tableSize) else {
            throw error(name, position, "table of \(tableSize) bytes runs past the buffer end \(data.count)")
        }
        return FBTable(fb: self, position: position, vtable: vtable, vtableSize: vtableSize, tableSize: tableSize, name: name)
    }
}

/// One table inside a `FlatBuffer`. Field ids are declaration order; a union takes two ids.
public struct FBTable {
    public let fb: FlatBuffer
    public let position: Int
    let vtable: Int
    let vtableSize: Int
    let tableSize: Int
    public let name: String

    /// Byte position of field `id`, or nil when absent (then the default applies).
    func fieldPosition(_ id: Int, size: Int, _ field: String) throws -> Int? {
        let slot = 4 + 2 * id
        guard slot + 2 <= vtableSize else { return nil }
        let relative = Int(UInt16(littleEndian: fb.data.base.loadUnaligned(fromByteOffset: vtable + slot, as: UInt16.self)))
        guard relative != 0 else { return nil }
        guard relative + size <= tableSize else {
            throw fb.error("\(name).\(field)", position + relative,
                           "field of \(size) bytes at table offset \(relative) runs past the table's \(tableSize) bytes")
        }
        return position + relative
    }

    public func has(_ id: Int) -> Bool {
        let slot = 4 + 2 * id
        guard slot + 2 <= vtableSize else { return false }
        return fb.data.base.loadUnaligned(fromByteOffset: vtable + slot, as: UInt16.self) != 0
    }

    // MARK: scalars

    public func scalar<T: FixedWidthInteger>(_ id: Int, _ field: String, default value: T) throws -> T {
        guard let at = try fieldPosition(id, size: MemoryLayout<T>.size, field) else { return value }
        return T(littleEndian: fb.data.base.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    public func bool(_ id: Int, _ field: String, default value: Bool = false) throws -> Bool {
        try scalar(id, field, default: UInt8(value ? 1 : 0)) != 0
    }

    public func float(_ id: Int, _ field: String, default value: Float = 0) throws -> Float {
        guard has(id) else { return value }
        return Float(bitPattern: try scalar(id, field, default: UInt32(0)))
    }

    public func double(_ id: Int, _ field: String, default value: Double = 0) throws -> Double {
        guard has(id) else { return value }
        return Double(bitPattern: try scalar(id, field, default: UInt64(0)))
    }

    /// An optional scalar (`field: T = null` in the schema): nil when absent.
    public func optionalScalar<T: FixedWidthInteger>(_ id: Int, _ field: String, _ type: T.Type) throws -> T? {
        guard has(id) else { return nil }
        return try scalar(id, field, default: T.zero)
    }

    // MARK: references

    /// Follows the uoffset stored at field `id`; nil when the field is absent.
    func reference(_ id: Int, _ field: String) throws -> Int? {
        guard let at = try fieldPosition(id, size: 4, field) else { return nil }
        let relative = try fb.u32(at, "\(name).\(field)")
        let target = at + Int(relative)
        guard relative != 0, target < fb.data.count else {
            throw fb.error("\(name).\(field)", at, "reference to \(fb.fileOffset + target) points outside the buffer (size \(fb.data.count))")
        }
        return target
    }

    public func table(_ id: Int, _ field: String, _ typeName: String) throws -> FBTable? {
        guard let target = try reference(id, field) else { return nil }
        return try fb.table(at: target, typeName)
    }

    public func requiredTable(_ id: Int, _ field: String, _ typeName: String) throws -> FBTable {
        guard let table = try table(id, field, typeName) else {
            throw fb.error("\(name).\(field)", position, "required table \(typeName) is missing")
        }
        return table
    }

    public func string(_ id: Int, _ field: String) throws -> String? {
        guard let target = try reference(id, field) else { return nil }
        return try fb.readString(at: target, "\(name).\(field)")
    }

    public func vector(_ id: Int, _ field: String, elementSize: Int) throws -> FBVector? {
        guard let target = try reference(id, field) else { return nil }
        return try fb.readVector(at: target, elementSize: elementSize, "\(name).\(field)")
    }

    /// The byte position of an inline struct field (structs are stored in the table itself).
    public func structPosition(_ id: Int, _ field: String, size: Int) throws -> Int? {
        try fieldPosition(id, size: size, field)
    }
}

/// A vector whose length and element range were checked against the buffer.
public struct FBVector {
    public let fb: FlatBuffer
    /// Position of element 0.
    public let start: Int
    public let count: Int
    public let elementSize: Int
    public let context: String

    public func scalar<T: FixedWidthInteger>(_ index: Int, _ type: T.Type) -> T {
        precondition(index >= 0 && index < count && MemoryLayout<T>.size == elementSize)
        return T(littleEndian: fb.data.base.loadUnaligned(fromByteOffset: start + index * elementSize, as: T.self))
    }

    public func scalars<T: FixedWidthInteger>(_ type: T.Type) -> [T] {
        (0..<count).map { scalar($0, type) }
    }

    public func floats() -> [Float] { scalars(UInt32.self).map(Float.init(bitPattern:)) }
    public func doubles() -> [Double] { scalars(UInt64.self).map(Double.init(bitPattern:)) }
    public func bools() -> [Bool] { scalars(UInt8.self).map { $0 != 0 } }

    public func table(_ index: Int, _ typeName: String) throws -> FBTable {
        let at = start + index * 4
        let relative = Int(scalar(index, UInt32.self))
        let target = at + relative
        guard relative != 0, target < fb.data.count else {
            throw fb.error("\(context)[\(index)]", at, "reference to \(fb.fileOffset + target) points outside the buffer")
        }
        return try fb.table(at: target, typeName)
    }

    public func tables(_ typeName: String) throws -> [FBTable] {
        try (0..<count).map { try table($0, typeName) }
    }

    public func string(_ index: Int) throws -> String {
        let at = start + index * 4
        return try fb.readString(at: at + Int(scalar(index, UInt32.self)), "\(context)[\(index)]")
    }

    /// The raw bytes of the whole vector (a `[ubyte]` blob), without copying.
    public var bytes: ByteView { ByteView(base: fb.data.base + start, count: count * elementSize, owner: fb.data.owner) }

    /// Position of element `index` (for vectors of inline structs).
    public func elementPosition(_ index: Int) -> Int { start + index * elementSize }
}

extension FlatBuffer {
    func readVector(at position: Int, elementSize: Int, _ context: String) throws -> FBVector {
        let count = Int(try u32(position, "\(context) length"))
        let start = position + 4
        guard data.contains(start, count.multipliedReportingOverflow(by: elementSize).partialValue),
              !count.multipliedReportingOverflow(by: elementSize).overflow else {
            throw error(context, position, "vector of \(count) elements of \(elementSize) bytes runs past the buffer end \(data.count)")
        }
        try spend(count / 8 + 1, context, position)
        return FBVector(fb: self, start: start, count: count, elementSize: elementSize, context: context)
    }

    func readString(at position: Int, _ context: String) throws -> String {
        let length = Int(try u32(position, "\(context) length"))
        guard data.contains(position + 4, length) else {
            throw error(context, position, "string of \(length) bytes runs past the buffer end \(data.count)")
        }
        try spend(length / 8 + 1, context, position)
        return String(decoding: UnsafeRawBufferPointer(start: data.base + position + 4, count: length), as: UTF8.self)
    }

    /// Reads a little-endian scalar at an absolute position (inline struct fields).
    public func structScalar<T: FixedWidthInteger>(_ position: Int, _ type: T.Type, _ context: String) throws -> T {
        guard data.contains(position, MemoryLayout<T>.size) else {
            throw error(context, position, "struct field past the buffer end")
        }
        return T(littleEndian: data.base.loadUnaligned(fromByteOffset: position, as: T.self))
    }
}

extension FBTable {
    /// The `uint32` at the start of inline struct field `id` (a `Tid`/`Vid` index) and the position it
    /// was read from; nil when the field is absent.
    public func structUInt32(_ id: Int, _ field: String) throws -> (value: UInt32, position: Int)? {
        guard let at = try fieldPosition(id, size: 4, field) else { return nil }
        return (try fb.u32(at, "\(name).\(field)"), at)
    }

    /// Where field `id` is stored, or the table's own position when it is absent (for error messages).
    public func positionOf(_ id: Int) -> Int {
        let slot = 4 + 2 * id
        guard id >= 0, slot + 2 <= vtableSize else { return position }
        let relative = Int(UInt16(littleEndian: fb.data.base.loadUnaligned(fromByteOffset: vtable + slot, as: UInt16.self)))
        return relative == 0 ? position : position + relative
    }
}
