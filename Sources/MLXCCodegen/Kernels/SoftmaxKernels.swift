import CLLVM
import LLVMKit

/// Softmax over the last axis, one row per work item: the row's max, then e^(x − max) summed, then
/// each divided by the sum (three passes over a row that stays in cache). f32 rows write e^(x − max)
/// out in the second pass and scale it in place in the third; bf16/f16 rows (`t`) recompute it in
/// the third pass instead, so the only rounding is the one of the result, as in the reference.
/// buffers: [x, out]; dims: [d].
public enum SoftmaxKernels {
    public static func lastAxis(lanes: Int, _ t: ElementType = .f32) -> KernelDefinition {
        KernelDefinition(name: "softmax_\(t.tag)_lastaxis_v\(lanes)") { e in
            let b = e.b
            let x = e.buffer(0), out = e.buffer(1)
            let d = e.dim(0)
            let mainEnd = b.mul(b.sdiv(d, b.i64(lanes)), b.i64(lanes))
            let v = Lanes(b, lanes)
            b.loop(e.begin, e.end, "row") { row in
                let base = b.mul(row, d)
                let negInf = b.f32(-.infinity)
                let vmax = b.loop(b.i64(0), mainEnd, step: lanes, carrying: [v.splat(negInf)], "m") { i, acc in
                    [v.fmax(acc[0], v.loadF32(t, x, b.add(base, i)))]
                }[0]
                // The last partial vector, masked (all lanes absent when d is a multiple of the width).
                let tail = Lanes(b, lanes, mask: Support.tailMask(b, b.sub(d, mainEnd), width: lanes))
                let m = Support.reduceMax(b, v.fmax(vmax, tail.loadF32(t, x, b.add(base, mainEnd), passthru: v.splat(negInf))))
                let vsum = b.loop(b.i64(0), mainEnd, step: lanes, carrying: [v.zero(b.f32)], "e") { i, acc in
                    let ex = VectorMath.exp(v, b.fsub(v.loadF32(t, x, b.add(base, i)), v.splat(m)))
                    if !t.isHalf { v.store(ex, b.f32, out, b.add(base, i)) }
                    return [b.fadd(acc[0], ex)]
                }[0]
                let tailEx = VectorMath.exp(tail, b.fsub(tail.loadF32(t, x, b.add(base, mainEnd), passthru: v.splat(negInf)), v.splat(m)))
                if !t.isHalf { tail.store(tailEx, b.f32, out, b.add(base, mainEnd)) }
                let sum = b.reduceAdd(b.fadd(vsum, tailEx))
                Support.vectorLoop(b, b.i64(0), d, width: lanes, "n") { l, i in
                    let ex = t.isHalf ? VectorMath.exp(l, b.fsub(l.loadF32(t, x, b.add(base, i)), l.splat(m)))
                                      : l.load(b.f32, out, b.add(base, i))
                    l.storeF32(b.fdiv(ex, l.splat(sum)), t, out, b.add(base, i))
                }
            }
        }
    }
}
