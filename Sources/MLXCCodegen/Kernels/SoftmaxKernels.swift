import CLLVM
import LLVMKit

/// Softmax over the last axis, f32, one row per work item: the row's max, then e^(x − max) written
/// out and summed, then each divided by the sum (three passes over a row that stays in cache).
/// buffers: [x, out]; dims: [d].
public enum SoftmaxKernels {
    public static func lastAxis(lanes: Int) -> KernelDefinition {
        KernelDefinition(name: "softmax_f32_lastaxis_v\(lanes)") { e in
            let b = e.b
            let x = e.buffer(0), out = e.buffer(1)
            let d = e.dim(0)
            let mainEnd = b.mul(b.sdiv(d, b.i64(lanes)), b.i64(lanes))
            let v = Lanes(b, lanes), s = Lanes(b, 1)
            b.loop(e.begin, e.end, "row") { row in
                let base = b.mul(row, d)
                let negInf = b.f32(-.infinity)
                let vmax = b.loop(b.i64(0), mainEnd, step: lanes, carrying: [v.splat(negInf)], "m") { i, acc in
                    [v.fmax(acc[0], v.load(b.f32, x, b.add(base, i)))]
                }[0]
                let m = b.loop(mainEnd, d, carrying: [b.reduceMax(vmax)], "mt") { i, acc in
                    [s.fmax(acc[0], s.load(b.f32, x, b.add(base, i)))]
                }[0]
                let vsum = b.loop(b.i64(0), mainEnd, step: lanes, carrying: [v.zero(b.f32)], "e") { i, acc in
                    let ex = VectorMath.exp(v, b.fsub(v.load(b.f32, x, b.add(base, i)), v.splat(m)))
                    v.store(ex, b.f32, out, b.add(base, i))
                    return [b.fadd(acc[0], ex)]
                }[0]
                let sum = b.loop(mainEnd, d, carrying: [b.reduceAdd(vsum)], "et") { i, acc in
                    let ex = VectorMath.exp(s, b.fsub(s.load(b.f32, x, b.add(base, i)), m))
                    s.store(ex, b.f32, out, b.add(base, i))
                    return [b.fadd(acc[0], ex)]
                }[0]
                Support.vectorLoop(b, b.i64(0), d, width: lanes, "n") { l, i in
                    l.store(b.fdiv(l.load(b.f32, out, b.add(base, i)), l.splat(sum)), b.f32, out, b.add(base, i))
                }
            }
        }
    }
}
