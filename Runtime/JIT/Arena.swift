import Foundation

/// Memory for one call's intermediate values: a bump allocator over 64-byte-aligned chunks, rewound by every call.
///
/// The chunks a call needed stay for the next calls, which walk them in the same order (a chunk whose rest is too
/// small for an allocation is left for the next one), so a program called again touches the same pages: none is
/// faulted in and zeroed by the kernel again. (Merging the first call's chunks into one fresh block, as before, made
/// the second call fault in the whole arena again — ~0.15 s per Whisper encoder window on the second window.) Chunk
/// sizes double, so once the last chunk holds a whole call nothing more is allocated. (Advising the chunks as
/// transparent huge pages made the first call slower here — 1.24-1.57 s vs 0.81-0.97 s per Whisper window: the
/// kernel compacts memory at fault time under `defrag=madvise`.)
final class Arena {
    private var chunks: [(base: UnsafeMutableRawPointer, size: Int)] = []
    private var current = 0   // the chunk being filled
    private var offset = 0
    private var used = 0
    private(set) var highWater = 0

    deinit { for c in chunks { c.base.deallocate() } }

    /// Forgets every allocation; the chunks are kept for the next call.
    func reset() {
        current = 0
        offset = 0
        used = 0
    }

    /// Whether `p` points into this arena's memory (a value that dies with the call).
    func contains(_ p: UnsafeRawPointer) -> Bool {
        chunks.contains { p >= UnsafeRawPointer($0.base) && p < UnsafeRawPointer($0.base) + $0.size }
    }

    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = (max(bytes, 1) + 63) & ~63
        while current < chunks.count, offset + size > chunks[current].size {
            current += 1
            offset = 0
        }
        if current == chunks.count {
            chunks.append(Self.chunk(max(size, 1 << 20, (chunks.last?.size ?? 0) * 2)))
            offset = 0
        }
        let p = chunks[current].base + offset
        offset += size
        used += size
        highWater = max(highWater, used)
        return p
    }

    /// A new chunk of `size` bytes, 64-byte aligned.
    static func chunk(_ size: Int) -> (base: UnsafeMutableRawPointer, size: Int) {
        (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), size)
    }
}
