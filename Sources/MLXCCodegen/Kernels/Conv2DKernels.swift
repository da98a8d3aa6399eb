import CLLVM
import LLVMKit

/// MLX-layout `conv2d` (cross-correlation, zero padding) as direct loops, no im2col:
/// x [N, H, W, C] contiguous, weight w[oc, kh, kw, c] (O × kH × kW × C/groups, a constant) read at
/// oc·sO + kh·sKh + kw·sKw + c·sC — a PyTorch [O, C/groups, kH, kW] weight seen through its transpose is read as
/// stored; sO = 1 (the layout `conv-weight-layout` repacks constants into at load) gives vector loads, anything
/// else gathers. out [N, Ho, Wo, O].
///
/// Lanes run over output channels, so every shape vectorises, including a single input channel (a stem over
/// a spectrogram) and depthwise convolutions:
/// - depthwise (C/groups = 1, one output per group): output channel c reads input channel c, so x is loaded as a
///   vector of channels too; P output columns share each weight vector.
/// - pointwise (1×1, stride 1, no padding, one group, NHWC x): the GEMM x[N·H·W, C] · wᵀ on `LinearPanels`' register
///   tiles (tokens × two vectors of output channels, sized from the target's registers), each input channel's two
///   weight vectors read where the load-time layout put them (output channels innermost: no packing per call); the
///   bias is added, the clamp applied, on the tile's store.
/// - otherwise: a register block of P output columns × R vectors of output channels of one group; each input
///   channel's x value is broadcast and multiplied into R weight vectors.
/// Taps in the padding read 0 (their index is clamped to the image, the value selected away); where every column
/// of a register block reads inside the image (all but the borders) the tap runs without those selects. Channel
/// tails are masked lanes. With `bias`, the sums start from bias[oc] (the add after the conv, absorbed). The shape parameters are compile-time constants; H, W and the batch are run-time.
/// Computed in f32 (bf16/f16 widened), rounded once on the store.
/// Work items and the last two dims: `split`. buffers: [x, w, (bias,) (residual,) out]; dims: [H, W, Ho, Wo, N·Ho·Wo, panels?]. With `channelsFirstOutput`
/// out is [N, O, Ho, Wo], with `channelsFirstInput` x is [N, C, H, W] (ATen's layout: the importer's transposes around
/// the conv, absorbed).
public struct Conv2DShape: Sendable, Equatable {
    public var kernel: [Int], groupChannels: Int, outChannels: Int, groups: Int
    /// `padding`: the zeros before row 0 and column 0 ([top, left]). The zeros after the image need no parameter —
    /// a tap past its end reads 0 either way —: they only size the output (Ho, Wo), which the caller passes.
    public var stride: [Int], padding: [Int], dilation: [Int]
    /// Weight strides (elements) of oc, kh, kw and c.
    public var weightStrides: [Int]
    /// A bias [O] the sums start from (the graph's add after the conv, absorbed).
    public var bias: Bool
    /// The result written channels-first, out [N, O, Ho, Wo] (the transpose back to ATen's NCHW, absorbed): each
    /// vector of output channels is scattered with stride Ho·Wo.
    public var channelsFirstOutput: Bool = false
    /// x read channels-first, [N, C, H, W] (the importer's transpose to NHWC before the conv, absorbed): channel c of
    /// a pixel is H·W elements from channel c − 1 (broadcast scalars in the general path, gathers in the depthwise one).
    public var channelsFirstInput: Bool = false
    /// [lo, hi]: the clip that is the only reader of the result (XNNPACK's fused output_min_max, ReLU6), applied to the
    /// sums before the store as the clip kernel does it (x < lo → lo, then hi < x → hi; ±∞ for no bound).
    public var clamp: [Float]? = nil
    /// A tensor shaped like out (NHWC) added to the sums before the clamp: the residual add that alone reads the
    /// conv's (or its bias add's) result — MobileNetV2's inverted-residual blocks, ResNet's bottlenecks.
    public var residual: Bool = false

    public init(kernel: [Int], groupChannels: Int, outChannels: Int, groups: Int, stride: [Int], padding: [Int],
                dilation: [Int], weightStrides: [Int], bias: Bool = false) {
        self.kernel = kernel; self.groupChannels = groupChannels; self.outChannels = outChannels; self.groups = groups
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.weightStrides = weightStrides
        self.bias = bias
    }

    /// One input channel per group and one output channel per group: channel c of x feeds channel c of out.
    public var isDepthwise: Bool { groupChannels == 1 && outChannels == groups }

