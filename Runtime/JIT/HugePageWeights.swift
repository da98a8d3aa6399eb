import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Large constant tensors moved out of the file mapping into one anonymous region backed by 2 MiB pages.
///
/// Opt-in (`MLXC_HUGEPAGE_WEIGHTS=1`, `JITProgram.Options.hugePageWeights`). Why: decode streams every weight once per token. The file mapping has 4 KiB pages, and the hardware
/// prefetchers stop at each 4 KiB page boundary (and every page costs a TLB walk), so a stream of
/// mapped weights larger than the last-level cache runs well below the memory bandwidth; the same
/// bytes in transparent huge pages stream like the roofline's array. The copy replaces the mapping's
/// pages (released right after each copy), so resident memory holds the weights once, as before.
final class HugePageWeights {
    /// Tensors at least this large move (smaller ones are not worth a copy: norms, biases, scales of small layers).
    static let minimumBytes = 256 << 10
    static let hugePage = 2 << 20

    private var region: UnsafeMutableRawPointer?
    private var length = 0
    private var used = 0

    /// Whether to move weights by default (`MLXC_HUGEPAGE_WEIGHTS=1`). Off for now: the copy (and the kernel
    /// finding 2 MiB pages) costs 0.2 s of load for the 113 MB small fp32 model on a busy machine, and the decode
    /// gain is not yet measured quiet (a 128 MB stream: 6.6 vs 3.4 GB/s on one busy thread).
    static var enabled: Bool { ProcessInfo.processInfo.environment["MLXC_HUGEPAGE_WEIGHTS"] == "1" }

    /// Bytes placed so far.
    var placedBytes: Int { used }
    /// The region's start (2 MiB aligned).
    var start: UnsafeMutableRawPointer? { region }

    /// Reserves room for `total` bytes (the sum of `place` sizes to come, each rounded to 64 bytes).
    init?(total: Int) {
        guard total > 0 else { return nil }
        let size = (total + Self.hugePage - 1) / Self.hugePage * Self.hugePage
        guard let p = mmap(nil, size + Self.hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
        else { return nil }
        // Align to a huge page so the whole region can be backed by 2 MiB pages.
        let start = (Int(bitPattern: p) + Self.hugePage - 1) / Self.hugePage * Self.hugePage
        let lead = start - Int(bitPattern: p)
        if lead > 0 { munmap(p, lead) }
        let tail = Self.hugePage - lead
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: start + size), tail) }
        region = UnsafeMutableRawPointer(bitPattern: start)
        length = size
        _ = madvise(region, size, MADV_HUGEPAGE)
    }

    static func rounded(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

    /// Copies `bytes` from `source` into the region (nil when full), then `release`s the source (the
    /// program drops the file mapping's pages: `PTEFile.releasePages`).
    func place(_ source: UnsafeRawPointer, bytes: Int, release: (UnsafeRawPointer, Int) -> Void = { _, _ in }) -> UnsafeMutableRawPointer? {
        guard let region, used + Self.rounded(bytes) <= length else { return nil }
        let dst = region + used
        dst.copyMemory(from: source, byteCount: bytes)
        used += Self.rounded(bytes)
        release(source, bytes)
        return dst
    }

    deinit { if let region { munmap(region, length) } }
}
