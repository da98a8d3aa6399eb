import XCTest
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// The conv2d kernel against the reference conv2d (Double sums): f32 within 1e-5 × max, bf16/f16 within one
/// rounding of the result (1e-2 / 2e-3 × max) — see JITPlainOpsTests. Shapes cover both kernel paths on both
/// vector widths (run also under MLXC_ISA=avx2): the single-channel stem and the depthwise/pointwise pair of
/// NeMo's dw_striding subsampling, channel tails (masked lanes), output-channel blocks with a partial last
/// block, columns left over by the column blocking, groups = 2, a depth multiplier, asymmetric stride, padding
/// and dilation per axis, and the weight as MLX's [O, kH, kW, C/groups] or ATen's [O, C/groups, kH, kW] read
/// through its transpose.
extension JITPlainOpsTests {
    /// (N, H, W, C, O, kernel, stride, padding, dilation, groups)
    typealias Conv2DCase = (n: Int, h: Int, w: Int, c: Int, o: Int, k: [Int], s: [Int], p: [Int], d: [Int], g: Int)

    static let conv2dCases: [Conv2DCase] = [
        (1, 13, 17, 1, 16, [3, 3], [2, 2], [1, 1], [1, 1], 1),    // stem: one input channel
        (2, 9, 11, 16, 16, [3, 3], [2, 2], [1, 1], [1, 1], 16),   // depthwise
        (1, 10, 23, 21, 21, [3, 3], [2, 2], [1, 1], [1, 1], 21),  // depthwise, channel tail
        (1, 5, 7, 37, 45, [1, 1], [1, 1], [0, 0], [1, 1], 1),     // pointwise, partial block + tail
        (1, 8, 19, 6, 10, [3, 2], [1, 2], [2, 1], [2, 1], 2),     // groups = 2, per-axis attributes
        (2, 11, 9, 19, 70, [5, 3], [2, 1], [2, 1], [1, 1], 1),    // odd kernel, several output blocks
        (1, 7, 12, 8, 24, [3, 3], [1, 1], [1, 1], [1, 1], 8),     // depth multiplier 3
        (1, 4, 3, 5, 3, [3, 3], [1, 1], [0, 0], [1, 1], 1),       // a single output position
    ]

    func conv2dGraph(_ r: inout Random, _ k: Conv2DCase, aten: Bool, dtype: DType = .f32) -> (RefGraph, ValueID) {
        var g = RefGraph()
        let x = g.input(r.tensor([k.n, k.h, k.w, k.c], -1, 1, dtype))
        let cg = k.c / k.g
        var w: ValueID
        if aten {
            let stored = constant(&g, r.tensor([k.o, cg, k.k[0], k.k[1]], -1, 1, dtype))
            w = g.result()
            g.append(.transpose(TransposeOp(x: stored, out: w, perm: [0, 2, 3, 1])))
        } else {
            w = constant(&g, r.tensor([k.o, k.k[0], k.k[1], cg], -1, 1, dtype))
        }
        let out = g.result()
        g.append(.conv2D(Conv2DOp(x: x, w: w, out: out, strideH: k.s[0], strideW: k.s[1], paddingH: k.p[0], paddingW: k.p[1],
                                  dilationH: k.d[0], dilationW: k.d[1], groups: k.g)))
        return (g, out)
    }

    func testConv2DOverShapesLayoutsAndGroups() throws {
        var r = Random(11)
        for k in Self.conv2dCases {
            for aten in [false, true] {
                let (g, out) = conv2dGraph(&r, k, aten: aten)
                let pointwise = k.k == [1, 1] && k.s == [1, 1] && k.p == [0, 0] && k.g == 1
                let mode = k.c / k.g == 1 && k.o == k.g ? "conv2d_dw_f32" : pointwise ? "conv2d_gemm_f32" : "conv2d_gen_f32"
                try check(g, [out], tol: 1e-5, kernels: [mode], "conv2d \(k) aten \(aten)")
            }
        }
    }

