import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How many threads on the whole machine are runnable right now (running or waiting for a CPU): the fourth
/// field of `/proc/loadavg`, "runnable/total" (Linux). The thread pool samples it to see how many cores other
/// processes are using (`PoolSizing`). One `pread` of an open file: a couple of microseconds.
final class RunnableThreads {
    private let file: ProcFile
    /// CPUs online on the machine (the count `/proc/loadavg` is spread over), not only the ones this process may use.
    let onlineCPUs: Int

    /// nil where there is no `/proc/loadavg` (macOS): the pool then sizes itself from stalls alone.
    init?(path: String = "/proc/loadavg") {
        guard let file = ProcFile(path: path) else { return nil }
        self.file = file
        onlineCPUs = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The machine's runnable threads now (this one included), or nil if the file could not be read.
    func sample() -> Int? { file.read(Self.parse) }

    /// "0.50 0.40 0.30 3/123 4567" → 3 (the digits after the third space, up to '/').
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var spaces = 0, value = 0, digits = 0
        for b in bytes {
            if spaces < 3 {
                if b == UInt8(ascii: " ") { spaces += 1 }
                continue
            }
            if b == UInt8(ascii: "/") { return digits > 0 ? value : nil }
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(b - UInt8(ascii: "0"))
            digits += 1
        }
        return nil
    }

    static func parse(_ text: String) -> Int? {
        Array(text.utf8).withUnsafeBytes { parse($0) }
    }
}
