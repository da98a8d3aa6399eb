import Foundation
import XCTest
import MLXCCodegen
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// The compiled block-scaled float quantized matmul (MLX nvfp4 / mxfp4 / mxfp8) against the
/// reference executor, which dequantizes the weights and then multiplies.
///
/// Shapes cover both FP4 decodings (`vpermps` when a row's words fill 16-lane chunks, the
/// arithmetic decoding for K whose word count is not a multiple of 16: 2-, 4- and 8-lane chunks),
/// whole blocks of groups and power-of-two remainders, decode (M = 1) and every token-block tail
/// (M = 1 … 19), odd N, and f32 / bf16 / f16 activations. Every weight holds all 16 FP4 codes (or,
/// for mxfp8, E4M3 codes with subnormals, ±0 and the largest values; no NaN codes), E4M3 scales
/// include subnormals and negative ones.
///
/// Tolerances: f32 within 1e-5 × max |reference| (the kernel sums in f32 in another order than
/// the reference's double sum); bf16 / f16 results one result ulp, |got − want| ≤ ulp ·
/// max(|want|, 2^-9 · max |want|) (the f32 sum may round to the other neighbour). The one-hot test
/// is exact: each output is one decoded weight.
extension JITKernelTests {
    /// Random packed codes [n, k] (all 16 FP4 codes in each row's first 16) and scale bytes [n, k / groupSize].
    func floatQuantizedWeight(_ mode: FloatQuantization, n: Int, k: Int, _ r: inout Random) -> (words: [Double], scales: [Double]) {
        let bits = mode.codeBits, perWord = 32 / bits
        var codes = [Int](repeating: 0, count: n * k)
        for row in 0..<n {
            for j in 0..<k {
                var c = Int(r.next() * Double(1 << bits))
                if bits == 4, j < 16 { c = (j + row) % 16 }
                if bits == 8 {
                    if j < 8 { c = [0x00, 0x80, 0x01, 0x87, 0x08, 0x7E, 0xFE, 0x3F][j] }   // ±0, subnormals, ±448
                    if c & 0x7F == 0x7F { c ^= 1 }   // no NaN codes
                }
                codes[row * k + j] = c
            }
        }
        var words = [Double](repeating: 0, count: n * k / perWord)
        for i in words.indices {
            var word: UInt32 = 0
            for s in 0..<perWord { word |= UInt32(codes[i * perWord + s]) << UInt32(bits * s) }
            words[i] = Double(word)
        }
        let groups = k / mode.groupSize
        let scales: [Double] = (0..<(n * groups)).map { i in
            switch mode {
            case .nvfp4:
                // E4M3: mostly exponents 3…9 (0.03 … 1.9), some subnormals, some negative.
                let u = r.next()
                let magnitude = u < 0.1 ? 1 + Int(r.next() * 7) : (3 + Int(r.next() * 7)) << 3 | Int(r.next() * 8)
                return Double(magnitude | (i % 11 == 5 ? 0x80 : 0))
            case .mxfp4, .mxfp8:
                return Double(120 + Int(r.next() * 10))   // 2^-7 … 2^2
            }
        }
        return (words, scales)
    }

