import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Compiled kernels kept on disk between runs, so a second start of a model runs no LLVM optimizer.
///
/// One file per kernel, named by a digest of its unoptimized LLVM IR and of the machine it is compiled
/// for (`KernelCache+Key.swift`): any change to the kernel's code, the CPU, its features (`MLXC_ISA`),
/// LLVM or mlxc gives a new name, so an entry is never stale, only unused. Unused entries age out:
/// the directory is held under `maxBytes` by deleting the least recently used files (a hit refreshes
/// the file's time).
///
/// Several processes may share the directory: an entry is written to a private temporary file and
/// renamed into place (readers see the whole file or none); each file carries its length and a
/// checksum, and one that is truncated or damaged is deleted and compiled again, never loaded. A writer
/// killed mid-write leaves only a `.tmp` file, which no lookup reads and eviction deletes once it is
/// ten minutes old (a live writer's is younger).
///
/// Writing is best effort: the first entry that cannot be written whole (a full disk, a quota,
/// RLIMIT_FSIZE, a directory that turned read-only) turns writing off for the rest of this cache's
/// life — the kernels are still compiled and run, only not kept — and `writesOffReason` says why.
public final class KernelCache: @unchecked Sendable {
    /// Where the entries live (`<root>/kernels-v1`; the suffix changes with the file format).
    public let directory: String
    public let maxBytes: Int
    /// Mixed into every key: code from another mlxc build is never reused.
    public let salt: String

    public struct Counters: Equatable {
        public var hits = 0, misses = 0, corrupt = 0, stored = 0, evicted = 0, writeFailures = 0
    }
    private let lock = NSLock()
    private var counters = Counters()
    public var stats: Counters { lock.lock(); defer { lock.unlock() }; return counters }
    private var writesOff: String?
    /// Why entries are no longer written in this run (nil while they are).
    public var writesOffReason: String? { lock.lock(); defer { lock.unlock() }; return writesOff }
    /// Called once, when writing turns off (the CLI says it on a terminal).
    public var onWritesOff: (@Sendable (String) -> Void)?

