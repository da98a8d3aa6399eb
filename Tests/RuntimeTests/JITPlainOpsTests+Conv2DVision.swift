import XCTest
import MLXCIR
import MLXCPasses
import MLXCCodegen
@testable import MLXCRuntime

/// What the vision models' convolutions take beyond a bare conv2d, against the reference executor (f32 1e-5 × max,
/// as JITPlainOpsTests): a zero pad of the image that the conv alone reads (TF "same" padding, asymmetric before a
/// stride-2 conv) absorbed as the kernel's own padding; 1×1 convolutions as a register-tiled GEMM (`conv2d_gemm`),
/// over pixel counts and output channels that leave partial tiles; the residual add after a conv on its store.
/// Run also under MLXC_ISA=avx2 (other tile sizes).
extension JITPlainOpsTests {
    /// The conv reads the pad's input and pads itself: asymmetric widths per side (TF "same" before stride 2: 0 before,
    /// 1 after), larger and symmetric ones, a zero pad before a 1×1 conv; NHWC, and NCHW through ATen's transpose to
    /// NHWC. With no pad kernel in the JIT, a pad not absorbed would be left to the reference (`remarks`). A pad by 1,
    /// or one the graph also reads, stays a pad.
    func testConv2DAbsorbsAZeroPadOfItsImage() throws {
        var r = Random(21)
        // (case, top, bottom, left, right)
        let pads: [(Conv2DCase, [Int])] = [
            ((1, 12, 13, 8, 8, [3, 3], [2, 2], [0, 0], [1, 1], 8), [0, 1, 0, 1]),     // depthwise, TF "same" stride 2
            ((1, 11, 10, 5, 7, [3, 3], [2, 2], [0, 0], [1, 1], 1), [0, 1, 0, 1]),     // general path
            ((2, 9, 7, 21, 21, [3, 3], [1, 1], [1, 1], [1, 1], 21), [2, 0, 1, 3]),    // plus the op's own padding
            ((1, 6, 9, 6, 10, [3, 2], [1, 2], [0, 0], [2, 1], 2), [1, 1, 2, 2]),       // symmetric, groups 2
            ((1, 5, 7, 37, 45, [1, 1], [1, 1], [0, 0], [1, 1], 1), [0, 0, 0, 0]),     // all zero before a 1x1 conv
        ]
        for (k, p) in pads {
            for channelsFirst in [false, true] {
                var g = RefGraph()
                let x = g.input(r.tensor(channelsFirst ? [k.n, k.c, k.h, k.w] : [k.n, k.h, k.w, k.c]))
                let padded = g.result()
                let widths = channelsFirst ? [0, 0, 0, 0, p[0], p[1], p[2], p[3]] : [0, 0, p[0], p[1], p[2], p[3], 0, 0]
                g.append(.pad(PadOp(x: x, out: padded, padWidth: widths.map { .literal(Int64($0)) }, mode: "constant")))
                var image = padded
                if channelsFirst {
                    image = g.result()
                    g.append(.transpose(TransposeOp(x: padded, out: image, perm: [0, 2, 3, 1])))
                }
                let w = constant(&g, r.tensor([k.o, k.k[0], k.k[1], k.c / k.g])), out = g.result()
                g.append(.conv2D(Conv2DOp(x: image, w: w, out: out, strideH: k.s[0], strideW: k.s[1], paddingH: k.p[0],
                                          paddingW: k.p[1], dilationH: k.d[0], dilationW: k.d[1], groups: k.g)))
                var pipeline = g.graph
                pipeline.outputs = [out]
                XCTAssertEqual(try PadAsFillAndCopy().run(&pipeline), 0, "\(k) pad \(p): the pass leaves it for the conv")
                try check(g, [out], tol: 1e-5, kernels: ["conv2d_"], "conv2d after pad \(p) \(k) NCHW \(channelsFirst)")
            }
        }
        // Not absorbed: a pad by 1 (not zero), a zero pad the graph also returns; the pass rewrites both.
        let k: Conv2DCase = (1, 8, 8, 4, 4, [3, 3], [2, 2], [0, 0], [1, 1], 4)
        for (value, shared) in [(1.0, false), (0.0, true)] {
            var g = RefGraph()
            let x = g.input(r.tensor([k.n, k.h, k.w, k.c])), padded = g.result()
            g.append(.pad(PadOp(x: x, out: padded, padWidth: [Int64(0), 0, 0, 1, 0, 1, 0, 0].map { .literal($0) }, mode: "constant",
                                constantValue: value)))
            let w = constant(&g, r.tensor([k.o, 3, 3, 1])), out = g.result()
            g.append(.conv2D(Conv2DOp(x: padded, w: w, out: out, strideH: 2, strideW: 2, groups: 4)))
            let outputs = shared ? [out, padded] : [out]
            let jit = try check(g, outputs, tol: 1e-5, kernels: ["conv2d_"], allCompiled: false, "pad value \(value) shared \(shared)")
            XCTAssertFalse(jit.remarks.isEmpty, "pad value \(value) shared \(shared): the pad is not the conv's")
            var pipeline = g.graph
            pipeline.outputs = outputs
            XCTAssertEqual(try PadAsFillAndCopy().run(&pipeline), 1)
        }
    }