    /// x [m, k] · W(n × k)ᵀ for one mode; with `globalScale`, the result times a scalar (as the
    /// MLX delegate emits nvfp4's per-tensor scale).
    func checkFloatQuantizedMatmul(_ mode: FloatQuantization, x dtype: DType = .f32, m: Int, k: Int, n: Int, seed: UInt64,
                                   globalScale: Double? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let (words, scaleBytes) = floatQuantizedWeight(mode, n: n, k: k, &r)
        var g = RefGraph()
        let x = g.input(r.tensor([1, m, k], -1, 1, dtype))
        let w = g.graph.addValue(TensorType(.u32, fixed: [n, k * mode.codeBits / 32]), .constant(.literal(words)))
        let s = g.graph.addValue(TensorType(.u8, fixed: [n, k / mode.groupSize]), .constant(.literal(scaleBytes)))
        var out = g.result()
        g.append(.quantizedMatmul(QuantizedMatmulOp(x: x, w: w, scales: s, out: out, groupSize: mode.groupSize, bits: mode.codeBits,
                                                    mode: mode.rawValue, transpose: true)))
        if let globalScale {
            let scaled = g.result()
            g.append(.multiply(MultiplyOp(a: out, b: g.literal(globalScale, dtype), out: scaled)))
            out = scaled
        }
        let what = "qmm \(mode.rawValue) x \(dtype.name) m\(m) k\(k) n\(n)\(globalScale.map { " global \($0)" } ?? "")"
        let tolerance: Tolerance
        if dtype == .f32 {
            tolerance = .scaled(1e-5)
        } else {
            var probe = g
            let want = try probe.run([out])[0]
            let largest = want.storage.map(Swift.abs).max() ?? 0
            tolerance = .elementwise(dtype == .bf16 ? 0x1p-7 : 0x1p-10, floor: 0x1p-9 * largest)
        }
        let kernel = "qmm_\(mode.rawValue)_g\(mode.groupSize)_\(dtype.name)_k\(k)_n\(n)" + (globalScale == nil ? "_tb" : "_gscale\(dtype.name)")
        let jit = try check(g, [out], tolerance, kernels: [kernel], what, file: file, line: line)
        if globalScale != nil {
            XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("multiply") }, "\(what): the scale was not folded", file: file, line: line)
        }
    }

    /// K per mode: 16-lane chunks with and without remainder blocks, and K whose words only split
    /// into 2-, 4- or 8-lane chunks.
    static let floatQuantizedKs: [FloatQuantization: [Int]] = [
        .nvfp4: [256, 384, 1152, 48, 80, 160, 192],
        .mxfp4: [512, 640, 96, 160, 64],
        .mxfp8: [256, 320, 32, 96, 224],
    ]

    func testFloatQuantizedMatmulDecodeEveryModeAndK() throws {
        var seed: UInt64 = 700
        for mode in FloatQuantization.allCases {
            for k in Self.floatQuantizedKs[mode]! {
                for n in [37, 1] {
                    seed += 1
                    try checkFloatQuantizedMatmul(mode, m: 1, k: k, n: n, seed: seed)
                }
            }
        }
    }

    func testFloatQuantizedMatmulEveryTokenCount() throws {
        var seed: UInt64 = 800
        for mode in FloatQuantization.allCases {
            for m in 1...19 {
                seed += 1
                try checkFloatQuantizedMatmul(mode, m: m, k: mode == .nvfp4 ? 384 : 640, n: 21, seed: seed)
            }
            // Token blocks with the arithmetic FP4 decoding.
            try checkFloatQuantizedMatmul(mode, m: 7, k: 96, n: 19, seed: seed + 100)
        }
    }

    func testFloatQuantizedMatmulHalfPrecisionActivations() throws {
        var seed: UInt64 = 900
        for mode in FloatQuantization.allCases {
            for dtype in [DType.bf16, .f16] {
                for (m, k) in [(1, 512), (5, 256), (11, 96)] {
                    seed += 1
                    try checkFloatQuantizedMatmul(mode, x: dtype, m: m, k: k, n: 33, seed: seed)
                }
            }
        }
    }

    /// The per-tensor scale (`multiply` by a scalar after the matmul, as the MLX delegate emits it)
    /// is folded into the kernel's store.
    func testNVFP4WithAndWithoutGlobalScale() throws {
        for (i, global) in [nil, 0.01171875, 3.5].enumerated() {
            for dtype in [DType.f32, .bf16] {
                try checkFloatQuantizedMatmul(.nvfp4, x: dtype, m: 1, k: 512, n: 40, seed: 1000 + UInt64(i), globalScale: global)
                try checkFloatQuantizedMatmul(.nvfp4, x: dtype, m: 6, k: 160, n: 17, seed: 1010 + UInt64(i), globalScale: global)
            }
        }
    }

    /// x = the identity: output row j is column j of the dequantized weight, so every code and
    /// scale decoding is checked bit for bit (exact: one nonzero product per output).
    func testFloatQuantizedDecodingIsExact() throws {
        var seed: UInt64 = 1100
        for mode in FloatQuantization.allCases {
            for k in [128, 48, 64].filter({ $0 % mode.groupSize == 0 }) {
                seed += 1
                var r = Random(seed)
                let n = 16
                let (words, scaleBytes) = floatQuantizedWeight(mode, n: n, k: k, &r)
                var g = RefGraph()
                var eye = HostTensor(dtype: .f32, shape: [k, k], storage: [Double](repeating: 0, count: k * k))
                for i in 0..<k { eye.storage[i * k + i] = 1 }
                let x = g.input(eye)
                let w = g.graph.addValue(TensorType(.u32, fixed: [n, k * mode.codeBits / 32]), .constant(.literal(words)))
                let s = g.graph.addValue(TensorType(.u8, fixed: [n, k / mode.groupSize]), .constant(.literal(scaleBytes)))
                let out = g.result()
                g.append(.quantizedMatmul(QuantizedMatmulOp(x: x, w: w, scales: s, out: out, groupSize: mode.groupSize,
                                                            bits: mode.codeBits, mode: mode.rawValue, transpose: true)))
                try check(g, [out], .exact, kernels: ["qmm_\(mode.rawValue)_"], "one-hot \(mode.rawValue) k\(k)")
            }
        }
    }

    /// Scales the kernel cannot decode exactly (a NaN E4M3 scale, an E8M0 exponent of 255) leave
    /// the op to the reference, with the reason in the remarks.
    func testFloatQuantizedMatmulUndecodableScalesFallBack() throws {
        for (mode, bad) in [(FloatQuantization.nvfp4, 0x7F), (.mxfp4, 0xFF), (.mxfp8, 250)] {
            var r = Random(1200)
            var (words, scaleBytes) = floatQuantizedWeight(mode, n: 4, k: 64, &r)
            scaleBytes[3] = Double(bad)
            var g = RefGraph()
            let x = g.input(r.tensor([1, 64]))
            let w = g.graph.addValue(TensorType(.u32, fixed: [4, 64 * mode.codeBits / 32]), .constant(.literal(words)))
            let s = g.graph.addValue(TensorType(.u8, fixed: [4, 64 / mode.groupSize]), .constant(.literal(scaleBytes)))
            let out = g.result()
            g.append(.quantizedMatmul(QuantizedMatmulOp(x: x, w: w, scales: s, out: out, groupSize: mode.groupSize, bits: mode.codeBits,
                                                        mode: mode.rawValue, transpose: true)))
            var graph = g.graph
            graph.outputs = [out]
            let jit = try JITProgram(graph: graph, pte: Self.pte)
            XCTAssertEqual(jit.remarks.count, 1, "\(mode.rawValue): \(jit.remarks)")
            XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("qmm_\(mode.rawValue)") })
        }
    }

    // MARK: gather_qmm

    /// MoE expert matmuls with float-quantized experts [experts, n, k] against the reference.
    func checkFloatGatherQmm(_ mode: FloatQuantization, experts: Int = 4, k: Int, n: Int = 37, x shape: [Int], lhs: HostTensor? = nil,
                             rhs: HostTensor?, dtype: DType = .f32, seed: UInt64, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        var r = Random(seed)
        let (words, scaleBytes) = floatQuantizedWeight(mode, n: experts * n, k: k, &r)
        var g = RefGraph()
        let x = g.input(r.tensor(shape, -1, 1, dtype))
        let w = g.graph.addValue(TensorType(.u32, fixed: [experts, n, k * mode.codeBits / 32]), .constant(.literal(words)))
        let s = g.graph.addValue(TensorType(.u8, fixed: [experts, n, k / mode.groupSize]), .constant(.literal(scaleBytes)))
        let l = lhs.map { g.input($0) }, ri = rhs.map { g.input($0) }
        let out = g.result()
        g.append(.gatherQmm(GatherQmmOp(x: x, w: w, scales: s, out: out, mode: mode.rawValue, biases: nil, lhsIndices: l, rhsIndices: ri,
                                        transpose: true, groupSize: mode.groupSize, bits: mode.codeBits)))
        let tol: Tolerance = dtype == .f32 ? .scaled(1e-5) : .scaled(8e-3)
        try check(g, [out], tol, kernels: ["gather_qmm_\(mode.rawValue)_g\(mode.groupSize)_\(dtype.name)_k\(k)"],
                  "gather_qmm \(mode.rawValue) \(what)", file: file, line: line)
    }

    /// Decode (top-k entries of one token), prefill sorted by expert (token blocks) and not, lhs
    /// indices, M > 1, both FP4 decodings, bf16 activations.
    func testFloatGatherQmm() throws {
        var seed: UInt64 = 1300
        for mode in FloatQuantization.allCases {
            for k in [256, 96] {
                seed += 1
                var r = Random(seed)
                try checkFloatGatherQmm(mode, experts: 8, k: k, x: [2, 1, k], rhs: r.ints([2], 0, 7, .i32), seed: seed, "decode k\(k)")
                var ids = r.ints([22], 0, 3, .i32)
                try checkFloatGatherQmm(mode, k: k, x: [22, 1, k], rhs: ids, seed: seed + 1, "prefill unsorted k\(k)")
                ids.storage.sort()
                try checkFloatGatherQmm(mode, k: k, x: [22, 1, k], rhs: ids, seed: seed + 2, "prefill sorted k\(k)")
            }
            var r = Random(seed + 50)
            try checkFloatGatherQmm(mode, k: 128, x: [3, 1, 128], lhs: r.ints([6], 0, 2, .i64), rhs: r.ints([6], 0, 3, .u32),
                                    seed: seed + 51, "lhs and rhs")
            try checkFloatGatherQmm(mode, k: 128, x: [2, 3, 128], rhs: r.ints([2], 0, 3, .i32), seed: seed + 52, "M = 3")
            var ids = r.ints([12], 0, 3, .i32)
            ids.storage.sort()
            try checkFloatGatherQmm(mode, k: 128, x: [12, 1, 128], rhs: ids, dtype: .bf16, seed: seed + 53, "bf16 prefill")
        }
    }

    // MARK: dequantize

    /// `dequantize` of every mode to f32 / bf16, with and without a global scale (an f32 value with
    /// a full mantissa, so the product's rounding is checked): f32 bit for bit, bf16 within one ulp.
    func testFloatDequantize() throws {
        var seed: UInt64 = 1400
        for mode in FloatQuantization.allCases {
            for k in [64, 96, 512] {
                for dtype in [DType.f32, .bf16] {
                    for global in [nil, Double(Float(0.3)), Double(Float(-1.7e-3))] {
                        seed += 1
                        var r = Random(seed)
                        let rows = 9
                        let (words, scaleBytes) = floatQuantizedWeight(mode, n: rows, k: k, &r)
                        var g = RefGraph()
                        let w = g.input(HostTensor(dtype: .u32, shape: [rows, k * mode.codeBits / 32], storage: words))
                        let s = g.input(HostTensor(dtype: .u8, shape: [rows, k / mode.groupSize], storage: scaleBytes))
                        let gs = global.map { g.literal($0, .f32) }
                        let out = g.result()
                        g.append(.dequantize(DequantizeOp(w: w, scales: s, out: out, groupSize: mode.groupSize, bits: mode.codeBits,
                                                          mode: mode.rawValue, globalScale: gs, dtype: dtype)))
                        let tol: Tolerance = dtype == .f32 ? .exact : .elementwise(0x1p-7, floor: 1e-30)
                        try check(g, [out], tol, kernels: ["dequantize_\(mode.rawValue)_"],
                                  "dequantize \(mode.rawValue) k\(k) \(dtype.name) global \(global.map { String($0) } ?? "none")")
                    }
                }
            }
        }
    }

    // MARK: fusion

    /// fuse-quantized-linear takes only affine linears: an nvfp4 SwiGLU MLP (gate, up, down and a
    /// residual) stays three quantized_matmuls, each on the nvfp4 kernel, matching the reference.
    func testFuseQuantizedLinearLeavesFloatModesToTheirKernels() throws {
        var r = Random(1500)
        let k = 128, hidden = 64
        var g = RefGraph()
        let x = g.input(r.tensor([1, 3, k])), skip = g.input(r.tensor([1, 3, k]))
        func linear(_ input: ValueID, n: Int, k: Int) -> ValueID {
            let (words, scales) = floatQuantizedWeight(.nvfp4, n: n, k: k, &r)
            let w = g.graph.addValue(TensorType(.u32, fixed: [n, k / 8]), .constant(.literal(words)))
            let s = g.graph.addValue(TensorType(.u8, fixed: [n, k / 16]), .constant(.literal(scales)))
            let out = g.result()
            g.append(.quantizedMatmul(QuantizedMatmulOp(x: input, w: w, scales: s, out: out, groupSize: 16, bits: 4, mode: "nvfp4",
                                                        transpose: true)))
            return out
        }
        let gate = linear(x, n: hidden, k: k), up = linear(x, n: hidden, k: k)
        let act = g.result(), prod = g.result(), out = g.result()
        g.append(.silu(SiluOp(x: gate, out: act)))
        g.append(.multiply(MultiplyOp(a: act, b: up, out: prod)))
        let down = linear(prod, n: k, k: hidden)
        g.append(.add(AddOp(a: skip, b: down, out: out)))
        var fused = g
        XCTAssertEqual(try FuseQuantizedLinear().run(&fused.graph), 0)
        let jit = try check(fused, [out], .scaled(1e-5), kernels: ["qmm_nvfp4_g16_f32_k128_n64", "qmm_nvfp4_g16_f32_k64_n128"], "nvfp4 mlp")
        XCTAssertEqual(jit.kernelNames.filter { $0.hasPrefix("qmm_nvfp4") }.count, 2)   // gate and up share one kernel
    }
}