    static let magic = Array("MLXCKO01".utf8)
    static let headerBytes = 8 + 64 + 8 + 8
    /// No kernel's object code comes near this; a larger file under an entry's name is not read.
    static let maxEntryBytes = 256 << 20

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens (creating it if needed) the cache under `root`.
    public init(root: String, salt: String, maxBytes: Int = KernelCache.defaultMaxBytes) throws {
        directory = (root as NSString).appendingPathComponent("kernels-v1")
        self.maxBytes = maxBytes
        self.salt = salt
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw Failure(description: "kernel cache: cannot create \(directory): \((error as NSError).localizedDescription)")
        }
        guard access(directory, W_OK) == 0 else { throw Failure(description: "kernel cache: \(directory) is not writable") }
    }

    /// 512 MiB: a model's kernels take a few MB, so this holds those of many models.
    public static let defaultMaxBytes = 512 << 20

    /// `MLXC_CACHE_DIR`, else `$XDG_CACHE_HOME/mlxc`, else `~/.cache/mlxc`.
    public static func defaultRoot(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = environment["MLXC_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return (xdg as NSString).appendingPathComponent("mlxc") }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".cache/mlxc")
    }

    /// The file that holds `key`.
    public func path(_ key: String) -> String { (directory as NSString).appendingPathComponent(key + ".o") }

    private func count(_ change: (inout Counters) -> Void) { lock.lock(); change(&counters); lock.unlock() }

    /// The object code stored under `key`, or nil (missing, or damaged: then the file is removed).
    public func load(_ key: String) -> [UInt8]? {
        let file = path(key)
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { count { $0.misses += 1 }; return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { count { $0.misses += 1 }; return nil }
        let size = Int(info.st_size)
        guard size <= Self.maxEntryBytes else { unlink(file); count { $0.corrupt += 1; $0.misses += 1 }; return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let read = bytes.withUnsafeMutableBytes { readFully(fd, $0) }
        guard read == size, let object = Self.decode(bytes, key: key) else {
            unlink(file)
            count { $0.corrupt += 1; $0.misses += 1 }
            return nil
        }
        // Least recently used: a hit refreshes the time (at most hourly, to keep starts write-free).
        if Date().timeIntervalSince1970 - Double(info.st_mtim.tv_sec) > 3600 { futimens(fd, nil) }
        count { $0.hits += 1 }
        return object
    }

    /// Stores object code under `key` (best effort: a full disk means no caching, not a failure).
    public func store(_ key: String, object: [UInt8]) {
        guard writesOffReason == nil else { return }
        let bytes = Self.encode(object, key: key)
        let temporary = (directory as NSString).appendingPathComponent(".\(key).\(getpid()).\(UInt32.random(in: 0 ... .max)).tmp")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return writeFailed("cannot create a file in \(directory)", errno) }
        var (written, error) = bytes.withUnsafeBytes { writeFully(fd, $0) }
        if close(fd) != 0, written == bytes.count { written = -1; error = errno }  // NFS/quota report late
        guard written == bytes.count else {
            unlink(temporary)
            return writeFailed("wrote \(max(written, 0)) of \(bytes.count) bytes in \(directory)", error)
        }
        guard rename(temporary, path(key)) == 0 else {
            let error = errno
            unlink(temporary)
            return writeFailed("cannot rename an entry into \(directory)", error)
        }
        count { $0.stored += 1 }
    }

    private func writeFailed(_ what: String, _ error: Int32) {
        let reason = "kernel cache: \(what): \(String(cString: strerror(error))); not caching kernels for the rest of this run"
        lock.lock()
        counters.writeFailures += 1
        let first = writesOff == nil
        if first { writesOff = reason }
        lock.unlock()
        if first { onWritesOff?(reason) }
    }

    /// Deletes the least recently used entries until the directory holds at most `maxBytes`
    /// (down to three quarters, so this does not run on every start), and temporary files that
    /// a killed writer left behind.
    public func evictIfNeeded() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        var entries: [(path: String, bytes: Int, time: Int)] = []
        var total = 0
        let now = Int(Date().timeIntervalSince1970)
        for name in names {
            let p = (directory as NSString).appendingPathComponent(name)
            var info = stat()
            guard stat(p, &info) == 0 else { continue }
            let time = Int(info.st_mtim.tv_sec)
            if name.hasSuffix(".tmp") {
                if now - time > 600 { unlink(p) }
                continue
            }
            guard name.hasSuffix(".o") else { continue }
            entries.append((p, Int(info.st_size), time))
            total += Int(info.st_size)
        }
        guard total > maxBytes else { return }
        for entry in entries.sorted(by: { $0.time < $1.time }) where total > maxBytes / 4 * 3 {
            if unlink(entry.path) == 0 { count { $0.evicted += 1 } }
            total -= entry.bytes
        }
    }

    // MARK: file format: magic, key (64 hex digits), payload length, FNV-1a checksum (UInt64 LE), payload

    static func encode(_ object: [UInt8], key: String) -> [UInt8] {
        var bytes = magic + Array(key.utf8)
        withUnsafeBytes(of: UInt64(object.count).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: checksum(object[...]).littleEndian) { bytes.append(contentsOf: $0) }
        return bytes + object
    }

    static func decode(_ bytes: [UInt8], key: String) -> [UInt8]? {
        guard bytes.count >= headerBytes, Array(bytes[0..<8]) == magic, Array(bytes[8..<72]) == Array(key.utf8) else { return nil }
        let length = word(bytes, at: 72), sum = word(bytes, at: 80)
        guard length == UInt64(bytes.count - headerBytes) else { return nil }
        let object = bytes[headerBytes...]
        guard checksum(object) == sum else { return nil }
        return Array(object)
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    /// FNV-1a over the payload: catches truncation and damaged bytes (the key already names the content).
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}

private func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
    var done = 0
    while done < buffer.count {
        let n = read(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        done += n
    }
    return done
}

/// Bytes written and, when short, the errno that stopped it (ENOSPC, EDQUOT, EFBIG…).
private func writeFully(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> (Int, Int32) {
    var done = 0
    while done < buffer.count {
        let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return (done, errno) }
        if n == 0 { return (done, ENOSPC) }
        done += n
    }
    return (done, 0)
}
