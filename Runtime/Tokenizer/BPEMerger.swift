/// Applies BPE merges to one word's symbols, lowest rank first (leftmost on ties), like `tokenizers`'
/// `Word::merge_all`: a binary heap of candidate pairs over a doubly linked list of symbols, so a
/// long word costs O(n log n) rather than a rescan of all pairs after every merge.
struct BPEMerger {
    /// Rank and result of merging a pair, packed as `rank << 32 | newID`, keyed by `left << 32 | right`.
    let merges: [UInt64: UInt64]

    static func key(_ left: Int32, _ right: Int32) -> UInt64 { UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right)) }

    private struct Candidate {
        var rank: UInt32
        var position: Int32
        var newID: Int32

        func precedes(_ other: Candidate) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    func merge(_ ids: [Int32]) -> [Int32] {
        guard ids.count > 1 else { return ids }
        var symbols = ids
        var previous = (0..<ids.count).map { Int32($0) - 1 }
        var next = (0..<ids.count).map { $0 + 1 < ids.count ? Int32($0 + 1) : -1 }
        var alive = [Bool](repeating: true, count: ids.count)
        var heap: [Candidate] = []
        heap.reserveCapacity(ids.count)

        func candidate(at position: Int32) -> Candidate? {
            let right = next[Int(position)]
            guard right >= 0, let m = merges[Self.key(symbols[Int(position)], symbols[Int(right)])] else { return nil }
            return Candidate(rank: UInt32(m >> 32), position: position, newID: Int32(truncatingIfNeeded: m & 0xFFFF_FFFF))
        }
        func push(_ c: Candidate) {
            heap.append(c)
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard heap[i].precedes(heap[parent]) else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }
        func pop() -> Candidate? {
            guard let top = heap.first else { return nil }
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var best = i
                    if l < heap.count, heap[l].precedes(heap[best]) { best = l }
                    if r < heap.count, heap[r].precedes(heap[best]) { best = r }
                    if best == i { break }
                    heap.swapAt(i, best)
                    i = best
                }
            }
            return top
        }

        for p in 0..<Int32(ids.count - 1) { if let c = candidate(at: p) { push(c) } }
        while let top = pop() {
            let p = Int(top.position)
            // Skip entries made stale by an earlier merge: the symbol or its pair changed.
            guard alive[p], next[p] >= 0, let current = candidate(at: top.position), current.newID == top.newID else { continue }
            let right = Int(next[p])
            symbols[p] = top.newID
            alive[right] = false
            next[p] = next[right]
            if next[p] >= 0 { previous[Int(next[p])] = Int32(p) }
            if previous[p] >= 0, let c = candidate(at: previous[p]) { push(c) }
            if let c = candidate(at: Int32(p)) { push(c) }
        }
        var out: [Int32] = []
        var i: Int32 = 0
        while i >= 0 {
            out.append(symbols[Int(i)])
            i = next[Int(i)]
        }
        return out
    }
}
