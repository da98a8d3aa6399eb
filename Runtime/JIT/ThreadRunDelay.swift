import Atomics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How long one thread has waited for a CPU while runnable (Linux `/proc/thread-self/schedstat`, second field,
/// nanoseconds): the share of a window a thread spent waiting is how much other runnable work — at its
/// priority, as the scheduler weighs it — took its core. A nice-19 build or a SCHED_IDLE fuzzer beside it
/// delays it little; a busy process at the same priority on a core it shares, by half.
///
/// Opened by the thread it describes (the file names the opening thread); read by any thread with one `pread`.
final class ThreadRunDelay: AtomicReference, @unchecked Sendable {
    private let file: ProcFile

    /// The calling thread's; nil without schedstat (not Linux, or a kernel without scheduler statistics).
    init?() {
        guard let file = ProcFile(path: "/proc/thread-self/schedstat"), file.read(Self.parse) != nil else { return nil }
        self.file = file
    }

    /// Nanoseconds the thread has waited on a run queue since it started.
    var nanoseconds: UInt64? { file.read(Self.parse) }

    /// "1234 5678 9\n" (run ns, run-queue wait ns, timeslices) → 5678.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var field = 0, value: UInt64 = 0, digits = 0
        for b in bytes {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\n") {
                if field == 1 { return digits > 0 ? value : nil }
                field += 1
                continue
            }
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            if field == 1 {
                value = value &* 10 &+ UInt64(b - UInt8(ascii: "0"))
                digits += 1
            }
        }
        return field == 1 && digits > 0 ? value : nil
    }

    static func parse(_ text: String) -> UInt64? {
        Array(text.utf8).withUnsafeBytes { parse($0) }
    }
}
