import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// `dynamic_quant_linear` (XNNPACK's QD8 × QC4W/QB4W/QC8W, integer-exact): the compiled kernel
/// against the reference definition bit for bit (every f32 step of the kernel is the definition's:
/// the row parameters and codes, the exact int32 group sums, one FMA per group in order, the row
/// scale), and the definition against dequantize-then-compute in double within 1e-5 × max |result|
/// (the only roundings are one per group FMA and the final product; measured ≤ 4e-7).
///
/// Shapes: 4-bit groups 32/64/128 and per-channel (group = K, K = 40 and 200: chunks of 8 lanes),
/// 8-bit per-channel with odd K (37, 100: the group's remainder summed one by one), decode
/// (M = 1) and prefill (M = 3, 4, 9: blocks of 4 rows and remainders), odd N (thread splits), rows
/// that are all zero, all positive or all negative (zero point at either end), and a row with an
/// outlier (most codes near the zero point). On x86 the 4-bit cases run the int8 GEMM kernel
/// (`DynamicQuantGemmKernels`, weights repacked at load); `MLXC_ISA=avx2` and `MLXC_ISA=avx512bw`
/// select its `vpmaddubsw` forms, the host's VNNI its `vpdpbusd` form.
extension JITKernelTests {
    /// x [m, k] with special rows; w random codes; scales random positive.
    func dynamicQuantCase(bits: Int, groupSize: Int, m: Int, k: Int, n: Int, seed: UInt64)
        -> (g: RefGraph, out: ValueID, x: [Float], codes: [Int32], scales: [Float]) {
        var r = Random(seed)
        var x = (0..<(m * k)).map { _ in Float(r.next() * 4 - 2) }
        for row in 0..<m {
            switch row % 5 {
            case 1: for i in 0..<k { x[row * k + i] = Swift.abs(x[row * k + i]) + 0.5 }
            case 2: for i in 0..<k { x[row * k + i] = -Swift.abs(x[row * k + i]) }
            case 3: x[row * k + k / 2] = 300
            case 4 where m > 5: for i in 0..<k { x[row * k + i] = 0 }
            default: break
            }
        }
        let groups = k / groupSize
        let scales = (0..<(n * groups)).map { _ in Float(0.001 + 0.05 * r.next()) }
        var g = RefGraph()
        let xv = g.input(HostTensor(dtype: .f32, shape: [m, k], storage: x.map(Double.init)))
        let w: ValueID, codes: [Int32]
        if bits == 4 {
            let words = (0..<(n * k / 8)).map { _ in (r.next() * 4294967296).rounded(.down) }
            w = g.graph.addValue(TensorType(.u32, fixed: [n, k / 8]), .constant(.literal(words)))
            codes = DynamicQuantDefinition.codes(words, bits: 4, n: n, k: k)
        } else {
            let bytes = (0..<(n * k)).map { _ in (r.next() * 256).rounded(.down) - 128 }
            w = g.graph.addValue(TensorType(.i8, fixed: [n, k]), .constant(.literal(bytes)))
            codes = bytes.map { Int32($0) }
        }
        let s = g.graph.addValue(TensorType(.f32, fixed: [n, groups]), .constant(.literal(scales.map(Double.init))))
        let out = g.result()
        g.append(.dynamicQuantLinear(DynamicQuantLinearOp(x: xv, w: w, scales: s, groupSize: groupSize, bits: bits, out: out)))
        return (g, out, x, codes, scales)
    }

    func checkDynamicQuant(bits: Int, groupSize: Int, m: Int, k: Int, n: Int, seed: UInt64,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let c = dynamicQuantCase(bits: bits, groupSize: groupSize, m: m, k: k, n: n, seed: seed)
        let what = "dynamic_quant_linear w\(bits) g\(groupSize) m\(m) k\(k) n\(n)"
        // x86 with 4-bit weights runs the int8 GEMM kernel on weights repacked at load (unless switched off).
        #if arch(x86_64)
        let gemm = bits == 4 && JITProgram.dynamicQuantGemmEnabled ? "_k\(k)_n\(n)_gemm" : ""
        #else
        let gemm = ""
        #endif
        try check(c.g, [c.out], .exact, kernels: ["dqlinear_qd8_w\(bits)g\(groupSize)" + gemm], what, file: file, line: line)

        // The definition against dequantize-then-compute in double.
        let got = DynamicQuantDefinition.linear(x: c.x, m: m, k: k, codes: c.codes, n: n, scales: c.scales, groupSize: groupSize)
        var want = [Double](repeating: 0, count: m * n)
        for row in 0..<m {
            let p = DynamicQuantDefinition.rowParams(c.x[(row * k)..<((row + 1) * k)])
            for j in 0..<n {
                for i in 0..<k {
                    let a = Double(DynamicQuantDefinition.centeredCode(c.x[row * k + i], p)) * Double(p.scale)
                    want[row * n + j] += a * Double(c.codes[j * k + i]) * Double(c.scales[j * (k / groupSize) + i / groupSize])
                }
            }
        }
        let scale = want.map(Swift.abs).max() ?? 0
        let err = zip(got, want).map { Swift.abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, 1e-5 * scale, "\(what): definition vs dequantize-then-compute", file: file, line: line)
    }

