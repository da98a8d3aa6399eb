import Foundation
import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-attention-pattern, text in → text out: plain ExecuTorch attention as llama_plain exports it
/// (GQA repeat of the KV cache, scale split over q and kᵀ, additive mask, torch's safe softmax),
/// with GQA ratios 1 and 2, no mask, bool masks (where and masked_fill), gemma's sliding form
/// (ring-buffer mask, split-half q), and the cases it must leave alone: an intermediate with a
/// second reader or that is an output, a transpose of other axes, softmax on another axis, a scale
/// that is not a literal, a repeat that is not repeat_interleave, dims not proved equal, a mask one
/// key wide, scores as their own mask, an unguarded softmax with a mask.
final class FuseAttentionPatternTests: XCTestCase {
    enum MaskForm { case additive, none, keep, fill }

    /// One attention layer in the exported form; the knobs break it one way at a time.
    struct Layer {
        var hq = 4, hkv = 2, s = 24
        var mask = MaskForm.additive
        var guarded = true
        var sliding = false
        var kPerm = "[0, 1, 3, 2]"
        var softmaxAxis = 3
        var kScale = "%6"
        var expandAxis = 2
        var repeatShape: String? = nil

        var d: Int { 16 }
        var sc: Int { mask == .none ? 30 : 31 }
        var probs: Int { guarded ? 38 : 32 }
        var q: Int { sliding ? 52 : 12 }
        var maskValue: String {
            switch mask {
            case .additive: return sliding ? "%67" : "%3"
            case .none: return "none"
            case .keep, .fill: return "%4"
            }
        }

        var header: String {
            """
            graph @f
            input %0 : f32[1, ?1..8, \(hq * d)] "x"
            input %1 : f32[1, \(hkv), \(s), 16] "k_cache"
            input %2 : f32[1, \(hkv), \(s), 16] "v_cache"
            input %3 : f32[?1..8, \(s)] "mask"
            input %4 : bool[?1..8, \(s)] "keep"
            const %5 : f32[] = literal(0.5)
            const %6 : f32[] = literal(0.5)
            const %7 : f32[] = literal(-inf)
            input %8 : f32[] "runtime_scale"
            input %9 : i64[?1..8] "positions"
            const %90 : i64[\(s)] = buffer(0) "slot_positions"
            const %91 : i64[] = literal(0.0)
            const %92 : i64[] = literal(\(s).0)
            input %86 : f32[?1..8, 1] "narrow_mask"
            input %87 : f32[1, \(hq), ?1..8, 16] "unrelated_length_q"
            const %88 : f32[] = literal(0.25)
            state %89 : f32[1, \(hkv), \(s), 16] = zeros "k_state"

            """
        }

        /// Everything up to q (and, sliding, the window mask), which the pass leaves alone.
        var prelude: [String] {
            var lines = [
                "%10 = sym_size(a: %0, dim: 1) : i64[]",
                "%11 = reshape(x: %0, shape: [1, %10, \(hq), 16]) : f32[1, ?1..8, \(hq), 16]",
                "%12 = transpose(x: %11, perm: [0, 2, 1, 3]) : f32[1, \(hq), ?1..8, 16]",
            ]
            if sliding {
                lines += [
                    "%50 = slice(x: %12, axis: 3, start: 0, stop: 8, step: 1) : f32[1, \(hq), ?1..8, 8]",
                    "%51 = slice(x: %12, axis: 3, start: 8, stop: 9223372036854775807, step: 1) : f32[1, \(hq), ?1..8, 8]",
                    "%52 = concatenate(tensors: [%51, %50], axis: 3) : f32[1, \(hq), ?1..8, 16]",
                    "%60 = reshape(x: %9, shape: [-1, 1]) : i64[?1..8, 1]",
                    "%61 = subtract(a: %60, b: %90) : i64[?1..8, \(s)]",
                    "%62 = greater_equal(a: %61, b: %91) : bool[?1..8, \(s)]",
                    "%63 = less(a: %61, b: %92) : bool[?1..8, \(s)]",
                    "%64 = bitwise_and(a: %62, b: %63) : bool[?1..8, \(s)]",
                    "%65 = full(shape: [1], v: 0.0, scalar_type: f32) : f32[1]",
                    "%66 = full(shape: [1], v: -inf, scalar_type: f32) : f32[1]",
                    "%67 = where(condition: %64, x: %65, y: %66) : f32[?1..8, \(s)]",
                ]
            }
            return lines
        }

