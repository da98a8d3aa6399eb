import Foundation
import LLVMKit
import MLXCFrontend

/// An ahead-of-time build (`mlxc compile -o MODEL.mlxc`): the kernels' optimized object code and a
/// record of the execution plan. Weights stay in the `.pte`, which the artifact names and hashes
/// and which is memory-mapped again at load. Layout: `MLXCART1`, UInt64 header length, a JSON
/// header, then the object code.
public struct Artifact: Codable {
    public static let magic = Array("MLXCART1".utf8)

    public var mlxcVersion: String
    public var programPath: String
    public var programBytes: Int
    public var programHash: String
    public var method: String
    public var cpu: String
    public var features: String
    public var kernels: [String]
    public var plan: [String]
    public var objectBytes: Int
    /// The passes the program was compiled with (loading replans with the same ones).
    public var pipeline: [String]?
    /// `hash` of the object code, set by `write`: a changed byte in the code must be refused before
    /// LLVM links it (a size check alone lets a flipped byte through to the linker or the CPU).
    public var objectHash: String?

    public init(mlxcVersion: String, programPath: String, programBytes: Int, programHash: String, method: String,
                cpu: String, features: String, kernels: [String], plan: [String], objectBytes: Int, pipeline: [String]? = nil) {
        self.pipeline = pipeline
        self.mlxcVersion = mlxcVersion
        self.programPath = programPath
        self.programBytes = programBytes
        self.programHash = programHash
        self.method = method
        self.cpu = cpu
        self.features = features
        self.kernels = kernels
        self.plan = plan
        self.objectBytes = objectBytes
    }

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static func isArtifact(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 8)).map { Array($0) == magic } ?? false
    }

    public static func write(_ header: Artifact, object: [UInt8], to path: String) throws {
        var header = header
        header.objectHash = object.withUnsafeBytes { hash(ByteView(base: $0.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!, count: $0.count, owner: nil)) }
        let json = try JSONEncoder().encode(header)
        var bytes = magic
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: json)
        bytes.append(contentsOf: object)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw Failure(message: "cannot write \(path)")
        }
    }

    public static func read(_ path: String) throws -> (Artifact, [UInt8]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(message: "\(path): cannot read the file") }
        return try read(bytes: [UInt8](data), name: path)
    }

    /// Parses an artifact's bytes; `path` names it in errors.
    public static func read(bytes: [UInt8], name path: String) throws -> (Artifact, [UInt8]) {
        guard bytes.count >= 8, Array(bytes[0..<8]) == magic else { throw Failure(message: "\(path): not an mlxc artifact (bad magic)") }
        guard bytes.count >= 16 else { throw Failure(message: "\(path): \(bytes.count) bytes, too short for the artifact header (truncated?)") }
        let length = bytes[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(bytes.count - 16) else { throw Failure(message: "\(path): header of \(length) bytes runs past the end (truncated?)") }
        let header: Artifact
        do {
            header = try JSONDecoder().decode(Artifact.self, from: Data(bytes[16..<16 + Int(length)]))
        } catch {
            throw Failure(message: "\(path): unreadable artifact header: \(error)")
        }
        let object = Array(bytes[(16 + Int(length))...])
        guard object.count == header.objectBytes else {
            throw Failure(message: "\(path): object code is \(object.count) bytes, the header says \(header.objectBytes) (truncated?)")
        }
        let objectHash = object.withUnsafeBytes { hash(ByteView(base: $0.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!, count: $0.count, owner: nil)) }
        guard header.objectHash == objectHash else {
            throw Failure(message: "\(path): object code does not match the header's hash (\(header.objectHash ?? "none")): the artifact is damaged; run `mlxc compile` again")
        }
        return (header, object)
    }

    /// A fast 64-bit content hash of the whole program file (FNV-1a over 8-byte words), to notice
    /// a `.pte` that changed since the artifact was built.
    public static func hash(_ view: ByteView) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let words = view.count / 8
        for i in 0..<words {
            h = (h ^ view.base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x0000_0100_0000_01b3
        }
        for i in (words * 8)..<view.count { h = (h ^ UInt64(view.bytes[i])) &* 0x0000_0100_0000_01b3 }
        h ^= UInt64(view.count)
        return String(h, radix: 16)
    }

    /// Checks that this artifact fits this mlxc, this CPU and this program file.
    public func check(version: String, host: HostTarget, program: PTEFile) throws {
        guard mlxcVersion == version else {
            throw Failure(message: "artifact built by mlxc \(mlxcVersion), this is \(version): run `mlxc compile` again")
        }
        guard cpu == host.cpuName, features == host.features else {
            throw Failure(message: "artifact built for CPU \(cpu), this machine is \(host.cpuName) (or has other features): run `mlxc compile` again")
        }
        let size = program.file.view.count
        guard size == programBytes, Artifact.hash(program.file.view) == programHash else {
            throw Failure(message: "\(program.path) changed since the artifact was built (size or hash differ): run `mlxc compile` again")
        }
    }
}
