import MLXCIR

/// A 2-D pooling window as ordinary graph ops, for both importers (XNNPACK's NHWC pools, ATen's NCHW ones): the input
/// padded on H and W, one strided view per tap — two `slice`s with step = stride, the tap's offset (i·dilation,
/// j·dilation) as their start — and the taps combined pairwise in row-major order by the pool's op (`maximum` for max
/// pooling, `add` for the sums of average pooling). The kernels are then the slice/elementwise ones the rest of the
/// graph uses.
struct PoolingWindowTaps {
    /// The axes of H and W: (1, 2) in NHWC, (2, 3) in NCHW.
    var axes: (h: Int, w: Int)
    var kernel: [Int], stride: [Int], dilation: [Int]
    /// The output's H and W.
    var outSize: [Int]
    let emit: (Op) -> Void
    let temporary: () -> ValueID

    /// x padded on H and W by `before`/`after` ([H, W] each) with `value` (−∞ for max pooling: a padded element never
    /// wins; 0 for sums); x itself when every width is 0.
    func padded(_ x: ValueID, before: [Int], after: [Int], value: Double) -> ValueID {
        guard (before + after).contains(where: { $0 != 0 }) else { return x }
        var widths = [Int](repeating: 0, count: 8)
        (widths[2 * axes.h], widths[2 * axes.h + 1], widths[2 * axes.w], widths[2 * axes.w + 1]) = (before[0], after[0], before[1], after[1])
        let y = temporary()
        emit(.pad(PadOp(x: x, out: y, padWidth: widths.map { .literal(Int64($0)) }, mode: "constant", constantValue: value)))
        return y
    }

    /// The view of (padded) x under tap (i, j) of every window: [.., Ho, Wo, ..].
    func tap(_ x: ValueID, _ i: Int, _ j: Int) -> ValueID {
        let rows = temporary(), cols = temporary()
        let (r0, c0) = (i * dilation[0], j * dilation[1])
        emit(.slice(SliceOp(x: x, out: rows, axis: .literal(Int64(axes.h)), start: .literal(Int64(r0)),
                            stop: .literal(Int64(r0 + (outSize[0] - 1) * stride[0] + 1)), step: stride[0])))
        emit(.slice(SliceOp(x: rows, out: cols, axis: .literal(Int64(axes.w)), start: .literal(Int64(c0)),
                            stop: .literal(Int64(c0 + (outSize[1] - 1) * stride[1] + 1)), step: stride[1])))
        return cols
    }

    /// The taps of (padded) x combined by `combine(a, b, out)`, all but the last combination emitted: the last one is
    /// returned as the op that writes a given result (for a 1×1 window, an id copy of its only tap), so the caller
    /// writes its own output with it.
    func reduce(_ x: ValueID, _ combine: @escaping (_ a: ValueID, _ b: ValueID, _ out: ValueID) -> Op) -> (ValueID) -> Op {
        let taps = (0..<kernel[0]).flatMap { i in (0..<kernel[1]).map { j in (i, j) } }
        var acc = tap(x, taps[0].0, taps[0].1)
        for (n, (i, j)) in taps.enumerated().dropFirst() {
            let t = tap(x, i, j)
            if n == taps.count - 1 { return { [acc] out in combine(acc, t, out) } }
            let s = temporary()
            emit(combine(acc, t, s))
            acc = s
        }
        return { [acc] out in .idCopy(IdCopyOp(x: acc, out: out)) }
    }

    static func maximum(_ a: ValueID, _ b: ValueID, _ out: ValueID) -> Op { .maximum(MaximumOp(a: a, b: b, out: out)) }
    static func sum(_ a: ValueID, _ b: ValueID, _ out: ValueID) -> Op { .add(AddOp(a: a, b: b, out: out)) }
}