        /// The nodes the pass replaces, ending in %45 (the attention output, [1, Hq, T, 16]).
        var pattern: [String] {
            let (hq, hkv, s, n) = (hq, hkv, s, hq / hkv)
            let bhts = "f32[1, \(hq), ?1..8, \(s)]", bht1 = "bool[1, \(hq), ?1..8, 1]"
            var lines: [String] = []
            let repeated = hq != hkv
            if repeated {
                let shape = repeatShape ?? "[1, \(hkv), \(n), \(s), 16]"
                let expanded = expandAxis == 2 ? "[1, \(hkv), 1, \(s), 16]" : "[1, 1, \(hkv), \(s), 16]"
                lines += [
                    "%13 = id_copy(x: %1) : f32[1, \(hkv), \(s), 16]",
                    "%14 = expand_dims(x: %13, axis: \(expandAxis)) : f32\(expanded)",
                    "%15 = broadcast_to(x: %14, shape: \(shape)) : f32\(shape)",
                    "%16 = id_copy(x: %15) : f32\(shape)",
                    "%17 = id_copy(x: %2) : f32[1, \(hkv), \(s), 16]",
                    "%18 = expand_dims(x: %17, axis: 2) : f32[1, \(hkv), 1, \(s), 16]",
                    "%19 = broadcast_to(x: %18, shape: [1, \(hkv), \(n), \(s), 16]) : f32[1, \(hkv), \(n), \(s), 16]",
                    "%20 = id_copy(x: %19) : f32[1, \(hkv), \(n), \(s), 16]",
                ]
            }
            lines.append("%21 = multiply(a: %\(q), b: %5) : f32[1, \(hq), ?1..8, 16]")
            if repeated { lines.append("%22 = reshape(x: %16, shape: [1, \(hq), \(s), 16]) : f32[1, \(hq), \(s), 16]") }
            lines += [
                "%23 = transpose(x: %\(repeated ? 22 : 1), perm: \(kPerm)) : f32[1, \(hq), 16, \(s)]",
                "%24 = multiply(a: %23, b: \(kScale)) : f32[1, \(hq), 16, \(s)]",
                "%25 = broadcast_to(x: %21, shape: [1, \(hq), %10, 16]) : f32[1, \(hq), ?1..8, 16]",
                "%26 = reshape(x: %25, shape: [\(hq), %10, 16]) : f32[\(hq), ?1..8, 16]",
                "%27 = broadcast_to(x: %24, shape: [1, \(hq), 16, \(s)]) : f32[1, \(hq), 16, \(s)]",
                "%28 = reshape(x: %27, shape: [\(hq), 16, \(s)]) : f32[\(hq), 16, \(s)]",
                "%29 = matmul(a: %26, b: %28) : f32[\(hq), ?1..8, \(s)]",
                "%30 = reshape(x: %29, shape: [1, \(hq), %10, \(s)]) : \(bhts)",
            ]
            switch mask {
            case .additive: lines.append("%31 = add(a: %30, b: \(maskValue)) : \(bhts)")
            case .none: break
            case .keep: lines.append("%31 = where(condition: %4, x: %30, y: %7) : \(bhts)")
            case .fill: lines.append("%31 = where(condition: %4, x: %7, y: %30) : \(bhts)")
            }
            lines.append("%32 = softmax(x: %\(sc), axis: \(softmaxAxis), precise: true) : \(bhts)")
            if guarded {
                lines += [
                    "%33 = equal(a: %\(sc), b: %7) : bool[1, \(hq), ?1..8, \(s)]",
                    "%34 = logical_not(x: %33) : bool[1, \(hq), ?1..8, \(s)]",
                    "%35 = any(x: %34, axes: [3], keepdims: true) : \(bht1)",
                    "%36 = logical_not(x: %35) : \(bht1)",
                    "%37 = full_like(x: %32, v: 0.0, scalar_type: f32) : \(bhts)",
                    "%38 = where(condition: %36, x: %37, y: %32) : \(bhts)",
                ]
            }
            lines += [
                "%39 = broadcast_to(x: %\(probs), shape: [1, \(hq), %10, \(s)]) : \(bhts)",
                "%40 = reshape(x: %39, shape: [\(hq), %10, \(s)]) : f32[\(hq), ?1..8, \(s)]",
            ]
            if repeated { lines.append("%41 = reshape(x: %20, shape: [1, \(hq), \(s), 16]) : f32[1, \(hq), \(s), 16]") }
            lines += [
                "%42 = broadcast_to(x: %\(repeated ? 41 : 2), shape: [1, \(hq), \(s), 16]) : f32[1, \(hq), \(s), 16]",
                "%43 = reshape(x: %42, shape: [\(hq), \(s), 16]) : f32[\(hq), \(s), 16]",
                "%44 = matmul(a: %40, b: %43) : f32[\(hq), ?1..8, 16]",
                "%45 = reshape(x: %44, shape: [1, \(hq), %10, 16]) : f32[1, \(hq), ?1..8, 16]",
            ]
            return lines
        }

