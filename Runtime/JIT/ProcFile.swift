import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A short `/proc` file kept open and read again from its start with one `pread` into a stack buffer (no
/// allocation: the thread pool samples such files between kernel launches). Linux only: nil elsewhere.
final class ProcFile: @unchecked Sendable {
    private let fd: Int32

    init?(path: String) {
        #if os(Linux)
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        #else
        return nil
        #endif
    }

    deinit {
        #if os(Linux)
        close(fd)
        #endif
    }

    /// The file's first 64 bytes handed to `parse`; nil if nothing could be read.
    func read<T>(_ parse: (UnsafeRawBufferPointer) -> T?) -> T? {
        #if os(Linux)
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))   // 64 bytes
        return withUnsafeMutableBytes(of: &buffer) { raw -> T? in
            let n = pread(fd, raw.baseAddress, raw.count, 0)
            guard n > 0 else { return nil }
            return parse(UnsafeRawBufferPointer(rebasing: raw[..<n]))
        }
        #else
        return nil
        #endif
    }
}
