import Foundation

/// How the next token is picked from the logits.
public struct SamplerConfig: Sendable, Equatable {
    /// Softmax temperature; 0 (or below) means greedy decoding.
    public var temperature: Float
    /// Keep only the `topK` most likely tokens; 0 (or below) disables the filter.
    public var topK: Int
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches `topP`;
    /// 1 (or above) disables the filter.
    public var topP: Float
    /// CTRL-style penalty on tokens already in the history; 1 disables it.
    public var repetitionPenalty: Float
    /// Seed of the generator, so a run can be reproduced.
    public var seed: UInt64

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    public static let greedy = SamplerConfig(temperature: 0)
}

/// xoshiro256** seeded through SplitMix64: small, fast and identical on every platform (the system
/// generator is neither seedable nor reproducible).
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Picks the next token: repetition penalty, then greedy, or temperature → top-k → top-p → draw.
public struct Sampler {
    public let config: SamplerConfig
    private var generator: Xoshiro256

    public init(_ config: SamplerConfig) {
        self.config = config
        generator = Xoshiro256(seed: config.seed)
    }

    public mutating func sample(logits: [Float], history: [Int]) -> Int {
        guard !logits.isEmpty else { return 0 }
        var scores = logits.map { $0.isNaN ? -Float.infinity : $0 }
        if config.repetitionPenalty != 1, config.repetitionPenalty > 0 {
            for id in Set(history) where scores.indices.contains(id) {
                scores[id] = scores[id] > 0 ? scores[id] / config.repetitionPenalty : scores[id] * config.repetitionPenalty
            }
        }
        guard config.temperature > 0, config.topK != 1 else { return Self.argmax(scores) }

        // Candidates as (id, weight ∝ probability), the best weighing 1.
        let best = Double(scores.max()!)
        guard best.isFinite else { return Self.argmax(scores) }
        let invT = 1 / Double(config.temperature)
        var candidates: [(id: Int, p: Double)]
        if config.topK > 0 && config.topK < scores.count {
            candidates = Self.topK(scores, config.topK).map { ($0, exp((Double(scores[$0]) - best) * invT)) }
        } else {
            candidates = []
            candidates.reserveCapacity(scores.count)
            for (id, x) in scores.enumerated() where x > -.infinity { candidates.append((id, exp((Double(x) - best) * invT))) }
        }
        var total = candidates.reduce(0) { $0 + $1.p }
        if config.topP < 1 {
            // The nucleus is a prefix of the candidates sorted by probability. Sorting only the
            // non-negligible ones gives the same prefix whenever they already reach the target mass.
            let target = Double(max(config.topP, 0)) * total
            var pool = candidates.filter { $0.p >= 1e-4 }
            if pool.reduce(0, { $0 + $1.p }) < target { pool = candidates }
            pool.sort { $0.p != $1.p ? $0.p > $1.p : $0.id < $1.id }
            var cumulative = 0.0
            var keep = 0
            while keep < pool.count {
                cumulative += pool[keep].p
                keep += 1
                if cumulative >= target { break }
            }
            candidates = Array(pool.prefix(keep))
            total = cumulative
        }
        var u = generator.nextUnit() * total
        for c in candidates {
            u -= c.p
            if u < 0 { return c.id }
        }
        return candidates.last!.id
    }

    /// Ids of the `k` highest scores, best first, lowest id on ties: a size-k heap whose root is
    /// the worst kept candidate, so a large vocabulary costs O(n log k) rather than a full sort.
    static func topK(_ scores: [Float], _ k: Int) -> [Int] {
        func worse(_ a: Int, _ b: Int) -> Bool { scores[a] != scores[b] ? scores[a] < scores[b] : a > b }
        var heap: [Int] = []
        heap.reserveCapacity(k)
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, worse(heap[l], heap[m]) { m = l }
                if r < heap.count, worse(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for id in scores.indices where scores[id] > -.infinity {
            if heap.count < k {
                heap.append(id)
                var i = heap.count - 1
                while i > 0, worse(heap[i], heap[(i - 1) / 2]) {
                    heap.swapAt(i, (i - 1) / 2)
                    i = (i - 1) / 2
                }
            } else if worse(heap[0], id) {
                heap[0] = id
                siftDown(0)
            }
        }
        return heap.sorted { worse($1, $0) }
    }

    /// The highest score, lowest id on ties.
    static func argmax(_ scores: [Float]) -> Int {
        var best = 0
        for i in scores.indices where scores[i] > scores[best] { best = i }
        return best
    }
}