        var reader: String { "%46 = transpose(x: %45, perm: [0, 2, 1, 3]) : f32[1, ?1..8, \(hq), 16]" }

        var body: [String] { prelude + pattern + [reader] }

        /// What the pass should make of it: the prelude, the sdpa, the reader.
        func fusedBody(scale: String = "0.25", k: String = "%1", v: String = "%2", q: String? = nil) -> [String] {
            var lines = prelude
            var maskText = maskValue
            if mask == .fill {
                lines.append("%999 = logical_not(x: %4) : bool[?1..8, \(s)]")
                maskText = "%999"
            }
            lines.append("%45 = sdpa(q: \(q ?? "%\(self.q)"), k: \(k), v: \(v), scale: \(scale), mask: \(maskText), causal: false) : f32[1, \(hq), ?1..8, 16]")
            return lines + [reader]
        }
    }

    /// `%N` → `%map[N]` throughout `text`.
    func renumber(_ text: String, _ map: [Int: Int]) -> String {
        let re = try! NSRegularExpression(pattern: "%([0-9]+)")
        var out = "", last = text.startIndex
        for m in re.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let whole = Range(m.range, in: text)!, n = Int(text[Range(m.range(at: 1), in: text)!])!
            out += text[last..<whole.lowerBound] + "%\(map[n] ?? n)"
            last = whole.upperBound
        }
        return out + text[last...]
    }

    /// Runs the pass on the layer's header and `body`. The parser wants values numbered densely, so
    /// the text is renumbered on the way in and back on the way out (a value the pass adds reads
    /// as %999).
    func run(_ layer: Layer, _ body: [String], outputs: String = "%46", file: StaticString = #filePath, line: UInt = #line) throws -> (lines: [String], changes: Int) {
        let text = layer.header + "block main {\n" + body.map { "  " + $0 + "\n" }.joined() + "}\noutputs \(outputs)\n"
        let re = try NSRegularExpression(pattern: "%([0-9]+)")
        let ids = Set(re.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { Int(text[Range($0.range(at: 1), in: text)!])! }).sorted()
        let dense = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        var back = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($0, $1) })
        back[ids.count] = 999
        var g = try IRParser.parse(renumber(text, dense))
        let changes = try FuseAttentionPattern().run(&g)
        try Verifier.verify(g)
        let printed = IRPrinter.print(g, origins: false)
        XCTAssertEqual(try IRParser.parse(printed), g, file: file, line: line)
        let lines = printed.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { renumber($0.trimmingCharacters(in: .whitespaces), back) }
        return (lines, changes)
    }

    func assertFused(_ layer: Layer, _ want: [String]? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let (lines, changes) = try run(layer, layer.body, file: file, line: line)
        XCTAssertEqual(changes, 1, file: file, line: line)
        XCTAssertEqual(lines, want ?? layer.fusedBody(), file: file, line: line)
    }

    func assertUnchanged(_ layer: Layer, body: [String]? = nil, outputs: String = "%46", _ why: String,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let body = body ?? layer.body
        let (lines, changes) = try run(layer, body, outputs: outputs, file: file, line: line)
        XCTAssertEqual(changes, 0, why, file: file, line: line)
        XCTAssertEqual(lines, body, why, file: file, line: line)
    }

    func testLlamaLayerBecomesOneSdpaReadingTheCache() throws {
        try assertFused(Layer())
    }

    func testGQARatiosOneAndTwo() throws {
        try assertFused(Layer(hq: 4, hkv: 4))
        try assertFused(Layer(hq: 4, hkv: 1))
        try assertFused(Layer(hq: 2, hkv: 2, mask: .none))
    }

    /// Hq = Hkv with the caches cloned before use (`.contiguous()` of the cache, no repeat), as the
    /// stories110M-shaped export has it: the sdpa reads the caches themselves, so fuse-rope-attention
    /// sees its in-place writes; written between the clone and the sdpa, it is left alone.
    func testClonedCachesWithoutRepeatAreReadDirectly() throws {
        let layer = Layer(hq: 2, hkv: 2)
        let clones = ["%13 = id_copy(x: %89) : f32[1, 2, 24, 16]", "%17 = id_copy(x: %2) : f32[1, 2, 24, 16]"]
        let cloned = clones + layer.body.map {
            $0.hasPrefix("%23 = ") ? $0.replacingOccurrences(of: "(x: %1,", with: "(x: %13,")
                : $0.hasPrefix("%42 = ") ? $0.replacingOccurrences(of: "(x: %2,", with: "(x: %17,") : $0
        }
        let (lines, changes) = try run(layer, cloned)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(lines, layer.fusedBody(k: "%89"))
        var between = cloned
        between.insert("%89 = copy_into(dst: %89, src: %1) : f32[1, 2, 24, 16]", at: between.firstIndex { $0.hasPrefix("%21 = ") }!)
        try assertUnchanged(layer, body: between, "the k state is written between its clone and the sdpa")
    }

    func testWithoutMask() throws {
        try assertFused(Layer(mask: .none))
        // Without a mask no row is fully masked, so the guard can be missing too.
        try assertFused(Layer(mask: .none, guarded: false))
    }

    func testBoolMasks() throws {
        try assertFused(Layer(mask: .keep))
        // masked_fill fills where the mask is true: sdpa keeps where its negation is.
        try assertFused(Layer(mask: .fill))
    }

    func testSlidingWindowLayerOverTheRingBuffer() throws {
        try assertFused(Layer(s: 15, sliding: true))
    }

    func testScaleFactorsMultiplyAndEitherMayBeMissing() throws {
        let layer = Layer()
        // kᵀ unscaled: the broadcast reads the transpose.
        let unscaledK = layer.body.filter { !$0.hasPrefix("%24 = ") }.map {
            $0.hasPrefix("%27 = ") ? "%27 = broadcast_to(x: %23, shape: [1, 4, 16, 24]) : f32[1, 4, 16, 24]" : $0
        }
        var (lines, changes) = try run(layer, unscaledK)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(lines, layer.fusedBody(scale: "0.5"))
        // q unscaled.
        let unscaledQ = layer.body.filter { !$0.hasPrefix("%21 = ") }.map {
            $0.hasPrefix("%25 = ") ? "%25 = broadcast_to(x: %12, shape: [1, 4, %10, 16]) : f32[1, 4, ?1..8, 16]" : $0
        }
        (lines, changes) = try run(layer, unscaledQ)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(lines, layer.fusedBody(scale: "0.5"))
        // Another factor on kᵀ: the product.
        var other = layer
        other.kScale = "%88"
        (lines, changes) = try run(other, other.body)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(lines, other.fusedBody(scale: "0.125"))
    }

    func testCacheWrittenInPlaceIsReadDirectlyUnlessWrittenBeforeTheSdpa() throws {
        let layer = Layer()
        let write = "%89 = copy_into(dst: %89, src: %1) : f32[1, 2, 24, 16]"
        let fromState = layer.body.map { $0.hasPrefix("%13 = ") ? "%13 = id_copy(x: %89) : f32[1, 2, 24, 16]" : $0 }
        // Written before the layer reads it: the sdpa reads the state itself.
        let (lines, changes) = try run(layer, [write] + fromState)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(lines, [write] + layer.fusedBody(k: "%89"))
        // Written after the repeat read it: the sdpa (in the last reshape's place) would see the new rows.
        var between = fromState
        between.insert(write, at: between.firstIndex { $0.hasPrefix("%21 = ") }!)
        try assertUnchanged(layer, body: between, "the k state is written between its read and the sdpa")
    }

    /// optimum's `--recipe xnnpack` order (llama_xnnpack_fp32): q is scaled (a pattern node) before
    /// the k cache is written in place and then read by the repeat. The write precedes every read of
    /// the cache, so the sdpa in the last reshape's place sees the same rows; written after the
    /// repeat read it, it is left alone.
    func testCacheWrittenAfterQIsScaledButBeforeItsReadIsReadDirectly() throws {
        let layer = Layer()
        let write = "%89 = copy_into(dst: %89, src: %1) : f32[1, 2, 24, 16]"
        let fromState = layer.body.map { $0.hasPrefix("%13 = ") ? "%13 = id_copy(x: %89) : f32[1, 2, 24, 16]" : $0 }
        let q = fromState.first { $0.hasPrefix("%21 = ") }!
        var xnnOrder = fromState.filter { $0 != q }
        xnnOrder.insert(contentsOf: [q, write], at: xnnOrder.firstIndex { $0.hasPrefix("%13 = ") }!)
        let (lines, changes) = try run(layer, xnnOrder)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(lines, layer.prelude + [write] + Array(layer.fusedBody(k: "%89").dropFirst(layer.prelude.count)))
        var late = xnnOrder.filter { $0 != write }
        late.insert(write, at: late.firstIndex { $0.hasPrefix("%22 = ") }!)
        try assertUnchanged(layer, body: late, "the k state is written after the repeat read it")
    }

    func testIntermediatesWithOtherReadersAreLeftAlone() throws {
        let layer = Layer()
        try assertUnchanged(layer, outputs: "%46, %32", "the softmax is also an output")
        for (v, type) in [("%16", "f32[1, 2, 2, 24, 16]"), ("%29", "f32[4, ?1..8, 24]"), ("%36", "bool[1, 4, ?1..8, 1]"), ("%21", "f32[1, 4, ?1..8, 16]")] {
            let body = layer.body + ["%47 = id_copy(x: \(v)) : \(type)"]
            try assertUnchanged(layer, body: body, outputs: "%46, %47", "\(v) has a second reader")
        }
    }

    func testOtherAxesAreLeftAlone() throws {
        try assertUnchanged(Layer(kPerm: "[0, 2, 1, 3]"), "k transposed over other axes")
        try assertUnchanged(Layer(softmaxAxis: 2), "softmax over the query axis")
        try assertUnchanged(Layer(mask: .none, softmaxAxis: 2), "softmax over the query axis, no mask")
    }

    func testScaleThatIsNotALiteralIsLeftAlone() throws {
        try assertUnchanged(Layer(kScale: "%8"), "kᵀ scaled by a run-time value")
        try assertUnchanged(Layer(kScale: "%3"), "kᵀ multiplied by a tensor")
    }

    func testRepeatThatIsNotRepeatInterleaveIsLeftAlone() throws {
        // expand at axis 1 then merge = tile (head h reads kv head h mod Hkv), not h / n.
        try assertUnchanged(Layer(expandAxis: 1, repeatShape: "[1, 2, 2, 24, 16]"), "k tiled, not interleaved")
        try assertUnchanged(Layer(hq: 4, hkv: 1, repeatShape: "[1, 1, 2, 24, 16]"), "k repeated 2×, not Hq / Hkv = 4×")
    }

    func testDimsThatAreNotProvedAreLeftAlone() throws {
        // q's length is not tied to %10 (the broadcast could stretch a 1-row q to %10 rows).
        let layer = Layer()
        let freeQ = layer.body.map { $0.hasPrefix("%21 = ") ? "%21 = multiply(a: %87, b: %5) : f32[1, 4, ?1..8, 16]" : $0 }
        try assertUnchanged(layer, body: freeQ, "q of a length the symbol does not name")
        // A mask one key wide broadcasts in the add; sdpa reads a column per key.
        let narrow = layer.body.map { $0.hasPrefix("%31 = ") ? "%31 = add(a: %30, b: %86) : f32[1, 4, ?1..8, 24]" : $0 }
        try assertUnchanged(layer, body: narrow, "a mask one key wide")
    }

    func testScoresAddedToThemselvesAreLeftAlone() throws {
        // The "mask" would be a removed intermediate.
        let layer = Layer()
        let doubled = layer.body.map { $0.hasPrefix("%31 = ") ? "%31 = add(a: %30, b: %30) : f32[1, 4, ?1..8, 24]" : $0 }
        try assertUnchanged(layer, body: doubled, "the scores as their own mask")
    }

    func testUnguardedSoftmaxWithAMaskIsLeftAlone() throws {
        // Fully masked rows: NaN in the graph, 0 from sdpa.
        try assertUnchanged(Layer(guarded: false), "plain softmax over masked scores")
        try assertUnchanged(Layer(mask: .keep, guarded: false), "plain softmax over bool-masked scores")
    }
}
