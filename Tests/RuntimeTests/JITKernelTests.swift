import Foundation
import XCTest
import LLVMKit
import MLXCCodegen
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Every compiled kernel against the reference executor (the semantic oracle): small graphs built
/// by hand, run through `JITProgram` and `ReferenceExecutor` on the same inputs, over several shapes
/// including odd sizes (vector tails), T > 1 and splits across threads.
///
/// Tolerances: data movement, integer ops, comparisons and casts are exact. f32 arithmetic is
/// within 1e-5 × the largest reference magnitude (summation order differs: vector partial sums,
/// online softmax). The transcendental approximations (exp, tanh, erf, sin/cos) are also checked
/// per element against their own bounds (stated at each test).
final class JITKernelTests: XCTestCase {
    static let pte: PTEFile = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try! PTEFile(path: root.appendingPathComponent("Fixtures/llama_mlx_fp32/model.pte").path)
    }()

    /// Deterministic pseudo-random numbers (a 64-bit LCG).
    struct Random {
        var state: UInt64
        init(_ seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }
        mutating func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        mutating func tensor(_ shape: [Int], _ lo: Double = -1, _ hi: Double = 1, _ dtype: DType = .f32) -> HostTensor {
            let n = shape.reduce(1, *)
            return HostTensor(dtype: dtype, shape: shape, storage: (0..<n).map { _ in lo + (hi - lo) * next() }).rounded()
        }
        mutating func ints(_ shape: [Int], _ lo: Int, _ hi: Int, _ dtype: DType = .i64) -> HostTensor {
            let n = shape.reduce(1, *)
            return HostTensor(dtype: dtype, shape: shape, storage: (0..<n).map { _ in Double(lo + Int(next() * Double(hi - lo + 1))) })
        }
    }

    enum Tolerance {
        /// Bit-for-bit (NaN matches NaN).
        case exact
        /// max |error| ≤ tol · max |reference|.
        case scaled(Double)
        /// |error| ≤ tol · max(|reference|, floor) for every element.
        case elementwise(Double, floor: Double)
    }

    func compare(_ got: HostTensor, _ want: HostTensor, _ tol: Tolerance, _ what: String, file: StaticString, line: UInt) {
        XCTAssertEqual(got.dtype, want.dtype, "\(what): dtype", file: file, line: line)
        XCTAssertEqual(got.shape, want.shape, "\(what): shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let scale = want.storage.filter(\.isFinite).map(Swift.abs).max() ?? 0
        var worst = 0.0, worstAt = -1
        for (i, (a, b)) in zip(got.storage, want.storage).enumerated() {
            if a.isNaN || b.isNaN {
                if !(a.isNaN && b.isNaN) { XCTFail("\(what): element \(i) is \(a), reference \(b)", file: file, line: line); return }
                continue
            }
            if a == b { continue }
            if a.isInfinite || b.isInfinite { XCTFail("\(what): element \(i) is \(a), reference \(b)", file: file, line: line); return }
            let err = Swift.abs(a - b)
            let bound: Double
            switch tol {
            case .exact: bound = 0
            case .scaled(let t): bound = t * scale
            case .elementwise(let t, let floor): bound = t * Swift.max(Swift.abs(b), floor)
            }
            if err > bound, err / Swift.max(bound, 1e-300) > worst { worst = err / Swift.max(bound, 1e-300); worstAt = i }
        }
        if worstAt >= 0 {
            XCTFail("\(what): element \(worstAt) is \(got.storage[worstAt]), reference \(want.storage[worstAt]) (\(worst)× the tolerance \(tol))",
                    file: file, line: line)
        }
    }

    /// Runs `g` on the reference and compiled, call by call (state carries over), and compares
    /// `outputs`. `kernels` are name prefixes that must have been compiled; with `allCompiled`,
    /// no op may have been left to the reference at compile time.
    @discardableResult
    func check(_ g: RefGraph, _ outputs: [ValueID], calls: [[HostTensor]]? = nil, _ tol: Tolerance, kernels: [String] = [],
               allCompiled: Bool = true, runtimeFallbacks: Bool = false, _ what: String = "",
               file: StaticString = #filePath, line: UInt = #line) throws -> JITProgram {
        var graph = g.graph
        graph.outputs = outputs
        let reference = try ReferenceExecutor(graph: graph)
        let jit = try JITProgram(graph: graph, pte: Self.pte)
        if allCompiled { XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference", file: file, line: line) }
        for prefix in kernels {
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix(prefix) }, "\(what): no kernel \(prefix)… in \(jit.kernelNames)",
                          file: file, line: line)
        }
        for (k, feeds) in (calls ?? [g.feeds]).enumerated() {
            let want = try reference.run(feeds)
            let got = try jit.run(feeds)
            for j in want.indices { compare(got[j], want[j], tol, "\(what) call \(k) output \(j)", file: file, line: line) }
        }
        if !runtimeFallbacks {
            XCTAssertEqual(jit.runtimeFallbacks, [:], "\(what): kernels that left calls to the reference", file: file, line: line)
        }
        return jit
    }

    // MARK: elementwise

    @discardableResult
    func binary(_ make: (ValueID, ValueID, ValueID) -> Op, _ a: HostTensor, _ b: HostTensor, _ tol: Tolerance, _ what: String,
                kernel: String, runtimeFallbacks: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> JITProgram {
        var g = RefGraph()
        let x = g.input(a), y = b.rank == 0 ? g.literal(b.storage[0], b.dtype) : g.input(b)
        let out = g.result()
        g.append(make(x, y, out))
        return try check(g, [out], tol, kernels: [kernel], runtimeFallbacks: runtimeFallbacks, what, file: file, line: line)
    }

    /// An input whose dim `dynamic` varies between calls (up to `max`).
    func dynamicInput(_ g: inout RefGraph, _ t: HostTensor, dynamic: Int, max: Int) -> ValueID {
        var shape = t.shape.map { Dim.fixed($0) }
        shape[dynamic] = .dynamic(min: 0, max: max)
        let v = g.graph.addValue(TensorType(t.dtype, shape), .input(position: g.feeds.count))
        g.graph.inputs.append(v)
        g.feeds.append(t)
        return v
    }

    /// Same shape, a rank-0 scalar, a row vector, a general broadcast (rank 3 and 4), mixed
    /// ranks, odd sizes, and one big enough to be split across threads mid-row.
    func testBinaryArithmeticOverBroadcastLayouts() throws {
        var r = Random(1)
        let layouts: [([Int], [Int])] = [([3, 37], [3, 37]), ([2, 5, 33], []), ([2, 5, 33], [33]), ([5, 33], [5, 1]),
                                         ([4, 1, 7], [1, 5, 1]), ([2, 3, 1, 5], [3, 4, 1]), ([1], [7]), ([3, 20011], [20011]),
                                         ([1, 5, 64], [1, 5, 64])]
        let ops: [(String, (ValueID, ValueID, ValueID) -> Op)] = [
            ("add", { .add(AddOp(a: $0, b: $1, out: $2)) }), ("subtract", { .subtract(SubtractOp(a: $0, b: $1, out: $2)) }),
            ("multiply", { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }), ("divide", { .divide(DivideOp(a: $0, b: $1, out: $2)) }),
            ("maximum", { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }), ("minimum", { .minimum(MinimumOp(a: $0, b: $1, out: $2)) }),
        ]
        for (name, make) in ops {
            for (sa, sb) in layouts {
                let a = r.tensor(sa), b = name == "divide" ? r.tensor(sb, 0.5, 2) : r.tensor(sb)
                // Each output element is one f32 operation, rounded once: exact.
                try binary(make, a, b, .exact, "\(name) \(sa) \(sb)", kernel: "\(name)_f32")
                try binary(make, b, a, .exact, "\(name) \(sb) \(sa)", kernel: "\(name)_f32")
            }
        }
        // NaN propagates through maximum/minimum from either side.
        let withNaN = HostTensor(dtype: .f32, shape: [3], storage: [.nan, 1, -2])
        let plain = HostTensor(dtype: .f32, shape: [3], storage: [0, .nan, 5])
        try binary({ .maximum(MaximumOp(a: $0, b: $1, out: $2)) }, withNaN, plain, .exact, "maximum NaN", kernel: "maximum_f32")
        try binary({ .minimum(MinimumOp(a: $0, b: $1, out: $2)) }, withNaN, plain, .exact, "minimum NaN", kernel: "minimum_f32")
    }

    /// A broadcast that stays rank 6 after merging dims has no kernel layout: it runs on the
    /// reference at run time, with the same result. Rank 5 runs compiled.
    func testBroadcastBeyondFiveDimsFallsBackAtRunTime() throws {
        var r = Random(2)
        let a = r.tensor([2, 1, 3, 1, 5, 1]), b = r.tensor([1, 4, 1, 6, 1, 3])
        let jit = try binary({ .add(AddOp(a: $0, b: $1, out: $2)) }, a, b, .exact, "add rank 6", kernel: "add_f32", runtimeFallbacks: true)
        XCTAssertEqual(jit.runtimeFallbacks.values.reduce(0, +), 1)
        try binary({ .add(AddOp(a: $0, b: $1, out: $2)) }, r.tensor([2, 1, 3, 1, 5]), r.tensor([1, 4, 1, 6, 1]), .exact, "add rank 5",
                   kernel: "add_f32")
    }

    func testIntegerComparisonAndLogicalOps() throws {
        var r = Random(3)
        let a = r.ints([4, 9], -50, 50), b = r.ints([9], -50, 50), col = r.ints([4, 1], -50, 50)
        let ints: [(String, (ValueID, ValueID, ValueID) -> Op)] = [
            ("add", { .add(AddOp(a: $0, b: $1, out: $2)) }), ("subtract", { .subtract(SubtractOp(a: $0, b: $1, out: $2)) }),
            ("multiply", { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }), ("maximum", { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }),
            ("minimum", { .minimum(MinimumOp(a: $0, b: $1, out: $2)) }),
            ("less", { .less(LessOp(a: $0, b: $1, out: $2)) }), ("less_equal", { .lessEqual(LessEqualOp(a: $0, b: $1, out: $2)) }),
            ("greater", { .greater(GreaterOp(a: $0, b: $1, out: $2)) }),
            ("greater_equal", { .greaterEqual(GreaterEqualOp(a: $0, b: $1, out: $2)) }),
            ("equal", { .equal(EqualOp(a: $0, b: $1, out: $2)) }), ("not_equal", { .notEqual(NotEqualOp(a: $0, b: $1, out: $2)) }),
        ]
        for (name, make) in ints {
            try binary(make, a, b, .exact, "\(name) i64", kernel: "\(name)_i64")
            try binary(make, col, b, .exact, "\(name) i64 outer", kernel: "\(name)_i64")
            try binary(make, a.converted(to: .i32), b.converted(to: .i32), .exact, "\(name) i32", kernel: "\(name)_i32")
        }
        // Comparisons on f32 (NaN compares unequal), the llama mask pattern [1, S] vs [T, 1].
        let f = HostTensor(dtype: .f32, shape: [5], storage: [1, .nan, -3, 2, .infinity])
        let g = HostTensor(dtype: .f32, shape: [5], storage: [1, 1, .nan, 3, .infinity])
        for (name, make) in ints.suffix(6) { try binary(make, f, g, .exact, "\(name) f32", kernel: "\(name)_f32") }
        try binary({ .lessEqual(LessEqualOp(a: $0, b: $1, out: $2)) }, r.ints([1, 64], 0, 63), r.ints([7, 1], 0, 63), .exact,
                   "less_equal mask", kernel: "less_equal_i64")
        // Python remainder by a constant (sign of the divisor), as gemma's sliding window uses it.
        for divisor in [15.0, -7.0, 1.0, -1.0] {
            try binary({ .remainder(RemainderOp(a: $0, b: $1, out: $2)) }, r.ints([37], -100, 100),
                       HostTensor.scalar(divisor, .i64), .exact, "remainder \(divisor)", kernel: "remainder_i64")
        }
        // Bools: bitwise and logical ops, logical_not.
        let p = r.ints([3, 17], 0, 1, .bool), q = r.ints([17], 0, 1, .bool)
        try binary({ .bitwiseAnd(BitwiseAndOp(a: $0, b: $1, out: $2)) }, p, q, .exact, "bitwise_and bool", kernel: "bitwise_and_bool")
        try binary({ .bitwiseOr(BitwiseOrOp(a: $0, b: $1, out: $2)) }, p, q, .exact, "bitwise_or bool", kernel: "bitwise_or_bool")
        try binary({ .logicalAnd(LogicalAndOp(a: $0, b: $1, out: $2)) }, p, q, .exact, "logical_and", kernel: "logical_and_bool")
        try binary({ .bitwiseXor(BitwiseXorOp(a: $0, b: $1, out: $2)) }, a, b, .exact, "bitwise_xor i64", kernel: "bitwise_xor_i64")
        var lg = RefGraph()
        let x = lg.input(p), out = lg.result()
        lg.append(.logicalNot(LogicalNotOp(x: x, out: out)))
        try check(lg, [out], .exact, kernels: ["logical_not_bool"], "logical_not")
    }

    func unary(_ make: (ValueID, ValueID) -> Op, _ x: HostTensor, _ tol: Tolerance, _ what: String, kernel: String,
               file: StaticString = #filePath, line: UInt = #line) throws {
        var g = RefGraph()
        let v = g.input(x), out = g.result()
        g.append(make(v, out))
        try check(g, [out], tol, kernels: [kernel], what, file: file, line: line)
    }

    func testUnaryMath() throws {
        var r = Random(4)
        let specials: [Double] = [0, -0.0, 1e-30, -1e-30, 1e-8, 0.5, -0.625, 0.625, 3, -3, 9, -9, 20, -20, 87, -87, 88.7, -88.7,
                                  89, -104, -110, 1e4, -1e4, .infinity, -.infinity, .nan]
        for shape in [[37], [3, 5, 33], [2, 4096 + 17]] {
            let wide = r.tensor(shape, -12, 12)
            let x = HostTensor(dtype: .f32, shape: [wide.count + specials.count], storage: wide.storage + specials).rounded()
            // exp: Cephes expf, ≤ 1e-7 relative over the f32 range (1e-6 allowed); denormal results may flush.
            try unary({ .exp(ExpOp(x: $0, out: $1)) }, x, .elementwise(1e-6, floor: 1e-37), "exp \(shape)", kernel: "exp_f32")
            // sigmoid and silu: built on exp (one more division), ≤ 1e-6 relative.
            try unary({ .sigmoid(SigmoidOp(x: $0, out: $1)) }, x, .elementwise(1e-6, floor: 1e-37), "sigmoid", kernel: "sigmoid_f32")
            try unary({ .silu(SiluOp(x: $0, out: $1)) }, x, .elementwise(1e-6, floor: 1e-37), "silu", kernel: "silu_f32")
            // tanh: Cephes tanhf, ≤ 2e-7 relative (1e-6 allowed).
            try unary({ .tanh(TanhOp(x: $0, out: $1)) }, x, .elementwise(1e-6, floor: 1e-30), "tanh", kernel: "tanh_f32")
            // erf: rational approximation, ≤ 4e-7 absolute (2e-6 relative to values ≥ 0.5 allowed).
            try unary({ .erf(ErfOp(x: $0, out: $1)) }, x, .elementwise(2e-6, floor: 0.5), "erf", kernel: "erf_f32")
            // gelu: x times (1 + erf or tanh): the small relative error of erf/tanh, absolute near 0 where 1 + erf cancels.
            try unary({ .gelu(GeluOp(x: $0, out: $1, approximate: "none")) }, x, .elementwise(2e-6, floor: 1), "gelu", kernel: "gelu_f32")
            try unary({ .gelu(GeluOp(x: $0, out: $1, approximate: "tanh")) }, x, .elementwise(2e-6, floor: 1), "gelu tanh",
                      kernel: "gelu_tanh_f32")
            // One IEEE operation each: exact.
            try unary({ .sqrt(SqrtOp(x: $0, out: $1)) }, x, .exact, "sqrt", kernel: "sqrt_f32")
            try unary({ .neg(NegOp(x: $0, out: $1)) }, x, .exact, "neg", kernel: "neg_f32")
            try unary({ .abs(AbsOp(x: $0, out: $1)) }, x, .exact, "abs", kernel: "abs_f32")
            try unary({ .square(SquareOp(x: $0, out: $1)) }, x, .exact, "square", kernel: "square_f32")
            try unary({ .reciprocal(ReciprocalOp(x: $0, out: $1)) }, x, .exact, "reciprocal", kernel: "reciprocal_f32")
            // rsqrt: sqrt then a division, two roundings against the reference's one: 1 ulp.
            try unary({ .rsqrt(RsqrtOp(x: $0, out: $1)) }, x, .elementwise(1.2e-7, floor: 0), "rsqrt", kernel: "rsqrt_f32")
        }
        try unary({ .neg(NegOp(x: $0, out: $1)) }, r.ints([19], -9, 9), .exact, "neg i64", kernel: "neg_i64")
        // round: halves to even, exact (XNNPACK's int8 codes depend on it), on exact halves and on random codes.
        let halves: [Double] = [-2.5, -1.5, -0.5, -0.0, 0.5, 1.5, 2.5, 126.5, -127.5, 255.5, 0.49999997, 8388607.5, .infinity, .nan]
        let codes = r.tensor([4096 + 3], -300, 300)
        let roundInput = HostTensor(dtype: .f32, shape: [codes.count + halves.count], storage: codes.storage + halves).rounded()
        try unary({ .round(RoundOp(x: $0, out: $1)) }, roundInput, .exact, "round", kernel: "round_f32")
    }

    func testWhereAndAsType() throws {
        var r = Random(5)
        // The llama mask: where(bool [T, S], 0 [1], −inf [1]).
        for (t, s) in [(1, 64), (7, 33)] {
            var g = RefGraph()
            let c = g.input(r.ints([t, s], 0, 1, .bool)), x = g.input(HostTensor(dtype: .f32, shape: [1], storage: [0]))
            let y = g.input(HostTensor(dtype: .f32, shape: [1], storage: [-.infinity])), out = g.result()
            g.append(.`where`(WhereOp(condition: c, x: x, y: y, out: out)))
            try check(g, [out], .exact, kernels: ["where_bool_f32"], "where \(t)×\(s)")
        }
        var g = RefGraph()
        let c = g.input(r.ints([3, 1, 5], 0, 1, .bool)), x = g.input(r.ints([4, 1], -9, 9)), y = g.input(r.ints([5], -9, 9))
        let out = g.result()
        g.append(.`where`(WhereOp(condition: c, x: x, y: y, out: out)))
        try check(g, [out], .exact, kernels: ["where_bool_i64"], "where i64 broadcast")

        // Casts: round to nearest even (bf16/f16), truncation and saturation to ints, nonzero to bool.
        let values = r.tensor([53], -300, 300).storage + [0.5, 1.5, 2.5, -0.5, 1.00390625, 1.01171875, 65519, 70000, 3e9, -3e9,
                                                           1e20, .infinity, -.infinity, .nan, 0, -0.0]
        let f = HostTensor(dtype: .f32, shape: [values.count], storage: values).rounded()
        for target: DType in [.bf16, .f16, .i32, .i64, .bool, .u8, .f32] {
            try unary({ .asType(AsTypeOp(x: $0, out: $1, scalarType: target)) }, f, .exact, "f32 → \(target.name)",
                      kernel: "as_type_f32_to_\(ElementType(target)!.rawValue)")
        }
        let finite = HostTensor(dtype: .f32, shape: [53], storage: Array(values.prefix(53))).rounded()
        for source: DType in [.bf16, .f16, .i32, .i64, .bool] {
            try unary({ .asType(AsTypeOp(x: $0, out: $1, scalarType: .f32)) }, finite.converted(to: source), .exact,
                      "\(source.name) → f32", kernel: "as_type_\(ElementType(source)!.rawValue)_to_f32")
        }
        try unary({ .asType(AsTypeOp(x: $0, out: $1, scalarType: .i64)) }, r.ints([21], -99, 99, .i32), .exact, "i32 → i64",
                  kernel: "as_type_i32_to_i64")
        try unary({ .asType(AsTypeOp(x: $0, out: $1, scalarType: .bf16)) }, r.ints([21], -999, 999), .exact, "i64 → bf16",
                  kernel: "as_type_i64_to_bf16")
    }

    // MARK: norms and softmax

    func testRMSNormAndLayerNorm() throws {
        var r = Random(6)
        for d in [64, 37, 3, 100, 256] {
            for rows in [[1, 1], [1, 5], [3, 7]] {
                let x = r.tensor(rows + [d], -3, 3), w = r.tensor([d], 0.5, 1.5), bias = r.tensor([d])
                var g = RefGraph()
                let xv = g.input(x), wv = g.input(w), bv = g.input(bias)
                let o1 = g.result(), o2 = g.result(), o3 = g.result(), o4 = g.result()
                g.append(.rmsNorm(RMSNormOp(x: xv, weight: wv, out: o1, eps: 1e-5)))
                g.append(.rmsNorm(RMSNormOp(x: xv, weight: nil, out: o2, eps: 1e-6)))
                g.append(.layerNorm(LayerNormOp(x: xv, out: o3, weight: wv, bias: bv, eps: 1e-5)))
                g.append(.layerNorm(LayerNormOp(x: xv, out: o4, weight: nil, bias: nil, eps: 1e-5)))
                // f32 sums of squares in vector partial sums vs the reference's Double: ≤ 1e-5 × max.
                try check(g, [o1, o2, o3, o4], .scaled(1e-5), kernels: ["rms_norm_f32_d\(d)_v", "rms_norm_f32_d\(d)_noweight",
                                                                          "layer_norm_f32_d\(d)_bias", "layer_norm_f32_d\(d)_noweight"],
                          "norms d=\(d) \(rows)")
            }
        }
    }

    func testSoftmaxLastAxis() throws {
        var r = Random(7)
        for shape in [[5, 37], [2, 3, 16], [1, 100], [4, 1], [3, 257]] {
            var x = r.tensor(shape, -20, 20)
            x.storage[0] = -.infinity   // a masked entry
            var g = RefGraph()
            let v = g.input(x), out = g.result(), out2 = g.result()
            g.append(.softmax(SoftmaxOp(x: v, out: out, axis: -1, precise: true)))
            g.append(.softmax(SoftmaxOp(x: v, out: out2, axis: shape.count - 1, precise: false)))
            // exp ≤ 1e-7 relative and an f32 sum: ≤ 1e-5 × max (the max is at most 1).
            try check(g, [out, out2], .scaled(1e-5), kernels: ["softmax_f32_lastaxis"], "softmax \(shape)")
        }
        // A fully masked row is NaN in both.
        var g = RefGraph()
        let v = g.input(HostTensor(dtype: .f32, shape: [2, 3], storage: [-.infinity, -.infinity, -.infinity, 1, 2, 3])), out = g.result()
        g.append(.softmax(SoftmaxOp(x: v, out: out, axis: -1)))
        try check(g, [out], .scaled(1e-6), kernels: ["softmax_f32_lastaxis"], "softmax masked row")
    }

    // MARK: rope

    func testRope() throws {
        var r = Random(8)
        // (shape, dims, traditional, freqs, scale): dims == D and dims < D (pass-through), odd half sizes.
        let cases: [([Int], Int, Bool, Bool, Double)] = [
            ([1, 4, 5, 16], 16, true, false, 1), ([1, 4, 5, 16], 16, false, false, 1), ([1, 2, 1, 16], 16, true, false, 1),
            ([2, 2, 7, 20], 12, false, false, 0.5), ([2, 2, 7, 20], 12, true, false, 1), ([3, 6, 64], 64, false, false, 1),
            ([1, 2, 3, 40], 34, true, false, 1), ([1, 2, 3, 40], 34, false, true, 1), ([1, 1, 9, 128], 128, false, false, 1),
        ]
        for (shape, dims, traditional, hasFreqs, scale) in cases {
            for offset in [0, 7, 1000, 123_456] {
                var g = RefGraph()
                let x = g.input(r.tensor(shape, -2, 2))
                let off = g.input(HostTensor(dtype: .i64, shape: [], storage: [Double(offset)]))
                let freqs = hasFreqs ? g.input(r.tensor([dims / 2], 1, 10000)) : nil
                let out = g.result()
                g.append(.rope(RopeOp(x: x, out: out, dims: dims, offset: off, freqs: freqs, traditional: traditional,
                                      base: 10000, scale: scale)))
                // sin/cos ≤ 2e-7 absolute (angles reduced in f64): ≤ 1e-5 × max |x|.
                try check(g, [out], .scaled(1e-5), kernels: ["rope_f32_rope\(dims)"],
                          "rope \(shape) dims \(dims) traditional \(traditional) freqs \(hasFreqs) offset \(offset)")
            }
        }
    }

    // MARK: attention

    enum MaskKind { case none, additive, keep, additiveBHTS }

    func sdpaGraph(_ r: inout Random, b: Int, hq: Int, hkv: Int, t: Int, s: Int, dk: Int, dv: Int, mask: MaskKind, causal: Bool,
                   maskWidth: Int? = nil) -> (RefGraph, ValueID) {
        var g = RefGraph()
        let q = g.input(r.tensor([b, hq, t, dk], -2, 2)), k = g.input(r.tensor([b, hkv, s, dk], -2, 2))
        let v = g.input(r.tensor([b, hkv, s, dv], -2, 2))
        var m: ValueID? = nil
        let width = maskWidth ?? s
        switch mask {
        case .none: break
        case .additive:
            // The llama pattern: 0 where visible, −inf on the unwritten tail, some finite biases.
            var x = r.tensor([t, width], -1, 1)
            for i in 0..<t { for j in 0..<width where j > (s / 2 + i) || (j % 5 == 3) { x.storage[i * width + j] = -.infinity } }
            m = g.input(x)
        case .additiveBHTS:
            m = g.input(r.tensor([b, 1, t, width], -1, 1))
        case .keep:
            m = g.input(r.ints([1, 1, t, width], 0, 1, .bool))
        }
        let out = g.result()
        g.append(.sdpa(SdpaOp(q: q, k: k, v: v, out: out, scale: 1 / Double(dk).squareRoot(), mask: m, causal: causal)))
        return (g, out)
    }

    func testSDPA() throws {
        var r = Random(9)
        // (b, hq, hkv, t, s, dk, dv): MHA/GQA, decode and prefill, S not a multiple of the key block, odd and large heads.
        let shapes: [(Int, Int, Int, Int, Int, Int, Int)] = [
            (1, 4, 2, 1, 64, 16, 16), (1, 4, 2, 5, 64, 16, 16), (1, 4, 4, 3, 7, 16, 16), (2, 8, 2, 6, 33, 12, 12),
            (1, 2, 1, 4, 40, 80, 80), (1, 4, 2, 2, 17, 16, 24), (1, 1, 1, 9, 9, 3, 5),
        ]
        for (b, hq, hkv, t, s, dk, dv) in shapes {
            for mask in [MaskKind.none, .additive, .keep, .additiveBHTS] {
                for causal in [false, true] {
                    let (g, out) = sdpaGraph(&r, b: b, hq: hq, hkv: hkv, t: t, s: s, dk: dk, dv: dv, mask: mask, causal: causal)
                    // Online softmax in f32 with the exp approximation vs the reference's two passes in Double: ≤ 1e-5 × max.
                    try check(g, [out], .scaled(1e-5), kernels: ["sdpa_f32_dk\(dk)"],
                              "sdpa b\(b) hq\(hq) hkv\(hkv) t\(t) s\(s) dk\(dk) dv\(dv) \(mask) causal \(causal)")
                }
            }
        }
        // A mask wider than S (only its first S columns count).
        let (g, out) = sdpaGraph(&r, b: 1, hq: 2, hkv: 1, t: 3, s: 20, dk: 16, dv: 16, mask: .additive, causal: false, maskWidth: 24)
        try check(g, [out], .scaled(1e-5), kernels: ["sdpa_f32_dk16"], "sdpa wide mask")
    }

    /// Long unmasked f32 attention (fixed T, S ≥ 4 vectors) takes the long-sequence kernel: several key
    /// chunks and a partial one, GQA, tiles that end mid-head, odd dk/dv (vector tails), batches, and q/k/v
    /// read through head swaps with the output written through one (the encoder's layout).
    func testLongSDPA() throws {
        var r = Random(19)
        let lanes = try TargetMachine().host.vectorBits / 32
        let shapes: [(Int, Int, Int, Int, Int, Int, Int)] = [
            (1, 4, 2, 70, 1100, 16, 16), (1, 2, 2, 64, 65, 64, 64), (2, 2, 1, 67, 100, 12, 20), (1, 1, 1, 4 * lanes, 4 * lanes, 64, 64),
        ]
        for (b, hq, hkv, t, s, dk, dv) in shapes {
            let (g, out) = sdpaGraph(&r, b: b, hq: hq, hkv: hkv, t: t, s: s, dk: dk, dv: dv, mask: .none, causal: false)
            // Two-pass softmax per key chunk, rescaled between chunks, in f32: ≤ 1e-5 × max as the row kernel.
            try check(g, [out], .scaled(1e-5), kernels: ["sdpa_long_f32_dk\(dk)"], "long sdpa b\(b) hq\(hq) hkv\(hkv) t\(t) s\(s) dk\(dk) dv\(dv)")
        }
        // [B, T, H, D] projections read through head swaps; the result's head swap written through.
        var g = RefGraph()
        let (t, s, h, d) = (80, 300, 3, 64)
        let qs = g.input(r.tensor([1, t, h, d], -2, 2)), ks = g.input(r.tensor([1, s, h, d], -2, 2)), vs = g.input(r.tensor([1, s, h, d], -2, 2))
        let swapped = [qs, ks, vs].map { x -> ValueID in
            let y = g.result()
            g.append(.transpose(TransposeOp(x: x, out: y, perm: [0, 2, 1, 3])))
            return y
        }
        let o = g.result(), out = g.result()
        g.append(.sdpa(SdpaOp(q: swapped[0], k: swapped[1], v: swapped[2], out: o, scale: 0.125, mask: nil, causal: false)))
        g.append(.transpose(TransposeOp(x: o, out: out, perm: [0, 2, 1, 3])))
        let jit = try check(g, [out], .scaled(1e-5), kernels: ["sdpa_long_f32_dk64"], "long sdpa through head swaps")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") }, "head swaps copied: \(jit.kernelNames)")
        // A causal or masked call, or a short one, keeps the row-tile kernel.
        for (mask, causal, t) in [(MaskKind.additive, false, 70), (.none, true, 70), (.none, false, 3)] {
            let (g, out) = sdpaGraph(&r, b: 1, hq: 2, hkv: 2, t: t, s: 200, dk: 16, dv: 16, mask: mask, causal: causal)
            let jit = try check(g, [out], .scaled(1e-5), kernels: ["sdpa_f32_dk16"], "row-tile sdpa \(mask) causal \(causal) t\(t)")
            XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("sdpa_long") }, "\(mask) causal \(causal) t\(t)")
        }
    }

    func testCustomSDPA() throws {
        var r = Random(10)
        // BSHD q [B, T, Hq, D] against a whole cache [B, Smax, Hkv, D]: keys [0, start + T).
        for (t, start, causal) in [(1, 0, true), (1, 9, true), (5, 3, true), (4, 20, false), (3, 0, false)] {
            var g = RefGraph()
            let q = g.input(r.tensor([1, t, 4, 16], -2, 2)), k = g.input(r.tensor([1, 32, 2, 16], -2, 2))
            let v = g.input(r.tensor([1, 32, 2, 16], -2, 2))
            let pos = g.input(HostTensor(dtype: .i64, shape: [], storage: [Double(start)]))
            let out = g.result()
            g.append(.llamaCustomSdpa(LlamaCustomSdpaOp(q: q, k: k, v: v, startPos: .value(pos), isCausal: causal, out: out)))
            try check(g, [out], .scaled(1e-5), kernels: ["sdpa_f32_dk16"], "custom_sdpa t\(t) start \(start) causal \(causal)")
        }
        // With a [T, S] additive mask and a literal start.
        var g = RefGraph()
        let q = g.input(r.tensor([2, 3, 4, 8], -2, 2)), k = g.input(r.tensor([2, 24, 4, 8], -2, 2)), v = g.input(r.tensor([2, 24, 4, 8]))
        let m = g.input(r.tensor([3, 19], -2, 0)), out = g.result()
        g.append(.llamaCustomSdpa(LlamaCustomSdpaOp(q: q, k: k, v: v, startPos: .literal(16), attnMask: m, isCausal: false, scale: 0.3, out: out)))
        try check(g, [out], .scaled(1e-5), kernels: ["sdpa_f32_dk8_additivemask"], "custom_sdpa mask")
    }

    /// The MLX attention block: q/k/v are head swaps of [B, T, H, D] projections, RoPE and the
    /// cache writes read through them, the output head swap is written by the attention kernel:
    /// no transpose is copied. Over calls at growing positions (prefill, then decode).
    func testHeadSwapsFoldIntoRopeCacheWritesAndAttention() throws {
        var r = Random(15)
        var g = RefGraph()
        let (t0, s) = (3, 24)
        let qIn = dynamicInput(&g, r.tensor([1, t0, 4, 16]), dynamic: 1, max: 8)
        let kIn = dynamicInput(&g, r.tensor([1, t0, 2, 16]), dynamic: 1, max: 8)
        let vIn = dynamicInput(&g, r.tensor([1, t0, 2, 16]), dynamic: 1, max: 8)
        let pos = g.input(HostTensor.scalar(0, .i64))
        let positions = dynamicInput(&g, HostTensor(dtype: .i64, shape: [t0], storage: [0, 1, 2]), dynamic: 0, max: 8)
        let mask = dynamicInput(&g, r.tensor([t0, s]), dynamic: 0, max: 8)
        let kc = g.graph.addValue(TensorType(.f32, fixed: [1, 2, s, 16]), .state(initial: nil))
        let vc = g.graph.addValue(TensorType(.f32, fixed: [1, 2, s, 16]), .state(initial: nil))
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
            var m = r.tensor([t, s], -1, 0)
            for i in 0..<t { for j in 0..<s where j > at + i { m.storage[i * s + j] = -.infinity } }
            calls.append([r.tensor([1, t, 4, 16]), r.tensor([1, t, 2, 16]), r.tensor([1, t, 2, 16]), .scalar(Double(at), .i64),
                          HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(at + $0) }), m])
            at += t
        }
        let jit = try check(g, [ot], calls: calls, .scaled(1e-5), kernels: ["rope_f32", "scatter_rows_inplace", "sdpa_f32_dk16"],
                            "attention block")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") }, "a transpose was copied: \(jit.kernelNames)")

        // Whisper-style: q, k and v all head swaps, no mask; the output swap written through.
        var w = RefGraph()
        let xs = (0..<3).map { _ in w.input(r.tensor([2, 7, 3, 8])) }
        let swapped = xs.map { _ in w.result() }
        for (x, y) in zip(xs, swapped) { w.append(.transpose(TransposeOp(x: x, out: y, perm: [0, 2, 1, 3]))) }
        let wo = w.result(), wt = w.result()
        w.append(.sdpa(SdpaOp(q: swapped[0], k: swapped[1], v: swapped[2], out: wo, scale: 0.35)))
        w.append(.transpose(TransposeOp(x: wo, out: wt, perm: [0, 2, 1, 3])))
        let wjit = try check(w, [wt], .scaled(1e-5), kernels: ["sdpa_f32_dk8"], "encoder attention")
        XCTAssertFalse(wjit.kernelNames.contains { $0.hasPrefix("strided_copy") })

        // A call the fused RoPE cannot take (one offset per batch entry) runs the transpose and the
        // rope on the reference, in order.
        var f = RefGraph()
        let fx = f.input(r.tensor([2, 5, 3, 16])), offsets = f.input(HostTensor(dtype: .i64, shape: [2], storage: [3, 9]))
        let ft = f.result(), fr = f.result()
        f.append(.transpose(TransposeOp(x: fx, out: ft, perm: [0, 2, 1, 3])))
        f.append(.rope(RopeOp(x: ft, out: fr, dims: 16, offset: offsets, traditional: true, base: 10000)))
        let fjit = try check(f, [fr], .scaled(1e-5), kernels: ["rope_f32"], runtimeFallbacks: true, "rope fallback")
        XCTAssertEqual(fjit.runtimeFallbacks.values.reduce(0, +), 1)
    }

    // MARK: data movement

    func testTransposeSliceBroadcastConcatenate() throws {
        var r = Random(11)
        for (shape, perm) in [([1, 5, 4, 16], [0, 2, 1, 3]), ([1, 4, 5, 16], [0, 2, 1, 3]), ([7, 13], [1, 0]), ([3, 5, 7], [2, 0, 1]),
                              ([2, 3, 33, 17], [0, 1, 3, 2]), ([2, 3, 4, 5, 6], [4, 2, 0, 3, 1]), ([300, 129], [1, 0])] {
            var g = RefGraph()
            let x = g.input(r.tensor(shape)), out = g.result()
            g.append(.transpose(TransposeOp(x: x, out: out, perm: perm)))
            try check(g, [out], .exact, kernels: ["strided_copy_b32"], "transpose \(shape) \(perm)")
        }
        // A chain of head swaps (neither absorbs the other).
        var cg0 = RefGraph()
        let h0 = cg0.input(r.tensor([2, 3, 5, 4])), h1 = cg0.result(), h2 = cg0.result()
        cg0.append(.transpose(TransposeOp(x: h0, out: h1, perm: [0, 2, 1, 3])))
        cg0.append(.transpose(TransposeOp(x: h1, out: h2, perm: [0, 2, 1, 3])))
        try check(cg0, [h2], .exact, kernels: ["strided_copy_b32"], "transpose chain")
        // Slices: negative bounds, steps (the plain llama's rope halves), a dynamic start.
        let x = r.tensor([2, 4, 9, 16])
        for (axis, start, stop, step) in [(3, 0, Int(Int64.max), 2), (3, 1, Int(Int64.max), 2), (2, -1, Int(Int64.max), 1),
                                          (0, 1, 2, 1), (2, 2, 7, 3), (1, 3, 0, -1), (2, 4, 4, 1)] {
            var g = RefGraph()
            let v = g.input(x), out = g.result()
            g.append(.slice(SliceOp(x: v, out: out, axis: .literal(Int64(axis)), start: .literal(Int64(start)),
                                    stop: .literal(Int64(stop)), step: step)))
            try check(g, [out], .exact, kernels: ["strided_copy_b32"], "slice axis \(axis) \(start):\(stop):\(step)")
        }
        var sg = RefGraph()
        let sv = sg.input(r.tensor([32, 8])), st = sg.input(HostTensor.scalar(5, .i64)), sp = sg.input(HostTensor.scalar(9, .i64))
        let sout = sg.result()
        sg.append(.slice(SliceOp(x: sv, out: sout, axis: .literal(0), start: .value(st), stop: .value(sp))))
        try check(sg, [sout], calls: [[sg.feeds[0], .scalar(5, .i64), .scalar(9, .i64)], [sg.feeds[0], .scalar(0, .i64), .scalar(1, .i64)],
                                      [sg.feeds[0], .scalar(30, .i64), .scalar(40, .i64)]],
                  .exact, kernels: ["strided_copy_b32_v\(HostTarget.current.vectorBits / 32)_skip2"], "slice dynamic")
        // broadcast_to with −1 (the plain llama's GQA expansion).
        var bg = RefGraph()
        let bv = bg.input(r.tensor([1, 2, 1, 64, 16])), bout = bg.result()
        bg.append(.broadcastTo(BroadcastToOp(x: bv, out: bout, shape: [.literal(1), .literal(2), .literal(3), .literal(-1), .literal(16)])))
        try check(bg, [bout], .exact, kernels: ["strided_copy_b32"], "broadcast_to")
        // Concatenation along the first, a middle and the last axis; i64 too.
        for axis in [0, 1, -1] {
            var g = RefGraph()
            let a = g.input(r.tensor([2, 3, 5])), b = g.input(r.tensor([2, 3, 5])), c = g.input(r.tensor([2, 3, 5]))
            let out = g.result()
            g.append(.concatenate(ConcatenateOp(tensors: [a, b, c], out: out, axis: axis)))
            try check(g, [out], .exact, kernels: ["concatenate3_b32"], "concatenate axis \(axis)")
        }
        var cg = RefGraph()
        let c1 = cg.input(r.ints([4, 1], 0, 9)), c2 = cg.input(r.ints([4, 3], 0, 9)), cout = cg.result()
        cg.append(.concatenate(ConcatenateOp(tensors: [c1, c2], out: cout, axis: 1)))
        try check(cg, [cout], .exact, kernels: ["concatenate2_b64"], "concatenate i64")
    }

    func testTake() throws {
        var r = Random(12)
        let table = r.tensor([256, 64])
        // Embedding lookups (i64 and i32 tokens, a negative one), T = 1 and T > 1.
        for (tokens, dtype) in [([3, 255, 0, 17, -1], DType.i64), ([42], .i64), ([1, 2, 3, 250, 7, 7], .i32)] {
            var g = RefGraph()
            let t = g.input(table), idx = g.input(HostTensor(dtype: dtype, shape: [1, tokens.count], storage: tokens.map(Double.init)))
            let out = g.result()
            g.append(.take(TakeOp(x: t, out: out, index: .value(idx), axis: 0)))
            try check(g, [out], .exact, kernels: ["gather_rows_b32_\(dtype.name)index"], "take \(tokens)")
        }
        // Along a middle axis, and one index (literal or a rank-0 value): a strided copy.
        var g = RefGraph()
        let x = g.input(r.tensor([3, 7, 5])), idx = g.input(r.ints([2, 2], -7, 6)), out = g.result()
        g.append(.take(TakeOp(x: x, out: out, index: .value(idx), axis: 1)))
        let one = g.result(), two = g.result()
        g.append(.take(TakeOp(x: x, out: one, index: .literal(-2), axis: 2)))
        let pos = g.input(HostTensor(dtype: .i64, shape: [], storage: [4]))
        g.append(.take(TakeOp(x: x, out: two, index: .value(pos), axis: 1)))
        try check(g, [out, one, two], .exact, kernels: ["gather_rows_b32_i64index", "strided_copy_b32"], "take axis 1")
        // The MLX llama's `take(input_pos, 0)`.
        var pg = RefGraph()
        let p = pg.input(HostTensor(dtype: .i64, shape: [1], storage: [5])), pout = pg.result()
        pg.append(.take(TakeOp(x: p, out: pout, index: .literal(0), axis: 0)))
        try check(pg, [pout], .exact, kernels: ["strided_copy_b64"], "take scalar")
    }

    /// KV-cache writes into state, in place, over several calls (the state carries over).
    func testCacheWritesInPlace() throws {
        var r = Random(13)
        // index_copy along the sequence axis of [B, H, S, D], positions from an input.
        var g = RefGraph()
        let cache = g.graph.addValue(TensorType(.f32, fixed: [1, 2, 16, 8]), .state(initial: nil))
        let update = dynamicInput(&g, r.tensor([1, 2, 3, 8]), dynamic: 2, max: 16)
        let positions = dynamicInput(&g, HostTensor(dtype: .i64, shape: [3], storage: [0, 1, 2]), dynamic: 0, max: 16)
        g.append(.indexCopy(IndexCopyOp(dst: cache, update: update, indices: positions, out: cache, axis: 2)))
        let read = g.result()
        g.append(.idCopy(IdCopyOp(x: cache, out: read)))
        var calls: [[HostTensor]] = []
        for (t, start) in [(3, 0), (1, 3), (1, 4), (4, 12), (2, -16)] {
            calls.append([r.tensor([1, 2, t, 8]), HostTensor(dtype: .i64, shape: [t], storage: (0..<t).map { Double(start + $0) })])
        }
        let jit = try check(g, [read], calls: calls, .exact, kernels: ["scatter_rows_inplace_b32_i64index"], "index_copy")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") }, "the cache is written in place, not copied")

        // slice_update along axis 1 with a dynamic start; llama update_cache (BSHD).
        var sg = RefGraph()
        let state = sg.graph.addValue(TensorType(.f32, fixed: [2, 10, 6]), .state(initial: nil))
        let upd = sg.input(r.tensor([2, 2, 6])), start = sg.input(HostTensor.scalar(0, .i64)), stop = sg.input(HostTensor.scalar(2, .i64))
        sg.append(.sliceUpdate(SliceUpdateOp(dst: state, update: upd, out: state, axis: .literal(1), start: .value(start), stop: .value(stop))))
        let kv = sg.graph.addValue(TensorType(.f32, fixed: [1, 12, 2, 4]), .state(initial: nil))
        let value = sg.input(r.tensor([1, 2, 2, 4]))
        let other = sg.graph.addValue(TensorType(.i64, []), .computed)
        sg.append(.llamaUpdateCache(LlamaUpdateCacheOp(value: value, cache: kv, startPos: .value(start), out: kv)))
        _ = other
        let r1 = sg.result(), r2 = sg.result()
        sg.append(.idCopy(IdCopyOp(x: state, out: r1)))
        sg.append(.idCopy(IdCopyOp(x: kv, out: r2)))
        var scalls: [[HostTensor]] = []
        for s in [0, 2, 5, 8] {
            scalls.append([r.tensor([2, 2, 6]), .scalar(Double(s), .i64), .scalar(Double(s + 2), .i64), r.tensor([1, 2, 2, 4])])
        }
        try check(sg, [r1, r2], calls: scalls, .exact, kernels: ["scatter_rows_inplace_b32_consecutive"], "slice_update / update_cache")
    }

    func testFullAndArange() throws {
        var g = RefGraph()
        let n = g.input(HostTensor.scalar(7, .i64))
        let a = g.result(), b = g.result(), c = g.result(), d = g.result(), e = g.result(), f = g.result()
        g.append(.full(FullOp(out: a, shape: [.literal(1)], v: .literal(-.infinity), scalarType: .f32)))
        g.append(.full(FullOp(out: b, shape: [.value(n), .literal(3)], v: .literal(0.1), scalarType: .bf16)))
        g.append(.arange(ARangeOp(out: c, start: .literal(0), stop: .value(n), step: .literal(1), scalarType: .i64)))
        g.append(.arange(ARangeOp(out: d, start: .literal(10), stop: .literal(-7), step: .literal(-3), scalarType: .f32)))
        g.append(.fullLike(FullLikeOp(x: c, out: e, v: .literal(2.5), scalarType: .f32)))
        g.append(.fullLike(FullLikeOp(x: d, out: f, v: .literal(-1))))
        try check(g, [a, b, c, d, e, f], calls: [[.scalar(7, .i64)], [.scalar(1, .i64)], [.scalar(100, .i64)]], .exact,
                  kernels: ["fill_b32", "fill_b16", "arange_i64", "arange_f32"], "full / arange")
    }

    /// Affine dequantization of gathered rows (a 4-bit embedding table): one rounding of s·q + b,
    /// as the reference's exact Double result rounded to f32.
    func testDequantizeAffine() throws {
        var r = Random(14)
        for (bits, group, k, params) in [(4, 32, 64, DType.f32), (2, 64, 128, .f32), (8, 32, 96, .bf16), (4, 64, 256, .f16),
                                         (2, 16, 64, .f32), (8, 128, 256, .f32), (3, 32, 96, .f32), (5, 64, 128, .bf16), (6, 32, 64, .f16)] {
            for rows in [[1, 1], [1, 5], [3, 2]] {
                let words = k * bits / 32, groups = k / group
                let w = HostTensor(dtype: .u32, shape: rows + [words], storage: (0..<(rows.reduce(1, *) * words)).map { _ in
                    Double(UInt32(truncatingIfNeeded: Int(r.next() * Double(UInt32.max)))) })
                var g = RefGraph()
                let wv = g.input(w), s = g.input(r.tensor(rows + [groups], 0.01, 0.2, params)), b = g.input(r.tensor(rows + [groups], -1, 1, params))
                let out = g.result()
                g.append(.dequantize(DequantizeOp(w: wv, scales: s, out: out, biases: b, groupSize: group, bits: bits, mode: "affine",
                                                  dtype: .f32)))
                try check(g, [out], .exact, kernels: ["dequantize_affine_w\(bits)g\(group)_\(params.name)params_f32_k\(k)"],
                          "dequantize \(bits)-bit g\(group) \(rows)")
            }
        }
    }

    /// The dequantize kernel at every vector width (4 lanes: 128-bit SSE/NEON, 8: AVX2, 16: AVX-512,
    /// whatever the host), every MLX bit width and group size: bit for bit the reference's values.
    func testDequantizeAffineAtEveryVectorWidth() throws {
        var r = Random(15)
        let machine = try TargetMachine()
        for bits in [2, 3, 4, 5, 6, 8] {
            for group in [32, 64, 128] {
                let k = 2 * group, rows = 3, words = k * bits / 32, groups = k / group
                let w = (0..<(rows * words)).map { _ in UInt32(truncatingIfNeeded: Int(r.next() * Double(UInt32.max))) }
                let scales = r.tensor([rows, groups], 0.01, 0.2), biases = r.tensor([rows, groups], -1, 1)
                let want = try Environment.dequantize(HostTensor(dtype: .u32, shape: [rows, words], storage: w.map(Double.init)),
                                                      scales: scales, biases: biases, groupSize: group, bits: bits, mode: "affine").rounded()
                for lanes in [4, 8, 16] {
                    XCTAssertTrue(DequantizeKernels.supports(bits: bits, groupSize: group, lanes: lanes), "\(bits)-bit g\(group) v\(lanes)")
                    let library = KernelLibrary()
                    let name = library.require(DequantizeKernels.affine(k: k, bits: bits, groupSize: group, params: .f32, lanes: lanes))
                    let jit = try JIT(machine: machine)
                    let (functions, _) = try library.compile(into: jit, machine: machine, partitions: 1)
                    let kernel = try XCTUnwrap(functions[name])
                    var wBuffer = w, sBuffer = scales.storage.map(Float.init), bBuffer = biases.storage.map(Float.init)
                    var out = [Float](repeating: .nan, count: rows * k)
                    wBuffer.withUnsafeMutableBytes { wp in sBuffer.withUnsafeMutableBytes { sp in bBuffer.withUnsafeMutableBytes { bp in
                        out.withUnsafeMutableBytes { op in
                            let buffers: [UnsafeMutableRawPointer?] = [wp.baseAddress, sp.baseAddress, bp.baseAddress, op.baseAddress]
                            let dims: [Int64] = [0]
                            kernel(buffers, dims, 0, Int64(rows))
                        }
                    } } }
                    compare(HostTensor(dtype: .f32, shape: [rows, k], storage: out.map(Double.init)), want, .exact,
                            "dequantize \(bits)-bit g\(group) at \(lanes) lanes", file: #filePath, line: #line)
                }
            }
        }
    }

    // MARK: machine code

    /// The kernels use the widest vector registers (zmm on AVX-512 hosts).
    func testAssemblyUsesWideVectors() throws {
        let machine = try TargetMachine()
        let lanes = machine.host.vectorBits / 32
        let library = KernelLibrary()
        library.require(ElementwiseKernels.binary(.add, .f32, lanes: lanes)!)
        library.require(ElementwiseKernels.unary(.silu, .f32, lanes: lanes)!)
        library.require(NormKernels.rms(d: 64, eps: 1e-5, hasWeight: true, lanes: lanes))
        library.require(SoftmaxKernels.lastAxis(lanes: lanes))
        library.require(RopeKernels.rope(dims: 64, traditional: false, base: 10000, scale: 1, hasFreqs: false, lanes: lanes))
        library.require(AttentionKernels.sdpa(dk: 64, dv: 64, mask: .additive, causal: false, scale: 0.125, lanes: lanes))
        library.require(StridedMapKernels.copy(byteSize: 4, lanes: lanes))
        let (_, dumps) = try library.compile(into: try JIT(machine: machine), machine: machine, keepDumps: true)
        let asm = try XCTUnwrap(dumps.assembly)
        let register = machine.host.vectorBits == 512 ? "zmm" : (machine.host.vectorBits == 256 ? "ymm" : "xmm")
        for name in library.definitions.map(\.name) {
            guard let start = asm.range(of: "\(name):") else { XCTFail("no code for \(name)"); continue }
            let body = asm[start.upperBound...].prefix(while: { _ in true })
            let end = body.range(of: ".Lfunc_end")?.lowerBound ?? body.endIndex
            XCTAssertTrue(body[..<end].contains(register), "\(name) does not use \(register)")
        }
    }
}
