import Foundation
import MLXCIR

/// A tensor read from or written to a NumPy `.npy` file (version 1/2, little-endian, C order).
public struct NPYArray: Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    static let descriptors: [(String, DType)] = [
        ("<f4", .f32), ("<f8", .f64), ("<f2", .f16), ("<i8", .i64), ("<i4", .i32), ("<i2", .i16), ("|i1", .i8),
        ("|u1", .u8), ("|b1", .bool), ("<u4", .u32), ("<u8", .u64), ("<u2", .u16),
    ]

    public struct Failure: Error, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(path: path, message: "cannot read the file") }
        try self.init(data: [UInt8](data), path: path)
    }

    public init(data: [UInt8], path: String = "<npy>") throws {
        func fail(_ m: String) -> Failure { Failure(path: path, message: m) }
        guard data.count >= 10, data[0] == 0x93, Array(data[1...5]) == Array("NUMPY".utf8) else { throw fail("not a .npy file (bad magic)") }
        let major = data[6]
        let headerLength: Int
        let headerStart: Int
        if major == 1 {
            headerLength = Int(data[8]) | Int(data[9]) << 8
            headerStart = 10
        } else {
            guard data.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
            headerStart = 12
        }
        guard headerStart + headerLength <= data.count else { throw fail("header runs past the end of the file") }
        let header = String(decoding: data[headerStart..<headerStart + headerLength], as: UTF8.self)
        guard let descr = Self.field(header, "descr"), let entry = Self.descriptors.first(where: { $0.0 == descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) }) else {
            throw fail("unsupported dtype in header \(header)")
        }
        if let order = Self.field(header, "fortran_order"), order.hasPrefix("True") { throw fail("Fortran-order arrays are not supported") }
        guard let shapeText = Self.field(header, "shape") else { throw fail("no shape in header") }
        let dims = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "()")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = try dims.map { guard let n = Int($0), n >= 0 else { throw fail("bad shape \(shapeText)") }; return n }
        let count = shape.reduce(1, *) * entry.1.byteSize
        let start = headerStart + headerLength
        guard data.count - start >= count else { throw fail("data holds \(data.count - start) bytes, \(count) needed for shape \(shape)") }
        self.init(dtype: entry.1, shape: shape, bytes: Array(data[start..<start + count]))
    }

    static func field(_ header: String, _ key: String) -> String? {
        guard let range = header.range(of: "'\(key)':") else { return nil }
        var rest = header[range.upperBound...].drop(while: { $0 == " " })
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        if let end = rest.firstIndex(where: { $0 == "," || $0 == "}" }) { rest = rest[..<end] }
        return String(rest).trimmingCharacters(in: .whitespaces)
    }

    /// Serializes as a version 1.0 `.npy` file.
    public func encoded() -> [UInt8] {
        let descr = Self.descriptors.first { $0.1 == dtype }?.0 ?? "<f4"
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let n = header.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xff), UInt8(n >> 8)] + Array(header.utf8) + bytes
    }
}
