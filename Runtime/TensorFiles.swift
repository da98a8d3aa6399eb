import Foundation
import MLXCIR

/// Reading and writing tensors: NumPy `.npy` files and the MLX op-test `.bin` format
/// (uint32 count; per tensor: uint32 dtype code, uint32 rank, int32 dims, raw little-endian data).
public enum TensorFiles {
    public static func read(_ path: String) throws -> [HostTensor] {
        if path.hasSuffix(".bin") { return try readBin(path) }
        return [try readNPY(path)]
    }

    public static func readNPY(_ path: String) throws -> HostTensor {
        let array = try NPYArray(path: path)
        let count = array.shape.reduce(1, *)
        let values = try array.bytes.withUnsafeBytes { try DTypeCodec.decode($0, array.dtype, count: count) }
        return HostTensor(dtype: array.dtype, shape: array.shape, storage: values)
    }

    /// Writes `.npy`; bf16 and f16 are widened to float32 (`.npy` has no bf16).
    public static func writeNPY(_ tensor: HostTensor, to path: String) throws {
        let dtype: DType = (tensor.dtype == .bf16 || tensor.dtype == .f16) ? .f32 : tensor.dtype
        let array = NPYArray(dtype: dtype, shape: tensor.shape, bytes: DTypeCodec.encode(tensor.storage, dtype))
        guard FileManager.default.createFile(atPath: path, contents: Data(array.encoded())) else {
            throw ReferenceError("cannot write \(path)")
        }
    }

    static let binCodes: [UInt32: DType] = [0: .f32, 1: .f16, 2: .i32, 3: .i64, 4: .bf16, 5: .bool, 6: .u8]

    public static func readBin(_ path: String) throws -> [HostTensor] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReferenceError("\(path): cannot read the file") }
        let bytes = [UInt8](data)
        var at = 0
        func u32() throws -> UInt32 {
            guard at + 4 <= bytes.count else { throw ReferenceError("\(path): truncated at byte \(at)") }
            defer { at += 4 }
            return UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        let count = try u32()
        guard count < 4096 else { throw ReferenceError("\(path): \(count) tensors is not a plausible count (corrupt?)") }
        var tensors: [HostTensor] = []
        for i in 0..<Int(count) {
            let code = try u32()
            guard let dtype = binCodes[code] else { throw ReferenceError("\(path): tensor \(i) has unknown dtype code \(code)") }
            let rank = try u32()
            guard rank <= 16 else { throw ReferenceError("\(path): tensor \(i) has rank \(rank)") }
            var shape: [Int] = []
            for _ in 0..<rank {
                let d = Int(Int32(bitPattern: try u32()))
                guard d >= 0 else { throw ReferenceError("\(path): tensor \(i) has a negative dimension") }
                shape.append(d)
            }
            let (n, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow, n * dtype.byteSize <= bytes.count - at else {
                throw ReferenceError("\(path): tensor \(i) of shape \(shape) runs past the end of the file")
            }
            let values = try bytes[at..<at + n * dtype.byteSize].withUnsafeBytes { try DTypeCodec.decode($0, dtype, count: n) }
            at += n * dtype.byteSize
            tensors.append(HostTensor(dtype: dtype, shape: shape, storage: values))
        }
        return tensors
    }

    /// One line per tensor: dtype, shape and a few statistics, for `mlxc run` without `--output-dir`.
    public static func summary(_ t: HostTensor) -> String {
        let finite = t.storage.filter(\.isFinite)
        let mean = finite.isEmpty ? 0 : finite.reduce(0, +) / Double(finite.count)
        let head = t.storage.prefix(6).map { formatIRNumber(DTypeCodec.round($0, to: .f32)) }.joined(separator: ", ")
        return "\(t.dtype.name)\(t.shape) min \(finite.min().map { String($0) } ?? "-") max \(finite.max().map { String($0) } ?? "-") "
            + "mean \(mean) [\(head)\(t.count > 6 ? ", …" : "")]"
    }
}