    func testDynamicQuantLinear4BitGroups() throws {
        var seed: UInt64 = 700
        for groupSize in [32, 64, 128] {
            for (m, k, n) in [(1, groupSize * 3, 37), (4, groupSize * 2, 20), (9, groupSize * 5, 33), (1, groupSize * 2, 64), (5, groupSize, 96)] {
                seed += 1
                try checkDynamicQuant(bits: 4, groupSize: groupSize, m: m, k: k, n: n, seed: seed)
            }
        }
    }

    func testDynamicQuantLinearPerChannel() throws {
        var seed: UInt64 = 800
        for (bits, k) in [(4, 40), (4, 200), (4, 256), (8, 37), (8, 100), (8, 256)] {
            for m in [1, 3, 9] {
                seed += 1
                try checkDynamicQuant(bits: bits, groupSize: k, m: m, k: k, n: 19, seed: seed)
            }
        }
    }

    /// The int8 GEMM kernel's tiles and edges: rows in register tiles (4 on AVX2, 6 on AVX-512) and
    /// their remainders, several row blocks (K = 4096: 12–16 rows quantized at a time), column
    /// vectors in pairs and a single one, a last block cut short at N (masked stores), groups with
    /// 32-element partial sums and a shorter rest (G = 40, 72, 200).
    func testDynamicQuantLinearGemmTiles() throws {
        var seed: UInt64 = 900
        for (m, k, n, g) in [(7, 256, 40, 32), (13, 128, 24, 64), (25, 256, 72, 128), (29, 4096, 17, 128), (128, 256, 48, 32),
                             (6, 72, 33, 72), (11, 400, 16, 200), (2, 64, 8, 64), (1, 4096, 23, 4096)] {
            seed += 1
            try checkDynamicQuant(bits: 4, groupSize: g, m: m, k: k, n: n, seed: seed)
        }
    }

    /// `MLXC_QD8_GEMM=off` keeps the word-dot kernel on x86 (also what 8-bit weights and ARM64 run):
    /// still bit for bit.
    func testDynamicQuantLinearWordDotKernel() throws {
        setenv("MLXC_QD8_GEMM", "off", 1)
        defer { unsetenv("MLXC_QD8_GEMM") }
        var seed: UInt64 = 950
        for (m, k, n, g) in [(1, 256, 37, 32), (9, 384, 20, 128), (5, 200, 19, 200)] {
            seed += 1
            try checkDynamicQuant(bits: 4, groupSize: g, m: m, k: k, n: n, seed: seed)
        }
    }

    /// XNNPACK's quantization on known rows: an all-zero row's codes equal its zero point (d = 0);
    /// a row of non-negative values has zero point −128; the codes' error is at most half a step.
    func testDynamicQuantRowParameters() {
        let zero = DynamicQuantDefinition.rowParams([0, 0, 0, 0])
        XCTAssertEqual(DynamicQuantDefinition.centeredCode(0, zero), 0)
        let positive = DynamicQuantDefinition.rowParams([0.5, 1, 2, 2.55])
        XCTAssertEqual(positive.zeroPoint, -128)
        XCTAssertEqual(positive.scale, 0.01, accuracy: 1e-8)
        let row: [Float] = [-1.3, 0.2, 0.7, 2.9, -0.01]
        let p = DynamicQuantDefinition.rowParams(row[...])
        for v in row {
            let back = Float(DynamicQuantDefinition.centeredCode(v, p)) * p.scale
            XCTAssertLessThanOrEqual(Swift.abs(back - v), p.scale * 0.5001, "\(v)")
        }
    }
}