    /// 1×1 convolutions (stride 1, no padding, one group, NHWC x) run as the GEMM x[N·H·W, C] · wᵀ in register tiles:
    /// pixel counts that leave partial tiles (odd H·W, fewer pixels than one tile), output channels that are not a
    /// multiple of the tile's two vectors or fewer than one vector, odd input channels, a batch of 2, a size split
    /// across threads by pixels and by output-channel panels; the weight as stored ([O, 1, 1, C]), as ATen's through its transpose, and repacked at load
    /// (output channels innermost: vector loads); with bias + clamp, and written NCHW through the transpose back.
    func testPointwiseConv2DIsATiledGemm() throws {
        var r = Random(22)
        // (N, H, W, C, O)
        // Fewer pixels than output channels split by output-channel panels across threads (`Conv2DKernels.split`):
        // (1, 7, 7, 40, 200) is a 7×7 layer with several panels and a partial last one.
        let shapes = [(1, 5, 7, 37, 45), (2, 3, 3, 16, 96), (1, 1, 13, 24, 3), (1, 1, 1, 5, 33), (1, 31, 29, 19, 70), (1, 2, 5, 64, 16),
                      (1, 7, 7, 40, 200)]
        for (n, h, w, c, o) in shapes {
            let k: Conv2DCase = (n, h, w, c, o, [1, 1], [1, 1], [0, 0], [1, 1], 1)
            for aten in [false, true] {
                let (g, out) = conv2dGraph(&r, k, aten: aten)
                try check(g, [out], tol: 1e-5, kernels: ["conv2d_gemm_f32"], "1x1 conv \(k) aten \(aten)")
                var repacked = g.graph
                repacked.outputs = [out]
                XCTAssertEqual(try ConvWeightLayout().run(&repacked), 1)
                let jit = try JITProgram(graph: repacked, pte: Self.pte)
                XCTAssertTrue(jit.kernelNames.contains { $0.hasPrefix("conv2d_gemm_f32") && $0.contains("_w1x") }, "\(jit.kernelNames)")
                var original = g.graph
                original.outputs = [out]
                compare(try jit.run(g.feeds)[0], try ReferenceExecutor(graph: original).run(g.feeds)[0], tol: 1e-5, "repacked \(k)",
                        file: #filePath, line: #line)
            }
            for back in [false, true] {
                var (g, conv) = conv2dGraph(&r, k, aten: true)
                let bias = constant(&g, r.tensor([o], -1, 1)), sum = g.result()
                g.append(.add(AddOp(a: conv, b: bias, out: sum)))
                let lo = constant(&g, HostTensor(dtype: .f32, shape: [], storage: [-0.5])), clipped = g.result()
                g.append(.clip(ClipOp(x: sum, out: clipped, aMin: lo, aMax: nil)))
                var result = clipped
                if back {
                    result = g.result()
                    g.append(.transpose(TransposeOp(x: clipped, out: result, perm: [0, 3, 1, 2])))
                }
                let jit = try check(g, [result], tol: 1e-5, kernels: ["conv2d_gemm_f32"], "1x1 conv + bias + clip \(k) back \(back)")
                XCTAssertEqual(jit.kernelNames.filter { !$0.hasPrefix("conv2d_gemm") }, [], "\(k): one kernel")
            }
        }
        // Not the GEMM: a strided or padded 1x1 conv, two groups.
        for k: Conv2DCase in [(1, 6, 6, 8, 8, [1, 1], [2, 2], [0, 0], [1, 1], 1), (1, 6, 6, 8, 8, [1, 1], [1, 1], [1, 1], [1, 1], 1),
                              (1, 6, 6, 8, 8, [1, 1], [1, 1], [0, 0], [1, 1], 2)] {
            let (g, out) = conv2dGraph(&r, k, aten: false)
            let jit = try check(g, [out], tol: 1e-5, kernels: ["conv2d_gen_f32"], "1x1 conv \(k)")
            XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("conv2d_gemm") }, "\(k)")
        }
    }

    /// Small images against big weights split across threads by output channels (each thread reads its share of the
    /// weight once), large images by pixels or rows: ResNet-50's 3×3 convs at 7×7 (9.4 MB of weights) and 56×56, its
    /// pointwise ones at 7×7 and 56×56, on both vector widths; depthwise and grouped convs always by rows. (The
    /// results of both splits are checked against the reference above: the (2, 11, 9, 19, 70) case and the 7×7 GEMM.)
    func testConv2DSplitsSmallImagesByOutputChannels() {
        func shape(_ k: Int, _ c: Int, _ o: Int, groups: Int = 1) -> Conv2DShape {
            Conv2DShape(kernel: [k, k], groupChannels: c / groups, outChannels: o, groups: groups, stride: [1, 1],
                        padding: k == 3 ? [1, 1] : [0, 0], dilation: [1, 1], weightStrides: [1, 1, 1, 1])
        }
        for lanes in [8, 16] {
            XCTAssertEqual(Conv2DKernels.split(shape(3, 512, 512), batch: 1, outHeight: 7, outWidth: 7, lanes: lanes).dims[1], 1)
            XCTAssertEqual(Conv2DKernels.split(shape(3, 64, 64), batch: 1, outHeight: 56, outWidth: 56, lanes: lanes).dims[1], 0)
            XCTAssertEqual(Conv2DKernels.split(shape(1, 2048, 512), batch: 1, outHeight: 7, outWidth: 7, lanes: lanes).dims[1], 1)
            XCTAssertEqual(Conv2DKernels.split(shape(1, 64, 256), batch: 1, outHeight: 56, outWidth: 56, lanes: lanes).dims[1], 0)
            XCTAssertEqual(Conv2DKernels.split(shape(3, 512, 512, groups: 512), batch: 1, outHeight: 7, outWidth: 7, lanes: lanes).dims[1], 0)
            XCTAssertEqual(Conv2DKernels.split(shape(3, 512, 512, groups: 2), batch: 1, outHeight: 7, outWidth: 7, lanes: lanes).dims[1], 0)
        }
    }

    /// The residual add that alone reads a conv's (or its bias add's) result is added on the conv's store (`_residual`
    /// kernels, no add kernel), before a clamp that reads the sum (ResNet's ReLU after the add): the GEMM, depthwise
    /// and general paths, either operand order; a conv read twice keeps its add.
    func testConv2DAddsTheResidualOnItsStore() throws {
        var r = Random(23)
        let cases: [Conv2DCase] = [(1, 7, 9, 24, 40, [1, 1], [1, 1], [0, 0], [1, 1], 1), Self.conv2dCases[2], Self.conv2dCases[5]]
        for k in cases {
            for (withBias, clipped, swapped, shared) in [(true, false, false, false), (false, true, true, false),
                                                         (true, true, false, false), (true, false, false, true)] {
                var (g, conv) = conv2dGraph(&r, k, aten: false)
                var last = conv
                if withBias {
                    let bias = constant(&g, r.tensor([k.o], -1, 1)), sum = g.result()
                    g.append(.add(AddOp(a: conv, b: bias, out: sum)))
                    last = sum
                }
                let ho = (k.h + 2 * k.p[0] - k.d[0] * (k.k[0] - 1) - 1) / k.s[0] + 1
                let wo = (k.w + 2 * k.p[1] - k.d[1] * (k.k[1] - 1) - 1) / k.s[1] + 1
                let residual = g.input(r.tensor([k.n, ho, wo, k.o])), total = g.result()
                g.append(.add(swapped ? AddOp(a: residual, b: last, out: total) : AddOp(a: last, b: residual, out: total)))
                var out = total
                if clipped {
                    let zero = constant(&g, HostTensor(dtype: .f32, shape: [], storage: [0])), relu = g.result()
                    g.append(.clip(ClipOp(x: total, out: relu, aMin: zero, aMax: nil)))
                    out = relu
                }
                var outputs = [out]
                if shared {
                    let other = g.result()
                    g.append(.neg(NegOp(x: last, out: other)))
                    outputs.append(other)
                }
                let what = "conv2d \(k) bias \(withBias) + residual (swapped \(swapped)) clip \(clipped) shared \(shared)"
                let jit = try check(g, outputs, tol: 1e-5, kernels: ["conv2d_"], what)
                XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("conv2d_") && $0.contains("_residual") }, !shared, "\(what): \(jit.kernelNames)")
                XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("add_") }, shared, "\(what): \(jit.kernelNames)")
                XCTAssertEqual(jit.kernelNames.contains { $0.hasPrefix("clip_") }, false, "\(what): \(jit.kernelNames)")
            }
        }
        // ResNet's downsampling block: add(main, shortcut) with the shortcut's conv after the main path's; the main conv
        // cannot add a residual not computed yet, the shortcut conv adds the main path's result.
        let k: Conv2DCase = (1, 6, 5, 8, 16, [1, 1], [1, 1], [0, 0], [1, 1], 1)
        var (g, main) = conv2dGraph(&r, k, aten: false)
        let x = g.graph.inputs[0], w = constant(&g, r.tensor([16, 1, 1, 8])), shortcut = g.result(), out = g.result()
        g.append(.conv2D(Conv2DOp(x: x, w: w, out: shortcut)))
        g.append(.add(AddOp(a: main, b: shortcut, out: out)))
        let jit = try check(g, [out], tol: 1e-5, kernels: ["conv2d_"], "residual from a later conv")
        XCTAssertEqual(jit.kernelNames.filter { $0.contains("_residual") }.count, 1, "\(jit.kernelNames)")
        XCTAssertFalse(jit.kernelNames.contains { $0.hasPrefix("add_") }, "\(jit.kernelNames)")
    }
}