    func testConv2DHalfPrecision() throws {
        var r = Random(12)
        for (dtype, tol) in [(DType.bf16, 1e-2), (.f16, 2e-3)] {
            for k in [Self.conv2dCases[0], Self.conv2dCases[2], Self.conv2dCases[3], Self.conv2dCases[4]] {
                let (g, out) = conv2dGraph(&r, k, aten: true, dtype: dtype)
                try check(g, [out], tol: tol, kernels: ["conv2d_"], "conv2d \(dtype.name) \(k)")
            }
        }
    }

    /// The default pipeline's conv-weight-layout: the weight repacked in the init block with output channels
    /// innermost and read back through a transpose the kernel absorbs (vector loads instead of gathers, `_w1x…` in the
    /// kernel name) — the same values as the reference on the graph as imported, both layouts, conv1d depthwise too.
    func testConv2DWithWeightsRepackedAtLoad() throws {
        var r = Random(14)
        var graphs: [(RefGraph, ValueID, String)] = []
        for k in Self.conv2dCases {
            for aten in [false, true] {
                let (g, out) = conv2dGraph(&r, k, aten: aten)
                graphs.append((g, out, "conv2d \(k) aten \(aten)"))
            }
        }
        var g = RefGraph()
        let x = g.input(r.tensor([1, 40, 37]))
        let stored = constant(&g, r.tensor([37, 1, 9]))
        let w = g.result()
        g.append(.transpose(TransposeOp(x: stored, out: w, perm: [0, 2, 1])))
        let out = g.result()
        g.append(.conv1D(Conv1DOp(x: x, w: w, out: out, stride: 1, padding: 4, dilation: 1, groups: 37)))
        graphs.append((g, out, "conv1d depthwise K9"))
        for (g, out, what) in graphs {
            var original = g.graph
            original.outputs = [out]
            var repacked = original
            XCTAssertEqual(try ConvWeightLayout().run(&repacked), 1, what)
            try Verifier.verify(repacked)
            XCTAssertNotNil(repacked.initBlock, what)
            let want = try ReferenceExecutor(graph: original).run(g.feeds)
            let jit = try JITProgram(graph: repacked, pte: Self.pte)
            XCTAssertEqual(jit.remarks, [], "\(what): ops left to the reference")
            XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("conv2d_") && $0.contains("_w1x") }, "\(what): \(jit.kernelNames)")
            compare(try jit.run(g.feeds)[0], want[0], tol: 1e-5, what, file: #filePath, line: #line)
        }
    }

    /// A bias add reading only the conv (what both importers emit) is absorbed: the kernel's sums start from the
    /// bias (`_bias` kernels, no add kernel); a conv whose result is read twice keeps its add. f32 and bf16 (the
    /// reference rounds the conv and then the sum; the kernel rounds once).
    func testConv2DAbsorbsItsBiasAdd() throws {
        var r = Random(15)
        for (dtype, tol, cases) in [(DType.f32, 1e-5, [0, 2, 5]), (.bf16, 1e-2, [3])] {
            for k in cases.map({ Self.conv2dCases[$0] }) {
                for shared in [false, true] where dtype == .f32 || !shared {
                    var (g, conv) = conv2dGraph(&r, k, aten: true, dtype: dtype)
                    let bias = constant(&g, r.tensor([k.o], -1, 1, dtype)), out = g.result()
                    g.append(.add(AddOp(a: conv, b: bias, out: out)))
                    var outputs = [out]
                    if shared {
                        let other = g.result()
                        g.append(.neg(NegOp(x: conv, out: other)))
                        outputs.append(other)
                    }
                    let jit = try check(g, outputs, tol: tol, kernels: ["conv2d_"], "conv2d + bias \(dtype.name) \(k) shared \(shared)")
                    XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("conv2d_") && $0.contains("_bias_") }, !shared, "\(k) shared \(shared): \(jit.kernelNames)")
                    XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("add_") }, shared, "\(k) shared \(shared): \(jit.kernelNames)")
                }
            }
        }
        // The conformer's depthwise conv1d with its bias.
        var g = RefGraph()
        let x = g.input(r.tensor([1, 40, 37])), w = constant(&g, r.tensor([37, 9, 1])), conv = g.result()
        g.append(.conv1D(Conv1DOp(x: x, w: w, out: conv, stride: 1, padding: 4, dilation: 1, groups: 37)))
        let bias = constant(&g, r.tensor([37])), out = g.result()
        g.append(.add(AddOp(a: bias, b: conv, out: out)))
        let jit = try check(g, [out], tol: 1e-5, kernels: ["conv2d_dw_f32"], "conv1d depthwise + bias")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("add_") }, "\(jit.kernelNames)")
    }

    /// A clip with constant bounds reading only the conv (or its bias add) — XNNPACK's fused output_min_max, ReLU6 in
    /// MobileNet — is applied on the store (`_clamp` kernels, no clip kernel): lower and upper bound, one bound, with
    /// and without a bias, both paths, the transpose back too; a clip whose input is read twice stays a clip.
    func testConv2DAppliesItsClampOnTheStore() throws {
        var r = Random(18)
        for k in [0, 1, 2, 3].map({ Self.conv2dCases[$0] }) {   // short sums: the bound is the clipped output's max
            for (lo, hi, withBias, shared, back) in [(0.0, 1.0, true, false, false), (-0.25, nil, false, false, true),
                                                     (nil, 0.75, true, false, true), (0.0, 1.0, true, true, false)] as [(Double?, Double?, Bool, Bool, Bool)] {
                var (g, conv) = conv2dGraph(&r, k, aten: false)
                var last = conv
                if withBias {
                    let bias = constant(&g, r.tensor([k.o], -1, 1)), sum = g.result()
                    g.append(.add(AddOp(a: conv, b: bias, out: sum)))
                    last = sum
                }
                let clipped = g.result()
                let bound = { (v: Double) in self.constant(&g, HostTensor(dtype: .f32, shape: [], storage: [v])) }
                g.append(.clip(ClipOp(x: last, out: clipped, aMin: lo.map(bound), aMax: hi.map(bound))))
                var outputs = [clipped]
                if back {
                    let t = g.result()
                    g.append(.transpose(TransposeOp(x: clipped, out: t, perm: [0, 3, 1, 2])))
                    outputs = [t]
                }
                if shared {
                    let other = g.result()
                    g.append(.neg(NegOp(x: last, out: other)))
                    outputs.append(other)
                }
                let what = "conv2d + clip(\(String(describing: lo)), \(String(describing: hi))) \(k) bias \(withBias) shared \(shared) back \(back)"
                let jit = try check(g, outputs, tol: 1e-5, kernels: ["conv2d_"], what)
                XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("conv2d_") && $0.contains("_clamp") }, !shared, "\(what): \(jit.kernelNames)")
                XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("clip_") }, shared, "\(what): \(jit.kernelNames)")
            }
        }
    }

    /// The transpose back to NCHW after the conv (and its bias), as the ATen importer writes it, is written by the
    /// kernel (`_nchw`: channel vectors scattered with stride Ho·Wo; no strided copy left), with and without a bias,
    /// both paths, f32 and bf16, channel tails; H dynamic over calls.
    func testConv2DWritesChannelsFirstThroughTheTransposeBack() throws {
        var r = Random(16)
        for (dtype, tol, cases) in [(DType.f32, 1e-5, [0, 2, 3, 4, 6]), (.bf16, 1e-2, [2, 3])] {
            for k in cases.map({ Self.conv2dCases[$0] }) {
                for withBias in [true, false] {
                    var (g, conv) = conv2dGraph(&r, k, aten: true, dtype: dtype)
                    var last = conv
                    if withBias {
                        let bias = constant(&g, r.tensor([k.o], -1, 1, dtype)), sum = g.result()
                        g.append(.add(AddOp(a: conv, b: bias, out: sum)))
                        last = sum
                    }
                    let out = g.result()
                    g.append(.transpose(TransposeOp(x: last, out: out, perm: [0, 3, 1, 2])))
                    let jit = try check(g, [out], tol: tol, kernels: ["conv2d_"], "conv2d NCHW out \(dtype.name) \(k) bias \(withBias)")
                    XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("conv2d_") && $0.hasSuffix("_nchw_v\(Self.lanes(jit))") }, "\(jit.kernelNames)")
                    XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") || $0.hasPrefix("add_") }, "\(jit.kernelNames)")
                }
            }
        }
    }

    /// The whole ATen pattern — transpose(x NCHW → NHWC), conv, bias, transpose back — as one kernel reading x
    /// channels-first (`_xnchw`: broadcast scalars in the general path, channel gathers in the depthwise one) and
    /// writing NCHW; also a conv whose NHWC result is kept (no transpose back). Both paths, f32 + bf16, tails.
    func testConv2DReadsChannelsFirstThroughTheTransposeIn() throws {
        var r = Random(17)
        for (dtype, tol, cases) in [(DType.f32, 1e-5, [0, 1, 2, 3, 4, 5]), (.bf16, 1e-2, [2, 3])] {
            for k in cases.map({ Self.conv2dCases[$0] }) {
                for back in [true, false] {
                    var g = RefGraph()
                    let x0 = g.input(r.tensor([k.n, k.c, k.h, k.w], -1, 1, dtype)), x = g.result()
                    g.append(.transpose(TransposeOp(x: x0, out: x, perm: [0, 2, 3, 1])))
                    let stored = constant(&g, r.tensor([k.o, k.c / k.g, k.k[0], k.k[1]], -1, 1, dtype)), w = g.result()
                    g.append(.transpose(TransposeOp(x: stored, out: w, perm: [0, 2, 3, 1])))
                    let conv = g.result()
                    g.append(.conv2D(Conv2DOp(x: x, w: w, out: conv, strideH: k.s[0], strideW: k.s[1], paddingH: k.p[0], paddingW: k.p[1],
                                              dilationH: k.d[0], dilationW: k.d[1], groups: k.g)))
                    let bias = constant(&g, r.tensor([k.o], -1, 1, dtype)), sum = g.result()
                    g.append(.add(AddOp(a: conv, b: bias, out: sum)))
                    var out = sum
                    if back {
                        out = g.result()
                        g.append(.transpose(TransposeOp(x: sum, out: out, perm: [0, 3, 1, 2])))
                    }
                    let jit = try check(g, [out], tol: tol, kernels: ["conv2d_"], "conv2d NCHW in \(dtype.name) \(k) back \(back)")
                    XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("conv2d_") && $0.contains("_xnchw") }, "\(jit.kernelNames)")
                    XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("strided_copy") || $0.hasPrefix("add_") }, "\(jit.kernelNames)")
                }
            }
        }
    }

    static func lanes(_ jit: JITProgram) -> String {
        String(jit.kernelNames.first { $0.hasPrefix("conv2d_") }!.split(separator: "_").last!.dropFirst())
    }

    /// H and W read per call (Parakeet's time axis is dynamic): one compiled kernel over several input sizes.
    func testConv2DDynamicHeight() throws {
        var r = Random(13)
        var g = RefGraph()
        let x = g.input(r.tensor([1, 20, 16, 8]), dynamic: 1, min: 1, max: 64)
        let stored = constant(&g, r.tensor([8, 1, 3, 3]))
        let w = g.result()
        g.append(.transpose(TransposeOp(x: stored, out: w, perm: [0, 2, 3, 1])))
        let out = g.result()
        g.append(.conv2D(Conv2DOp(x: x, w: w, out: out, strideH: 2, strideW: 2, paddingH: 1, paddingW: 1,
                                  dilationH: 1, dilationW: 1, groups: 8)))
        let calls = [20, 1, 2, 37].map { [r.tensor([1, $0, 16, 8])] }
        try check(g, [out], calls: calls, tol: 1e-5, kernels: ["conv2d_dw_f32"], "conv2d dynamic H")
    }
}
