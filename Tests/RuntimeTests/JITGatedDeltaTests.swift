import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The `gated_delta_rule` kernel (GatedDeltaNet's recurrence: the MLX delegate's Metal kernel "gated_delta_step"
/// imported as a native op) against the reference executor, on random inputs scaled as ExecuTorch's own op test
/// scales them (q, k ~ N(0, 1)/√Dk, g and beta sigmoids): prefill (T = 5) and decode (T = 1), value heads sharing key
/// heads (GQA 1:2, 2:6) or not, Dk a multiple of the vector width or not (48, 20), Dv split into blocks of 4, 2 or 1
/// rows, f32/bf16/f16, batch 2; the state read from an input (written out of place) and from a temporary the kernel
/// updates in place. f32 within 1e-5 of the largest value; bf16/f16 within 2^-6 of it (both round every step as
/// the op's eager definition does, from f32 and from Double products, so a value may sit one ulp apart, and the
/// recurrence carries that into later steps). Also the two kernels the Qwen 3.5 graph needed besides it:
/// `log_add_exp` (its softplus) and `slice_update` into a value that is still read (its conv state).
final class JITGatedDeltaTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    struct Case {
        var b = 1, t = 5, hk = 2, hv = 2, dk = 32, dv = 16, dtype = DType.f32, inPlace = false
        /// The state's dtype when it differs from the projections' (the op suite's bf16 state under f32 q/k/v).
        var stateDType: DType? = nil
        /// etLLM's layout: operands [B, H, T, D], the state [B, Hv, Dk, Dv].
        var headsFirst = false
        /// A folded reset: the state times this (an f32 input of one element) before the first step.
        var stateScale: Double? = nil
    }

    func gaussian(_ r: inout Random, _ shape: [Int], scale: Double, _ dtype: DType) -> HostTensor {
        let n = shape.reduce(1, *)
        let values = (0..<n).map { _ -> Double in
            let u = max(r.next(), 1e-12), v = r.next()
            return scale * (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        return HostTensor(dtype: dtype, shape: shape, storage: values).rounded()
    }

    func sigmoids(_ r: inout Random, _ shape: [Int], _ dtype: DType) -> HostTensor {
        var t = gaussian(&r, shape, scale: 1, dtype)
        t.storage = t.storage.map { 1 / (1 + exp(-$0)) }
        return t.rounded()
    }

    func check(_ c: Case, seed: UInt64) throws {
        var r = Random(seed)
        var g = RefGraph()
        let s = 1 / Double(c.dk).squareRoot()
        let hf = c.headsFirst
        let q = g.input(gaussian(&r, hf ? [c.b, c.hk, c.t, c.dk] : [c.b, c.t, c.hk, c.dk], scale: s, c.dtype))
        let k = g.input(gaussian(&r, hf ? [c.b, c.hk, c.t, c.dk] : [c.b, c.t, c.hk, c.dk], scale: s, c.dtype))
        let v = g.input(gaussian(&r, hf ? [c.b, c.hv, c.t, c.dv] : [c.b, c.t, c.hv, c.dv], scale: 1, c.dtype))
        let gate = g.input(sigmoids(&r, hf ? [c.b, c.hv, c.t] : [c.b, c.t, c.hv], c.dtype))
        let beta = g.input(sigmoids(&r, hf ? [c.b, c.hv, c.t] : [c.b, c.t, c.hv], c.dtype))
        let sd = c.stateDType ?? c.dtype
        var state = g.input(gaussian(&r, hf ? [c.b, c.hv, c.dk, c.dv] : [c.b, c.hv, c.dv, c.dk], scale: 0.5, sd))
        if c.inPlace {
            // A temporary only the kernel reads (as the state reset `state · keep` is in the Qwen 3.5 graph).
            let keep = g.literal(1, sd), reset = g.result()
            g.append(.multiply(MultiplyOp(a: state, b: keep, out: reset)))
            state = reset
        }
        let y = g.result(), newState = g.result()
        let scale = c.stateScale.map { g.input(HostTensor(dtype: .f32, shape: [], storage: [$0])) }
        g.append(.gatedDeltaRule(GatedDeltaRuleOp(q: q, k: k, v: v, g: gate, beta: beta, state: state, outs: [y, newState],
                                                  headsFirst: hf, stateScale: scale)))
        let stateTag = c.stateDType.map { "_s\($0.name)" } ?? ""
        try ExportOpKernelChecks.check(g, [y, newState], f32Tolerance: 1e-5,
                                       halfScaled: c.dtype == .f32 && c.stateDType == nil ? nil : 0x1p-6,
                                       kernels: ["gated_delta_rule_\(hf ? "hf_" : "")\(c.dtype.name)\(stateTag)_dk\(c.dk)"], "\(c)")
    }

    func testKernelMatchesTheReference() throws {
        var seed: UInt64 = 300
        let cases: [Case] = [
            Case(),                                                  // prefill, Hk = Hv
            Case(t: 1),                                              // decode
            Case(hk: 1, hv: 2, dk: 64, dv: 64),                      // Qwen 3.5's GQA 1:2, 64-wide heads
            Case(b: 2, t: 3, hk: 2, hv: 6, dk: 48, dv: 6),           // 1:3, Dk not a power of two, rows of 2
            Case(t: 2, hk: 1, hv: 1, dk: 20, dv: 5),                 // Dk below the vector width, single rows
            Case(hk: 1, hv: 2, dtype: .bf16),
            Case(t: 1, dk: 64, dv: 32, dtype: .bf16, inPlace: true), // the decode step as the zoo program runs it
            Case(t: 4, dtype: .f16),
            Case(t: 3, inPlace: true),
            Case(t: 4, hk: 2, hv: 2, dk: 16, dv: 16, stateDType: .bf16),               // the op suite's projection case
            Case(t: 2, hk: 1, hv: 2, dtype: .bf16, inPlace: true, stateDType: .f32),  // an f32 state under bf16 inputs
        ]
        for c in cases {
            seed += 1
            try check(c, seed: seed)
        }
    }

    /// etLLM's layout (`heads_first`: operands [B, H, T, D], the state [B, Hv, Dk, Dv] read and written in place
    /// across Dv): Dk ≠ Dv so a state read the wrong way round cannot pass; Dv one vector, several, odd counts of
    /// vectors and below the width; prefill and decode; GQA; an f32 state under bf16 operands; in place and not.
    func testHeadsFirstKernelMatchesTheReference() throws {
        var seed: UInt64 = 400
        let cases: [Case] = [
            Case(headsFirst: true),                                                   // prefill, Dk 32, Dv 16
            Case(t: 1, headsFirst: true),                                             // decode
            Case(t: 1, hk: 2, hv: 2, dk: 128, dv: 128, inPlace: true, headsFirst: true), // Qwen3.5-0.8B's head, decode
            Case(t: 3, hk: 2, hv: 2, dk: 64, dv: 96, inPlace: true, headsFirst: true),   // an odd number of vectors
            Case(b: 2, t: 3, hk: 1, hv: 3, dk: 48, dv: 6, headsFirst: true),          // GQA 1:3, Dv below the width
            Case(t: 2, hk: 1, hv: 1, dk: 20, dv: 5, headsFirst: true),                // odd Dk and Dv
            Case(hk: 1, hv: 2, dtype: .bf16, headsFirst: true),
            Case(t: 4, dtype: .f16, inPlace: true, headsFirst: true),
            Case(t: 2, hk: 1, hv: 2, dtype: .bf16, inPlace: true, stateDType: .f32, headsFirst: true),
            // the model's reset folded in: keep 0 (position 0), 1, and a scale that rounds
            Case(t: 1, inPlace: true, headsFirst: true, stateScale: 0),
            Case(t: 3, headsFirst: true, stateScale: 1),
            Case(t: 2, hk: 1, hv: 2, dtype: .bf16, headsFirst: true, stateScale: 0.3),
        ]
        for c in cases {
            seed += 1
            try check(c, seed: seed)
        }
    }

    /// A state of the wrong shape is named by shape inference and by the reference.
    func testStateOfTheWrongShapeIsNamed() throws {
        var r = Random(7)
        var g = RefGraph()
        let q = g.input(r.tensor([1, 2, 2, 8])), k = g.input(r.tensor([1, 2, 2, 8])), v = g.input(r.tensor([1, 2, 2, 4]))
        let gate = g.input(r.tensor([1, 2, 2], 0, 1)), beta = g.input(r.tensor([1, 2, 2], 0, 1))
        let state = g.input(r.tensor([1, 2, 8, 4]))   // [B, Hv, Dk, Dv]: transposed
        let y = g.result(), s = g.result()
        g.append(.gatedDeltaRule(GatedDeltaRuleOp(q: q, k: k, v: v, g: gate, beta: beta, state: state, outs: [y, s])))
        XCTAssertThrowsError(try ShapeRules.resultTypes(of: g.graph.blocks[0].nodes[0].op, type: { g.graph[$0].type }, scalar: { _ in nil })) {
            XCTAssertTrue("\($0)".contains("gated_delta_rule: state [1, 2, 8, 4] must be [B, Hv, Dv, Dk] = [1, 2, 4, 8]"), "\($0)")
        }
        XCTAssertThrowsError(try Environment.gatedDeltaRule(q: g.feeds[0], k: g.feeds[1], v: g.feeds[2], g: g.feeds[3],
                                                            beta: g.feeds[4], state: g.feeds[5])) {
            XCTAssertTrue("\($0)".contains("state [1, 2, 8, 4] must be [B, Hv, Dv, Dk] = [1, 2, 4, 8]"), "\($0)")
        }
    }

    func testLogAddExpKernel() throws {
        for (seed, dtype) in [(UInt64(41), DType.f32), (42, .bf16), (43, .f16)] {
            var r = Random(seed)
            var g = RefGraph()
            var a = r.tensor([3, 37], -30, 30, dtype), b = r.tensor([3, 37], -30, 30, dtype)
            // Equal arguments, infinities, a zero operand (softplus), far apart and close together.
            a.storage[0] = -.infinity; b.storage[0] = -.infinity
            a.storage[1] = .infinity; b.storage[1] = 3
            a.storage[2] = 2.5; b.storage[2] = 2.5
            a.storage[3] = -60; b.storage[3] = 0
            a.storage[4] = 1e-3; b.storage[4] = 0
            let x = g.input(a), y = g.input(b.rounded()), out = g.result()
            g.append(.logAddExp(LogAddExpOp(a: x, b: y, out: out)))
            try ExportOpKernelChecks.check(g, [out], f32Tolerance: 1e-6, kernels: ["log_add_exp_\(dtype.name)"], "log_add_exp \(dtype)")
        }
    }

    /// slice_update into a value another op still reads: a new tensor, the original left as it was.
    func testSliceUpdateOfAValueStillReadIsACopy() throws {
        var r = Random(9)
        var g = RefGraph()
        let x = g.input(r.tensor([2, 6, 4], -1, 1, .bf16)), update = g.input(r.tensor([2, 2, 4], -1, 1, .bf16))
        let two = g.literal(2, .bf16), base = g.result(), spliced = g.result(), kept = g.result()
        g.append(.multiply(MultiplyOp(a: x, b: two, out: base)))
        g.append(.sliceUpdate(SliceUpdateOp(dst: base, update: update, out: spliced, axis: .literal(1), start: .literal(3), stop: .literal(5))))
        g.append(.add(AddOp(a: base, b: base, out: kept)))   // reads base after the update
        try ExportOpKernelChecks.check(g, [spliced, kept], kernels: ["splice_rows_b16"], "slice_update copy")
    }
}
