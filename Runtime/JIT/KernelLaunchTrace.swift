import Foundation
import MLXCIR

/// Records every kernel launch of a run — the kernel's name, the bytes of every buffer it is
/// given before the call, its dims and work range, and its results' bytes after — so the same
/// launches can be replayed elsewhere: the ARM64 check replays them with the kernels compiled
/// for aarch64 under qemu (tools/arm64/replay.c) and compares the results with these.
///
/// Buffers that overlap (a result written in place into its operand, views of one tensor) are
/// kept as one region with offsets, so the replay aliases them the same way.
public final class KernelLaunchTrace {
    public struct Slot { public var region: Int, offset: Int, bytes: Int }
    public struct Result { public var slot: Int, dtype: DType, after: [UInt8] }
    public struct Launch {
        public var kernel: String
        public var regions: [[UInt8]]
        public var slots: [Slot]
        public var dims: [Int64]
        public var work: Int
        public var results: [Result]
    }

    public private(set) var launches: [Launch] = []
    /// Launches left out of the trace because it was full (see `maxBytes`).
    public private(set) var dropped = 0
    /// Bytes of buffers recorded so far, and the most to keep.
    public private(set) var bytes = 0
    let maxBytes: Int

    public init(maxBytes: Int = 256 << 20) { self.maxBytes = maxBytes }

    struct Pending { var launch: Launch; var bases: [UnsafeRawPointer]; var resultSlots: [Int] }

    /// Snapshots the buffers before a launch; nil when the trace is full.
    func before(_ kernel: String, buffers: UnsafePointer<UnsafeMutableRawPointer?>, sizes: [Int], results: [DType],
                dims: [Int64], work: Int) -> Pending? {
        let pointers = sizes.indices.map { UnsafeRawPointer(buffers[$0]!) }
        // Regions: the union of overlapping [pointer, pointer + size) ranges.
        let order = sizes.indices.sorted { pointers[$0] < pointers[$1] }
        var regionOf = [Int](repeating: 0, count: sizes.count)
        var spans: [(start: UnsafeRawPointer, end: UnsafeRawPointer)] = []
        for i in order {
            let start = pointers[i], end = start + sizes[i]
            if let last = spans.last, start < last.end || (start == last.start) {
                spans[spans.count - 1].end = max(last.end, end)
            } else {
                spans.append((start, end))
            }
            regionOf[i] = spans.count - 1
        }
        let total = spans.reduce(0) { $0 + ($1.end - $1.start) }
        guard bytes + total <= maxBytes else { dropped += 1; return nil }
        bytes += total
        let regions = spans.map { [UInt8](UnsafeRawBufferPointer(start: $0.start, count: $0.end - $0.start)) }
        let slots = sizes.indices.map { Slot(region: regionOf[$0], offset: pointers[$0] - spans[regionOf[$0]].start, bytes: sizes[$0]) }
        let first = sizes.count - results.count
        let launch = Launch(kernel: kernel, regions: regions, slots: slots, dims: dims, work: work,
                            results: results.enumerated().map { Result(slot: first + $0.offset, dtype: $0.element, after: []) })
        return Pending(launch: launch, bases: pointers, resultSlots: Array(first..<sizes.count))
    }

    /// Keeps the results' bytes after the launch.
    func after(_ pending: Pending, buffers: UnsafePointer<UnsafeMutableRawPointer?>) {
        var launch = pending.launch
        for r in launch.results.indices {
            let slot = launch.results[r].slot
            launch.results[r].after = [UInt8](UnsafeRawBufferPointer(start: pending.bases[slot], count: launch.slots[slot].bytes))
        }
        bytes += launch.results.reduce(0) { $0 + $1.after.count }
        launches.append(launch)
    }

    /// The replay's input file (little-endian; read by tools/arm64/replay.c):
    ///
    ///     "MLXCTRC1" u32 launches, then per launch:
    ///     u32 name bytes, name; u32 regions, per region u64 bytes + bytes;
    ///     u32 slots, per slot u32 region + u64 offset; u32 dims, i64 each; i64 work;
    ///     u32 results, per result u32 slot + u64 bytes.
    ///
    /// The replay writes each launch's result slots' bytes after the call, in order.
    public func replayInput() -> Data {
        var d = Data("MLXCTRC1".utf8)
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
        func u64(_ v: Int) { withUnsafeBytes(of: UInt64(v).littleEndian) { d.append(contentsOf: $0) } }
        func i64(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        u32(launches.count)
        for l in launches {
            u32(l.kernel.utf8.count); d.append(contentsOf: Array(l.kernel.utf8))
            u32(l.regions.count)
            for r in l.regions { u64(r.count); d.append(contentsOf: r) }
            u32(l.slots.count)
            for s in l.slots { u32(s.region); u64(s.offset) }
            u32(l.dims.count)
            for x in l.dims { i64(x) }
            i64(Int64(l.work))
            u32(l.results.count)
            for r in l.results { u32(r.slot); u64(l.slots[r.slot].bytes) }
        }
        return d
    }
}