    /// A 1×1 convolution over NHWC pixels with nothing to skip (stride 1, no padding, one group): the GEMM
    /// x[N·H·W, C] · wᵀ, run as `LinearPanels`' register tiles.
    public var isPointwise: Bool {
        kernel == [1, 1] && stride == [1, 1] && padding == [0, 0] && groups == 1 && !channelsFirstInput
    }

    var name: String {
        func j(_ v: [Int]) -> String { v.map(String.init).joined(separator: "x") }
        return "k\(j(kernel))_c\(groupChannels * groups)_o\(outChannels)_g\(groups)_s\(j(stride))_p\(j(padding))_d\(j(dilation))_w\(j(weightStrides))"
            + (bias ? "_bias" : "") + (channelsFirstInput ? "_xnchw" : "") + (channelsFirstOutput ? "_nchw" : "")
            + (residual ? "_residual" : "") + (clamp.map { "_clamp\($0[0])_\($0[1])" } ?? "")
    }
}

public enum Conv2DKernels {
    /// Vector registers of the target (AVX2: 16 ymm; AVX-512 and NEON: 32).
    static func registers(lanes: Int) -> Int { lanes == 8 ? 16 : 32 }

    /// Output-channel vectors (R) and output columns (P) per register block of the general kernel.
    static func block(perGroup: Int, lanes: Int) -> (vectors: Int, columns: Int) {
        let r = max(1, min((perGroup + lanes - 1) / lanes, lanes >= 16 ? 4 : 2))
        return (r, max(1, min(8, (registers(lanes: lanes) - r - 2) / r)))
    }

    /// The grain to launch with: one output row, or for the pointwise GEMM one register tile of pixels.
    public static func workGrain(_ s: Conv2DShape, lanes: Int) -> Int { s.isPointwise ? LinearPanels.tokens(lanes: lanes) : 1 }

    /// How one call splits across threads: its work items and the kernel's last two dims. Output rows N·Ho for the
    /// direct paths. The pointwise GEMM splits pixels N·H·W (whole register tiles, not rows: a 7×7 image has rows of
    /// 7) — unless the image is smaller than the weight (fewer pixels than output channels: MobileNetV2's and
    /// ResNet's 7×7 and 14×14 layers, up to 4 MB of weights), where every chunk of pixels would stream the whole
    /// weight again: then output-channel panels, each thread reading its panels' weights once (a panel counts as
    /// `workGrain` items). dims 4, 5: the pixel count and 1 for the split by panels.
    public static func split(_ s: Conv2DShape, batch: Int, outHeight: Int, outWidth: Int, lanes: Int) -> (work: Int, dims: [Int]) {
        let pixels = batch * outHeight * outWidth
        guard s.isPointwise else {
            // The general path likewise: by (output-channel block, output row), block-major, when the image has fewer
            // pixels than the weight has kernel taps × output channels (ResNet's 3×3 convs at 7×7 to 28×28, up to
            // 9.4 MB of weights, which every chunk of rows would stream again; its 7 rows split into 7 chunks).
            let perGroup = s.outChannels / s.groups, width = block(perGroup: perGroup, lanes: lanes).vectors * lanes
            let blocks = (perGroup + width - 1) / width
            guard !s.isDepthwise, s.groups == 1, blocks > 1, pixels < s.kernel[0] * s.kernel[1] * s.outChannels else {
                return (batch * outHeight, [batch * outHeight, 0])
            }
            return (blocks * batch * outHeight, [batch * outHeight, 1])
        }
        guard pixels < s.outChannels else { return (pixels, [pixels, 0]) }
        let columns = 2 * lanes
        return ((s.outChannels + columns - 1) / columns * workGrain(s, lanes: lanes), [pixels, 1])
    }

