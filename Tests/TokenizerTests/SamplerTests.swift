import XCTest
@testable import MLXCRuntime

final class SamplerTests: XCTestCase {
    /// Random-looking logits with a unique maximum.
    static func logits(_ n: Int = 1000, seed: UInt64 = 7) -> [Float] {
        var g = Xoshiro256(seed: seed)
        return (0..<n).map { _ in Float(g.nextUnit() * 8 - 4) }
    }

    func testGreedyPicksArgmaxLowestIDOnTies() {
        var s = Sampler(.greedy)
        XCTAssertEqual(s.sample(logits: [0.1, 3, -2, 3, 1], history: []), 1)
        XCTAssertEqual(s.sample(logits: [-.infinity, .nan, -1], history: []), 2)
        let l = Self.logits()
        XCTAssertEqual(s.sample(logits: l, history: []), l.indices.max { l[$0] < l[$1] })
    }

    func testSeededSamplingIsReproducible() {
        let config = SamplerConfig(temperature: 1.3, topK: 50, topP: 0.95, seed: 42)
        var a = Sampler(config), b = Sampler(config)
        let l = Self.logits()
        let first = (0..<200).map { _ in a.sample(logits: l, history: []) }
        let second = (0..<200).map { _ in b.sample(logits: l, history: []) }
        XCTAssertEqual(first, second)
        XCTAssertGreaterThan(Set(first).count, 5, "sampling should not be greedy")
        var c = Sampler(SamplerConfig(temperature: 1.3, topK: 50, topP: 0.95, seed: 43))
        XCTAssertNotEqual((0..<200).map { _ in c.sample(logits: l, history: []) }, first)
    }

    func testTopKOneEqualsGreedy() {
        var s = Sampler(SamplerConfig(temperature: 5, topK: 1, seed: 1))
        var g = Sampler(.greedy)
        for seed in 0..<20 {
            let l = Self.logits(seed: UInt64(seed))
            XCTAssertEqual(s.sample(logits: l, history: []), g.sample(logits: l, history: []))
        }
    }

    func testTinyTopPEqualsGreedy() {
        var s = Sampler(SamplerConfig(temperature: 2, topP: 1e-6, seed: 3))
        var g = Sampler(.greedy)
        for seed in 0..<20 {
            let l = Self.logits(seed: UInt64(seed))
            XCTAssertEqual(s.sample(logits: l, history: []), g.sample(logits: l, history: []))
        }
    }

    func testTopKRestrictsCandidates() {
        var s = Sampler(SamplerConfig(temperature: 100, topK: 3, seed: 9))
        let l = Self.logits()
        let top3 = Set(l.indices.sorted { l[$0] > l[$1] }.prefix(3))
        let drawn = Set((0..<300).map { _ in s.sample(logits: l, history: []) })
        XCTAssertEqual(drawn, top3)
    }

    func testTopKSelectionMatchesFullSort() {
        var g = Xoshiro256(seed: 21)
        // Few distinct values, so ties are common; -inf entries are never candidates.
        let scores = (0..<500).map { i in i % 37 == 0 ? -Float.infinity : Float(g.next() % 16) }
        let reference = scores.indices.filter { scores[$0] > -.infinity }
            .sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        for k in [1, 2, 7, 50, 499] { XCTAssertEqual(Sampler.topK(scores, k), Array(reference.prefix(k)), "k = \(k)") }
    }

    func testTopPKeepsSmallestNucleus() {
        // Probabilities 0.5, 0.3, 0.2: p = 0.75 keeps the first two (0.5 < 0.75 ≤ 0.8).
        let l = [0.5, 0.3, 0.2].map { Float(log($0)) }
        var s = Sampler(SamplerConfig(temperature: 1, topP: 0.75, seed: 5))
        let drawn = (0..<2000).map { _ in s.sample(logits: l, history: []) }
        XCTAssertEqual(Set(drawn), [0, 1])
        let share = Double(drawn.filter { $0 == 0 }.count) / 2000
        XCTAssertEqual(share, 0.625, accuracy: 0.05, "renormalized 0.5 / 0.8")
    }

    func testRepetitionPenaltyChangesChoice() {
        // Token 0 leads; once seen, a penalty of 2 halves its positive logit below token 1.
        let l: [Float] = [4, 3, -1, 0.5]
        var plain = Sampler(.greedy)
        XCTAssertEqual(plain.sample(logits: l, history: [0]), 0)
        var penalized = Sampler(SamplerConfig(temperature: 0, repetitionPenalty: 2))
        XCTAssertEqual(penalized.sample(logits: l, history: [0]), 1)
        XCTAssertEqual(penalized.sample(logits: l, history: [2]), 0, "unseen leader unaffected")
        // Negative logits are multiplied: -1 × 2 = -2 drops below another negative one.
        XCTAssertEqual(penalized.sample(logits: [-1, -1.5], history: [0, 0, 0]), 1)
    }

    func testTemperatureToZeroIsGreedy() {
        var g = Sampler(.greedy)
        for t: Float in [0, -1, 1e-4] {
            var s = Sampler(SamplerConfig(temperature: t, seed: 11))
            for seed in 0..<20 {
                let l = Self.logits(seed: UInt64(seed))
                XCTAssertEqual(s.sample(logits: l, history: []), g.sample(logits: l, history: []), "temperature \(t)")
            }
        }
    }

    func testGeneratorIsStable() {
        // Fixed outputs: a change in the generator would silently change every seeded run.
        // (Reference: xoshiro256** seeded by four SplitMix64 outputs of seed 0, computed in Python.)
        var g = Xoshiro256(seed: 0)
        XCTAssertEqual((0..<3).map { _ in g.next() }, [11091344671253066420, 13793997310169335082, 1900383378846508768])
        var u = Xoshiro256(seed: 1)
        for _ in 0..<1000 { let x = u.nextUnit(); XCTAssertTrue(x >= 0 && x < 1) }
    }
}
