import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// The bf16 and f16 kernels against the reference executor: each op on random inputs (rounded to
/// their dtype), over several shapes including odd sizes (vector tails), T > 1 and splits across
/// threads, with no op left to the reference at compile time or at run time.
///
/// Tolerances. The kernels compute in f32 and round each op's result once to bf16/f16; the
/// reference computes in Double and rounds once too. So:
/// - add, subtract, multiply, maximum, minimum, comparisons and where are exact (the f32 result of
///   two bf16/f16 operands is already exact, or rounds the same way);
/// - everything else may differ by one unit in the last place of the result where f32 rounding
///   (or the f32 summation order) puts the exact value on the other side of a rounding boundary:
///   |got − want| ≤ ulp · max(|want|, 2^-10 · max |want|), with ulp = 2^-7 for bf16 and 2^-10 for
///   f16 (the spacing relative to the value at the low end of a binade). The floor covers results
///   near zero after cancellation, where the f32 accumulation error (≈ 1e-7 of the largest partial
///   sums) is what is left; it is 2^-17 (bf16) or 2^-20 (f16) of the largest result;
/// - f32 results (bf16 weights with f32 activations, or the reverse) within 1e-5 × the largest
///   reference magnitude, as in `JITKernelTests`.
final class JITHalfPrecisionTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    enum Tolerance {
        case exact
        /// One result ulp of `dtype`, relative, with the floor above.
        case ulp
    }

    static func ulp(_ dtype: DType) -> Double {
        switch dtype {
        case .bf16: return 0x1p-7
        case .f16: return 0x1p-10
        default: return 0   // f32 results: see `compare`
        }
    }

    func compare(_ got: HostTensor, _ want: HostTensor, _ tol: Tolerance, _ what: String, file: StaticString, line: UInt) {
        XCTAssertEqual(got.dtype, want.dtype, "\(what): dtype", file: file, line: line)
        XCTAssertEqual(got.shape, want.shape, "\(what): shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let scale = want.storage.filter(\.isFinite).map(Swift.abs).max() ?? 0
        let u = Self.ulp(want.dtype)
        for (i, (a, b)) in zip(got.storage, want.storage).enumerated() {
            if a.isNaN || b.isNaN {
                if !(a.isNaN && b.isNaN) { return XCTFail("\(what): element \(i) is \(a), reference \(b)", file: file, line: line) }
                continue
            }
            if a == b { continue }
            let bound: Double
            switch tol {
            case .exact: bound = 0
            case .ulp:
                // f32 results (a bf16 weight with f32 activations) are held to JITKernelTests' f32
                // bound, 1e-5 × the largest reference magnitude (the summation order differs).
                bound = want.dtype == .f32 ? 1e-5 * scale : u * Swift.max(Swift.abs(b), 0x1p-10 * scale)
            }
            if !(Swift.abs(a - b) <= bound) {
                return XCTFail("\(what): element \(i) is \(a), reference \(b) (tolerance \(bound))", file: file, line: line)
            }
        }
    }

    /// Runs `g` on the reference and compiled (state carries over between calls) and compares
    /// `outputs`; every op must compile and `kernels` (name prefixes) must be among the kernels.
    @discardableResult
    func check(_ g: RefGraph, _ outputs: [ValueID], calls: [[HostTensor]]? = nil, _ tol: Tolerance, kernels: [String],
               _ what: String, file: StaticString = #filePath, line: UInt = #line) throws -> JITProgram {
        var graph = g.graph
        graph.outputs = outputs
        let reference = try ReferenceExecutor(graph: graph)
        let jit = try JITProgram(graph: graph, pte: JITKernelTests.pte)
        XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line)
        for prefix in kernels {
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(prefix) }, "\(what): no kernel \(prefix)… in \(jit.kernelNames)",
                          file: file, line: line)
        }
        for (k, feeds) in (calls ?? [g.feeds]).enumerated() {
            let want = try reference.run(feeds)
            let got = try jit.run(feeds)
            for j in want.indices { compare(got[j], want[j], tol, "\(what) call \(k) output \(j)", file: file, line: line) }
        }
        XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): kernels that left calls to the reference", file: file, line: line)
        return jit
    }

    /// A constant (as a weight is): a literal of `t`'s dtype and shape.
    func constant(_ g: inout RefGraph, _ t: HostTensor) -> ValueID {
        g.graph.addValue(TensorType(t.dtype, fixed: t.shape), .constant(.literal(t.storage)))
    }

    // MARK: linear

    /// x [M, K] @ W[N, K]ᵀ (+ bias) with constant bf16/f16 weights: decode (M = 1) and prefill
    /// (M not a multiple of the 4-token block), K with and without a vector tail, N not a multiple
    /// of the 4-row block, and N large enough to be split across threads.
    func testLinear() throws {
        var r = Random(21)
        let shapes: [(m: Int, k: Int, n: Int)] = [(1, 64, 48), (1, 37, 13), (5, 100, 9), (3, 256, 257), (1, 512, 1024), (9, 48, 64)]
        // (weight, activation, bias or nil): the output dtype is their promotion.
        let types: [(DType, DType, DType?)] = [(.bf16, .bf16, nil), (.bf16, .bf16, .bf16), (.f16, .f16, .f16), (.f16, .f16, nil),
                                               (.bf16, .f32, .f32), (.f32, .bf16, nil)]
        for (m, k, n) in shapes {
            for (wt, xt, bt) in types {
                var g = RefGraph()
                let x = g.input(r.tensor([m, k], -1, 1, xt))
                let w = constant(&g, r.tensor([n, k], -0.5, 0.5, wt))
                let wT = g.result(), out = g.result()
                g.append(.transpose(TransposeOp(x: w, out: wT, perm: [1, 0])))
                let bias = bt.map { constant(&g, r.tensor([n], -1, 1, $0)) }
                g.append(.addmm(AddmmOp(mat1: x, mat2: wT, out: out, bias: bias)))
                try check(g, [out], .ulp, kernels: ["linear_\(wt.name)w_\(xt.name)_k\(k)_n\(n)"],
                          "linear m\(m) k\(k) n\(n) W \(wt.name) x \(xt.name) bias \(bt?.name ?? "none")")
            }
        }
    }

    // MARK: norms and softmax

    func testNorms() throws {
        var r = Random(22)
        for dtype in [DType.bf16, .f16] {
            for params in [dtype, .f32] {
                for d in [64, 37, 3, 288] {
                    for rows in [[1, 1], [3, 7], [2, 40]] {
                        var g = RefGraph()
                        let x = g.input(r.tensor(rows + [d], -3, 3, dtype))
                        let w = g.input(r.tensor([d], 0.5, 1.5, params)), bias = g.input(r.tensor([d], -1, 1, params))
                        let o1 = g.result(), o2 = g.result(), o3 = g.result(), o4 = g.result()
                        g.append(.rmsNorm(RMSNormOp(x: x, weight: w, out: o1, eps: 1e-5)))
                        g.append(.rmsNorm(RMSNormOp(x: x, weight: nil, out: o2, eps: 1e-6)))
                        g.append(.layerNorm(LayerNormOp(x: x, out: o3, weight: w, bias: bias, eps: 1e-5)))
                        g.append(.layerNorm(LayerNormOp(x: x, out: o4, weight: nil, bias: nil, eps: 1e-5)))
                        try check(g, [o1, o2, o3, o4], .ulp, kernels: ["rms_norm_\(dtype.name)", "layer_norm_\(dtype.name)"],
                                  "norms \(dtype.name) params \(params.name) d=\(d) \(rows)")
                    }
                }
            }
        }
    }

    func testSoftmax() throws {
        var r = Random(23)
        for dtype in [DType.bf16, .f16] {
            for shape in [[5, 37], [2, 3, 16], [1, 100], [4, 1], [3, 257], [64, 40]] {
                var x = r.tensor(shape, -8, 8, dtype)
                x.storage[0] = -.infinity   // a masked entry
                var g = RefGraph()
                let v = g.input(x), out = g.result()
                g.append(.softmax(SoftmaxOp(x: v, out: out, axis: -1, precise: true)))
                try check(g, [out], .ulp, kernels: ["softmax_\(dtype.name)_lastaxis"], "softmax \(dtype.name) \(shape)")
            }
        }
    }

    // MARK: elementwise

    /// Binary ops over broadcast layouts (same shape, scalar, row, general, and a split across
    /// threads mid-row), unary math, comparisons and where, in bf16 and f16.
    func testElementwise() throws {
        var r = Random(24)
        let layouts: [([Int], [Int])] = [([3, 37], [3, 37]), ([2, 5, 33], []), ([2, 5, 33], [33]), ([5, 33], [5, 1]),
                                         ([2, 3, 1, 5], [3, 4, 1]), ([3, 20011], [20011])]
        let exactOps: [(String, (ValueID, ValueID, ValueID) -> Op)] = [
            ("add", { .add(AddOp(a: $0, b: $1, out: $2)) }), ("subtract", { .subtract(SubtractOp(a: $0, b: $1, out: $2)) }),
            ("multiply", { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }),
            ("maximum", { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }), ("minimum", { .minimum(MinimumOp(a: $0, b: $1, out: $2)) }),
            ("less", { .less(LessOp(a: $0, b: $1, out: $2)) }), ("equal", { .equal(EqualOp(a: $0, b: $1, out: $2)) }),
        ]
        let divide: (String, (ValueID, ValueID, ValueID) -> Op) = ("divide", { .divide(DivideOp(a: $0, b: $1, out: $2)) })
        for dtype in [DType.bf16, .f16] {
            for (name, make) in exactOps + [divide] {
                for (sa, sb) in layouts {
                    var g = RefGraph()
                    let a = r.tensor(sa, -4, 4, dtype), b = r.tensor(sb, 0.25, 4, dtype)
                    let x = g.input(a), y = sb.isEmpty ? g.literal(b.storage[0], dtype) : g.input(b)
                    let out = g.result()
                    g.append(make(x, y, out))
                    try check(g, [out], name == "divide" ? .ulp : .exact, kernels: ["\(name)_\(dtype.name)"], "\(name) \(dtype.name) \(sa) \(sb)")
                }
            }
            let unary: [(String, (ValueID, ValueID) -> Op)] = [
                ("exp", { .exp(ExpOp(x: $0, out: $1)) }), ("sigmoid", { .sigmoid(SigmoidOp(x: $0, out: $1)) }),
                ("silu", { .silu(SiluOp(x: $0, out: $1)) }), ("tanh", { .tanh(TanhOp(x: $0, out: $1)) }),
                ("gelu", { .gelu(GeluOp(x: $0, out: $1, approximate: "none")) }),
                ("gelu_tanh", { .gelu(GeluOp(x: $0, out: $1, approximate: "tanh")) }),
                ("rsqrt", { .rsqrt(RsqrtOp(x: $0, out: $1)) }), ("neg", { .neg(NegOp(x: $0, out: $1)) }),
                ("square", { .square(SquareOp(x: $0, out: $1)) }),
            ]
            for (name, make) in unary {
                for shape in [[3, 37], [1, 5, 64], [4, 9001]] {
                    var g = RefGraph()
                    let lo = name == "rsqrt" ? 0.01 : -6.0
                    let x = g.input(r.tensor(shape, lo, 6, dtype)), out = g.result()
                    g.append(make(x, out))
                    try check(g, [out], .ulp, kernels: ["\(name)_\(dtype.name)"], "\(name) \(dtype.name) \(shape)")
                }
            }
            // where(cond, x, y) with a broadcast condition.
            var g = RefGraph()
            let c = g.input(r.ints([5, 1], 0, 1, .bool)), x = g.input(r.tensor([5, 33], -1, 1, dtype)), y = g.input(r.tensor([33], -1, 1, dtype))
            let out = g.result()
            g.append(.where(WhereOp(condition: c, x: x, y: y, out: out)))
            try check(g, [out], .exact, kernels: ["where_bool_\(dtype.name)"], "where \(dtype.name)")
        }
    }

    // MARK: rope and attention

    func testRope() throws {
        var r = Random(25)
        let cases: [([Int], Int, Bool)] = [([1, 4, 5, 16], 16, true), ([1, 4, 5, 16], 16, false), ([2, 2, 7, 20], 12, false),
                                           ([1, 1, 9, 128], 128, false), ([1, 2, 3, 40], 34, true)]
        for dtype in [DType.bf16, .f16] {
            for (shape, dims, traditional) in cases {
                for offset in [0, 7, 1000] {
                    var g = RefGraph()
                    let x = g.input(r.tensor(shape, -2, 2, dtype))
                    let off = g.input(HostTensor(dtype: .i64, shape: [], storage: [Double(offset)]))
                    let out = g.result()
                    g.append(.rope(RopeOp(x: x, out: out, dims: dims, offset: off, traditional: traditional, base: 10000)))
                    try check(g, [out], .ulp, kernels: ["rope_\(dtype.name)_rope\(dims)"],
                              "rope \(dtype.name) \(shape) dims \(dims) traditional \(traditional) offset \(offset)")
                }
            }
        }
    }

    /// Attention with bf16/f16 q, k, v: MHA and GQA, decode and prefill, S not a multiple of the key
    /// block, no mask, an additive mask in the activation dtype (with −inf) and a bool mask, causal.
    func testSDPA() throws {
        var r = Random(26)
        let shapes: [(b: Int, hq: Int, hkv: Int, t: Int, s: Int, d: Int)] = [
            (1, 4, 2, 1, 64, 16), (1, 4, 2, 5, 64, 16), (2, 8, 2, 6, 33, 12), (1, 2, 1, 4, 40, 80), (1, 1, 1, 9, 9, 3),
        ]
        for dtype in [DType.bf16, .f16] {
            for (b, hq, hkv, t, s, d) in shapes {
                for mask in ["none", "additive", "keep"] {
                    for causal in [false, true] {
                        var g = RefGraph()
                        let q = g.input(r.tensor([b, hq, t, d], -2, 2, dtype)), k = g.input(r.tensor([b, hkv, s, d], -2, 2, dtype))
                        let v = g.input(r.tensor([b, hkv, s, d], -2, 2, dtype))
                        var m: ValueID? = nil
                        if mask == "additive" {
                            var x = r.tensor([t, s], -1, 1, dtype)
                            for i in 0..<t { for j in 0..<s where j > s / 2 + i || j % 5 == 3 { x.storage[i * s + j] = -.infinity } }
                            m = g.input(x)
                        } else if mask == "keep" {
                            m = g.input(r.ints([1, 1, t, s], 0, 1, .bool))
                        }
                        let out = g.result()
                        g.append(.sdpa(SdpaOp(q: q, k: k, v: v, out: out, scale: 1 / Double(d).squareRoot(), mask: m, causal: causal)))
                        try check(g, [out], .ulp, kernels: ["sdpa_\(dtype.name)_dk\(d)"],
                                  "sdpa \(dtype.name) b\(b) hq\(hq) hkv\(hkv) t\(t) s\(s) d\(d) \(mask) causal \(causal)")
                    }
                }
            }
        }
    }

    /// The MLX attention block in bf16: q/k/v head swaps of [B, T, H, D] projections read through by
    /// RoPE, the bf16 KV-cache writes (index_copy, in place) and attention, whose output swap is
    /// written through; over calls at growing positions (prefill, then decode). Also the BSHD
    /// `llama::custom_sdpa` against a bf16 cache filled by `update_cache`.
    func testAttentionBlockWithCache() throws {
        var r = Random(27)
        let dtype = DType.bf16
        var g = RefGraph()
        let (t0, s) = (3, 24)
        func dynamic(_ t: HostTensor, _ dim: Int) -> ValueID {
            var shape = t.shape.map { Dim.fixed($0) }
            shape[dim] = .dynamic(min: 0, max: 8)
            let v = g.graph.addValue(TensorType(t.dtype, shape), .input(position: g.feeds.count))
            g.graph.inputs.append(v)
            g.feeds.append(t)
            return v
        }
        let qIn = dynamic(r.tensor([1, t0, 4, 16], -1, 1, dtype), 1)
        let kIn = dynamic(r.tensor([1, t0, 2, 16], -1, 1, dtype), 1)
        let vIn = dynamic(r.tensor([1, t0, 2, 16], -1, 1, dtype), 1)
        let pos = g.input(HostTensor.scalar(0, .i64))
        let positions = dynamic(HostTensor(dtype: .i64, shape: [t0], storage: [0, 1, 2]), 0)
        let mask = dynamic(r.tensor([t0, s], -1, 0, dtype), 0)
        let kc = g.graph.addValue(TensorType(dtype, fixed: [1, 2, s, 16]), .state(initial: nil))
        let vc = g.graph.addValue(TensorType(dtype, fixed: [1, 2, s, 16]), .state(initial: nil))
        let (q, k, v, qr, kr, o, ot) = (g.result(), g.result(), g.result(), g.result(), g.result(), g.result(), g.result())
        for (x, y) in [(qIn, q), (kIn, k), (vIn, v)] { g.append(.transpose(TransposeOp(x: x, out: y, perm: [0, 2, 1, 3]))) }
        g.append(.rope(RopeOp(x: q, out: qr, dims: 16, offset: pos, traditional: false, base: 10000)))
        g.append(.rope(RopeOp(x: k, out: kr, dims: 16, offset: pos, traditional: false, base: 10000)))
        g.append(.indexCopy(IndexCopyOp(dst: kc, update: kr, indices: positions, out: kc, axis: 2)))
        g.append(.indexCopy(IndexCopyOp(dst: vc, update: v, indices: positions, out: vc, axis: 2)))
        g.append(.sdpa(SdpaOp(q: qr, k: kc, v: vc, out: o, scale: 0.25, mask: mask)))
        g.append(.transpose(TransposeOp(x: o, out: ot, perm: [0, 2, 1, 3])))
        var calls: [[HostTensor]] = []
        var at = 0
        for t in [3, 1, 1, 4] {
            var m = r.tensor([t, s], -1, 0, dtype)
            for i in 0..<t { for j in 0..<s where j > at + i { m.storage[i * s + j] = -.infinity } }
            calls.append([r.tensor([1, t, 4, 16], -1, 1, dtype), r.tensor([1, t, 2, 16], -1, 1, dtype), r.tensor([1, t, 2, 16], -1, 1, dtype),
                          .scalar(Double(at), .i64), HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(at + $0) }), m])
            at += t
        }
        let jit = try check(g, [ot], calls: calls, .ulp, kernels: ["rope_bf16", "scatter_rows_inplace_b16", "sdpa_bf16_dk16_additivemaskbf16"],
                            "bf16 attention block")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") }, "a transpose was copied: \(jit.kernelNames)")

        // custom_sdpa (BSHD) over a bf16 cache written by update_cache.
        var c = RefGraph()
        let kv = c.graph.addValue(TensorType(dtype, fixed: [1, 32, 2, 16]), .state(initial: nil))
        let vv = c.graph.addValue(TensorType(dtype, fixed: [1, 32, 2, 16]), .state(initial: nil))
        let qq = c.input(r.tensor([1, 2, 4, 16], -2, 2, dtype)), kNew = c.input(r.tensor([1, 2, 2, 16], -2, 2, dtype))
        let vNew = c.input(r.tensor([1, 2, 2, 16], -2, 2, dtype)), start = c.input(HostTensor.scalar(0, .i64))
        let (k1, v1, out) = (c.result(), c.result(), c.result())
        c.append(.llamaUpdateCache(LlamaUpdateCacheOp(value: kNew, cache: kv, startPos: .value(start), out: kv)))
        c.append(.llamaUpdateCache(LlamaUpdateCacheOp(value: vNew, cache: vv, startPos: .value(start), out: vv)))
        _ = (k1, v1)
        c.append(.llamaCustomSdpa(LlamaCustomSdpaOp(q: qq, k: kv, v: vv, startPos: .value(start), isCausal: true, out: out)))
        let ccalls = [0, 2, 4, 9].map { p in
            [r.tensor([1, 2, 4, 16], -2, 2, dtype), r.tensor([1, 2, 2, 16], -2, 2, dtype), r.tensor([1, 2, 2, 16], -2, 2, dtype),
             HostTensor.scalar(Double(p), .i64)]
        }
        try check(c, [out], calls: ccalls, .ulp, kernels: ["scatter_rows_inplace_b16_consecutive", "sdpa_bf16_dk16_causal"],
                  "bf16 custom_sdpa over update_cache")
    }
}