    public static func conv2d(_ s: Conv2DShape, _ t: ElementType, weight wt: ElementType, lanes: Int) -> KernelDefinition {
        let tag = wt == t ? t.tag : "\(t.tag)_w\(wt.tag)"
        let mode = s.isDepthwise ? "dw" : s.isPointwise ? "gemm" : "gen"
        return KernelDefinition(name: "conv2d_\(mode)_\(tag)_\(s.name)_v\(lanes)") { e in
            let b = e.b
            var next = 2
            func buffer(if present: Bool) -> IRValue? {
                guard present else { return nil }
                defer { next += 1 }
                return e.buffer(next)
            }
            let x = e.buffer(0), w = e.buffer(1), biasBuffer = buffer(if: s.bias), residualBuffer = buffer(if: s.residual)
            let out = e.buffer(next)
            let height = e.dim(0), width = e.dim(1), outHeight = e.dim(2), outWidth = e.dim(3)
            let c = s.groupChannels * s.groups
            let sO = s.weightStrides[0]

            /// A vector of weights for output channels oc..oc+lanes at `index` (oc's element), masked by `l`.
            func loadW(_ l: Lanes, _ index: IRValue) -> IRValue {
                if sO == 1 { return l.loadF32(wt, w, index) }
                return l.widenF32(l.loadStrided(wt.storage(b), w, index, stride: b.i64(sO)), wt)
            }
            /// The sums' starting vector for output channels oc..oc+lanes: the bias, or 0.
            func start(_ l: Lanes, _ oc: IRValue) -> IRValue {
                guard let biasBuffer else { return Lanes(b, lanes).zero(b.f32) }
                return l.loadF32(t, biasBuffer, oc)
            }
            /// Clamps `v` into 0..<limit (a valid address whose value a select then discards).
            func clamp(_ v: IRValue, _ limit: IRValue) -> IRValue {
                Support.smax(b, b.i64(0), Support.smin(b, v, b.sub(limit, b.i64(1))))
            }
            func inRange(_ v: IRValue, _ limit: IRValue) -> IRValue {
                b.and(b.icmp(LLVMIntSGE, v, b.i64(0)), b.icmp(LLVMIntSLT, v, limit))
            }

            /// Stores output channels oc..oc+lanes (masked by `l`) of column wo of this row: contiguous in NHWC, a
            /// scatter with stride Ho·Wo in NCHW. The residual (NHWC like out) is added, then the clamp applied.
            func store(_ l: Lanes, _ sums: IRValue, row p: IRValue, wo: IRValue, oc: IRValue) {
                var value = sums
                let at = b.add(b.mul(b.add(b.mul(p, outWidth), wo), b.i64(s.outChannels)), oc)   // NHWC
                if let residualBuffer { value = b.fadd(value, l.loadF32(t, residualBuffer, at)) }
                if let clamp = s.clamp {
                    if clamp[0] > -.infinity { let lo = l.f32(clamp[0]); value = b.select(b.fcmp(LLVMRealOLT, value, lo), lo, value) }
                    if clamp[1] < .infinity { let hi = l.f32(clamp[1]); value = b.select(b.fcmp(LLVMRealOLT, hi, value), hi, value) }
                }
                guard s.channelsFirstOutput else { return l.storeF32(value, t, out, at) }
                let plane = b.mul(outHeight, outWidth)
                let n = b.sdiv(p, outHeight), ho = b.srem(p, outHeight)
                let scattered = b.add(b.mul(b.add(b.mul(n, b.i64(s.outChannels)), oc), plane), b.add(b.mul(ho, outWidth), wo))
                let storage = t.storage(b), vector = l.type(storage)
                let pointers = b.gep(storage, out, b.add(b.splat(scattered, lanes), b.mul(l.iota(), b.splat(plane, lanes))))
                _ = Support.intrinsic(b, "llvm.masked.scatter", overloads: [vector, LLVMTypeOf(pointers)],
                                      [l.narrowF32(value, t), pointers, b.i32(Support.alignment(storage)),
                                       l.mask ?? b.splat(LLVMConstInt(b.i1, 1, 0), lanes)])
            }

            /// Elements between channels c and c + 1 of one pixel of x.
            let xChannelStride = s.channelsFirstInput ? b.mul(height, width) : b.i64(1)
            /// Channels c..c+lanes of x at `index` (channel c's element), masked by `l`.
            func loadX(_ l: Lanes, _ index: IRValue) -> IRValue {
                guard s.channelsFirstInput else { return l.loadF32(t, x, index) }
                return l.widenF32(l.loadStrided(t.storage(b), x, index, stride: xChannelStride), t)
            }

            if s.isPointwise {
                // Work items are pixels (whole register tiles), or output-channel panels (`split`).
                let gemm = LinearPanels(b: b, k: c, lanes: lanes, weight: wt, activation: t)
                /// Vector `part` of input channel kk's weights for output channels n0 + part·lanes …
                func weights(_ kk: IRValue, _ n0: IRValue, _ part: Int, _ l: Lanes) -> IRValue {
                    loadW(l, b.add(b.mul(b.add(n0, b.i64(part * lanes)), b.i64(sO)), b.mul(kk, b.i64(s.weightStrides[3]))))
                }
                /// Pixels [first, first + m) × output channels [lo, hi): whole panels read their weight vectors
                /// unmasked, the last, partial one masked.
                func gemmBlock(first: IRValue, m: IRValue, lo: IRValue, hi: IRValue) {
                    let pixels = b.gep(t.storage(b), x, b.mul(first, b.i64(c)))
                    func storeTile(_ token: IRValue, _ n0: IRValue, _ part: Int, _ l: Lanes, _ sum: IRValue) {
                        let oc = b.add(n0, b.i64(part * lanes)), pixel = b.add(first, token)
                        let value = s.bias ? b.fadd(sum, start(l, oc)) : sum
                        if s.channelsFirstOutput {
                            store(l, value, row: b.sdiv(pixel, width), wo: b.srem(pixel, width), oc: oc)
                        } else {
                            store(l, value, row: b.i64(0), wo: pixel, oc: oc)   // NHWC: pixel·O + oc
                        }
                    }
                    let whole = b.i64(s.outChannels / gemm.columns * gemm.columns)
                    let split = Support.smax(b, lo, Support.smin(b, hi, whole))
                    if s.outChannels >= gemm.columns {
                        gemm.runUnpacked(x: pixels, m: m, lo: lo, hi: split,
                                         weights: { kk, n0, part, _ in weights(kk, n0, part, Lanes(b, lanes)) }, store: storeTile)
                    }
                    if s.outChannels % gemm.columns != 0 {
                        gemm.runUnpacked(x: pixels, m: m, lo: split, hi: hi, weights: weights, store: storeTile)
                    }
                }
                let grain = b.i64(workGrain(s, lanes: lanes))
                let byPanels = b.icmp(LLVMIntNE, e.dim(5), b.i64(0))
                Support.ifThen(b, byPanels, "panels") {
                    let lo = b.mul(b.sdiv(e.begin, grain), b.i64(gemm.columns))
                    let hi = Support.smin(b, b.i64(s.outChannels), b.mul(b.sdiv(b.add(e.end, b.sub(grain, b.i64(1))), grain), b.i64(gemm.columns)))
                    gemmBlock(first: b.i64(0), m: e.dim(4), lo: lo, hi: hi)
                }
                Support.ifThen(b, b.icmp(LLVMIntEQ, e.dim(5), b.i64(0)), "pixels") {
                    gemmBlock(first: e.begin, m: b.sub(e.end, e.begin), lo: b.i64(0), hi: b.i64(s.outChannels))
                }
                return
            }

            // Work items: output rows, or (output-channel block, row) block-major (`split`: dims 4, 5 = rows, 1).
            let byBlocks = b.icmp(LLVMIntNE, e.dim(5), b.i64(0))
            b.loop(e.begin, e.end, "row") { item in
                let p = b.select(byBlocks, b.srem(item, e.dim(4)), item), itemBlock = b.sdiv(item, e.dim(4))
                let n = b.sdiv(p, outHeight), ho = b.srem(p, outHeight)
                let hOrigin = b.sub(b.mul(ho, b.i64(s.stride[0])), b.i64(s.padding[0]))
                let imageBase = b.mul(n, height)

                /// Row kh of the window under the output columns from wo0, at input columns wo0·stride − padding (+ shift)
                /// + j: whether every j of `span` lies inside the image, and x's element index of channel 0 at j — `raw`
                /// where the row lies inside (plain address arithmetic: constant offsets from one base), `checked` where
                /// it may not (clamped to the image, with whether the tap is real). Call them inside the branch that
                /// uses them, so that the inside path pays for no clamps.
                func row(kh: IRValue, wo0: IRValue, shift: IRValue? = nil, span: (first: Int, last: Int))
                    -> (inside: IRValue, raw: (Int) -> IRValue, checked: (Int) -> (index: IRValue, inside: IRValue)) {
                    let hi = b.add(hOrigin, b.mul(kh, b.i64(s.dilation[0])))
                    let insideH = inRange(hi, height)
                    let origin = b.sub(b.mul(wo0, b.i64(s.stride[1])), b.i64(s.padding[1]))
                    let first = shift.map { b.add(origin, $0) } ?? origin
                    let inside = b.and(insideH, b.and(b.icmp(LLVMIntSGE, b.add(first, b.i64(span.first)), b.i64(0)),
                                                      b.icmp(LLVMIntSLT, b.add(first, b.i64(span.last)), width)))
                    /// Element of (row h, column wi), channel 0: NHWC, or channels-first (image n at n·C·H·W).
                    func index(_ h: IRValue, _ wi: IRValue) -> IRValue {
                        s.channelsFirstInput ? b.add(b.mul(b.add(b.mul(imageBase, b.i64(c)), h), width), wi)
                                             : b.mul(b.add(b.mul(b.add(imageBase, h), width), wi), b.i64(c))
                    }
                    return (inside, { j in index(hi, b.add(first, b.i64(j))) }, { j in
                        let wi = b.add(first, b.i64(j))
                        return (index(clamp(hi, height), clamp(wi, width)), b.and(insideH, inRange(wi, width)))
                    })
                }
                /// Σ over the kernel window of `body`, accumulators carried through kh and kw loops.
                func window(_ initial: [IRValue], _ body: @escaping (IRValue, IRValue, [IRValue]) -> [IRValue]) -> [IRValue] {
                    b.loop(b.i64(0), b.i64(s.kernel[0]), carrying: initial, "kh") { kh, a in
                        b.loop(b.i64(0), b.i64(s.kernel[1]), carrying: a, "kw") { kw, a in body(kh, kw, a) }
                    }
                }
                func wIndex(_ oc: IRValue, _ kh: IRValue, _ kw: IRValue) -> IRValue {
                    b.add(b.mul(oc, b.i64(sO)), b.add(b.mul(kh, b.i64(s.weightStrides[1])), b.mul(kw, b.i64(s.weightStrides[2]))))
                }
                /// Runs `body(wo0, cols)` over blocks of `cols` output columns, the rest one column at a time.
                func overColumns(_ cols: Int, _ body: @escaping (IRValue, Int) -> Void) {
                    let main = b.mul(b.sdiv(outWidth, b.i64(cols)), b.i64(cols))
                    if cols > 1 { b.loop(b.i64(0), main, step: cols, "wo") { wo in body(wo, cols) } }
                    b.loop(cols > 1 ? main : b.i64(0), outWidth, "wo1") { wo in body(wo, 1) }
                }

                if s.isDepthwise {
                    let cols = 8
                    let cMain = c / lanes * lanes, cTail = c - cMain
                    /// Channels c0..<c0+lanes (masked by `l`) of output columns wo0..<wo0+n. Per kernel row, every input
                    /// column the n outputs read is loaded once and feeds each (output, kw) pair that reads it — with
                    /// stride 1 and a 3-wide kernel, 10 loads for 24 FMAs instead of 24 —, column by column so that
                    /// only the accumulators, the row's weights and one x vector are live.
                    func channels(_ l: Lanes, _ c0: IRValue, _ wo0: IRValue, _ n: Int) {
                        let (kW, sW, dW) = (s.kernel[1], s.stride[1], s.dilation[1])
                        let offsets = Array(Set((0..<n).flatMap { q in (0..<kW).map { q * sW + $0 * dW } })).sorted()
                        let sums = b.loop(b.i64(0), b.i64(s.kernel[0]), carrying: [IRValue](repeating: start(l, c0), count: n), "kh") { kh, acc in
                            let wv = (0..<kW).map { loadW(l, wIndex(c0, kh, b.i64($0))) }
                            let r = row(kh: kh, wo0: wo0, span: (offsets.first!, offsets.last!))
                            func accumulate(checked: Bool) -> [IRValue] {
                                var a = acc
                                for j in offsets {
                                    let tap: (index: IRValue, inside: IRValue) = checked ? r.checked(j) : (r.raw(j), LLVMConstInt(b.i1, 1, 0)!)
                                    let loaded = loadX(l, b.add(tap.index, b.mul(c0, xChannelStride)))
                                    let xv = checked ? b.select(tap.inside, loaded, l.zero(b.f32)) : loaded
                                    for kw in 0..<kW where (j - kw * dW) >= 0 && (j - kw * dW) % sW == 0 && (j - kw * dW) / sW < n {
                                        let q = (j - kw * dW) / sW
                                        a[q] = b.fma(xv, wv[kw], a[q])
                                    }
                                }
                                return a
                            }
                            return Support.ifElse(b, r.inside, "inside", then: { accumulate(checked: false) },
                                                  otherwise: { accumulate(checked: true) })
                        }
                        for q in 0..<n {
                            store(l, sums[q], row: p, wo: b.add(wo0, b.i64(q)), oc: c0)
                        }
                    }
                    overColumns(cols) { wo0, n in
                        if cMain > 0 {
                            b.loop(b.i64(0), b.i64(cMain), step: lanes, "c") { c0 in channels(Lanes(b, lanes), c0, wo0, n) }
                        }
                        if cTail > 0 {
                            channels(Lanes(b, lanes, mask: Support.tailMask(b, b.i64(cTail), width: lanes)), b.i64(cMain), wo0, n)
                        }
                    }
                    return
                }

                let perGroup = s.outChannels / s.groups
                let (vectors, cols) = block(perGroup: perGroup, lanes: lanes)
                let blockWidth = vectors * lanes
                let fullBlocks = perGroup / blockWidth, rest = perGroup - fullBlocks * blockWidth
                /// Output channels oc0..<oc0+count of group g (count ≤ blockWidth, static) at columns wo0..<wo0+n.
                func outputs(g: IRValue, oc0: IRValue, count: Int, wo0: IRValue, n: Int) {
                    let parts: [Lanes] = stride(from: 0, to: count, by: lanes).map { start in
                        let m = min(lanes, count - start)
                        return m == lanes ? Lanes(b, lanes) : Lanes(b, lanes, mask: Support.tailMask(b, b.i64(m), width: lanes))
                    }
                    let starts = parts.enumerated().map { r, l in start(l, b.add(oc0, b.i64(r * lanes))) }
                    let xChannel0 = b.mul(g, b.i64(s.groupChannels))
                    let sums = window((0..<n).flatMap { _ in starts }) { kh, kw, acc in
                        let r = row(kh: kh, wo0: wo0, shift: b.mul(kw, b.i64(s.dilation[1])), span: (0, (n - 1) * s.stride[1]))
                        let wBase = wIndex(oc0, kh, kw)
                        func accumulate(checked: Bool) -> [IRValue] {
                            let tapList = (0..<n).map { q -> (index: IRValue, inside: IRValue) in
                                checked ? r.checked(q * s.stride[1]) : (r.raw(q * s.stride[1]), LLVMConstInt(b.i1, 1, 0)!)
                            }
                            return b.loop(b.i64(0), b.i64(s.groupChannels), carrying: acc, "ci") { ci, a in
                                let wv = parts.enumerated().map { r, l in
                                    loadW(l, b.add(wBase, b.add(b.mul(b.i64(r * lanes), b.i64(sO)), b.mul(ci, b.i64(s.weightStrides[3])))))
                                }
                                var next = a
                                for (q, tap) in tapList.enumerated() {
                                    let xs = Lanes(b, 1).loadF32(t, x, b.add(tap.index, b.mul(b.add(xChannel0, ci), xChannelStride)))
                                    let xv = b.splat(checked ? b.select(tap.inside, xs, b.f32(0)) : xs, lanes)
                                    for r in parts.indices { next[q * parts.count + r] = b.fma(xv, wv[r], a[q * parts.count + r]) }
                                }
                                return next
                            }
                        }
                        return Support.ifElse(b, r.inside, "inside", then: { accumulate(checked: false) },
                                              otherwise: { accumulate(checked: true) })
                    }
                    for q in 0..<n {
                        for (r, l) in parts.enumerated() {
                            store(l, sums[q * parts.count + r], row: p, wo: b.add(wo0, b.i64(q)), oc: b.add(oc0, b.i64(r * lanes)))
                        }
                    }
                }
                b.loop(b.i64(0), b.i64(s.groups), "g") { g in
                    let first = b.mul(g, b.i64(perGroup))
                    // All blocks of the group, or the item's block alone.
                    let obLo = b.select(byBlocks, itemBlock, b.i64(0))
                    let obHi = b.select(byBlocks, Support.smin(b, b.add(itemBlock, b.i64(1)), b.i64(fullBlocks)), b.i64(fullBlocks))
                    let restToo = b.or(b.icmp(LLVMIntEQ, e.dim(5), b.i64(0)), b.icmp(LLVMIntEQ, itemBlock, b.i64(fullBlocks)))
                    overColumns(cols) { wo0, n in
                        if fullBlocks > 0 {
                            b.loop(obLo, obHi, "ob") { ob in
                                outputs(g: g, oc0: b.add(first, b.mul(ob, b.i64(blockWidth))), count: blockWidth, wo0: wo0, n: n)
                            }
                        }
                        if rest > 0 {
                            Support.ifThen(b, restToo, "rest") {
                                outputs(g: g, oc0: b.add(first, b.i64(fullBlocks * blockWidth)), count: rest, wo0: wo0, n: n)
                            }
                        }
                    }
                }
            }
        }
    }
}
