import CLLVM
import LLVMKit

/// RMSNorm and LayerNorm over the last dim (`d`, fixed at compile time: the size of the weight),
/// f32, one row per work item. Sums are accumulated in vectors (then reduced once), the row is
/// read again to scale it. buffers: [x, weight?, bias?, out].
public enum NormKernels {
    /// Σ f(x[base + i]) over i in 0..<d, in vector partial sums plus a scalar tail.
    static func rowSum(_ b: Builder, _ x: IRValue, _ base: IRValue, d: Int, lanes: Int, _ f: (Lanes, IRValue) -> IRValue) -> IRValue {
        let main = d / lanes * lanes
        var sum = b.f32(0)
        if main > 0 {
            let l = Lanes(b, lanes)
            let acc = b.loop(b.i64(0), b.i64(main), step: lanes, carrying: [l.zero(b.f32)], "s") { i, acc in
                [b.fadd(acc[0], f(l, l.load(b.f32, x, b.add(base, i))))]
            }
            sum = b.reduceAdd(acc[0])
        }
        let s = Lanes(b, 1)
        for i in main..<d { sum = b.fadd(sum, f(s, s.load(b.f32, x, b.add(base, b.i64(i))))) }
        return sum
    }

    /// `out = x / sqrt(mean(x²) + eps) (· weight)`.
    public static func rms(d: Int, eps: Double, hasWeight: Bool, lanes: Int) -> KernelDefinition {
        norm(name: "rms_norm_f32_d\(d)\(hasWeight ? "" : "_noweight")_v\(lanes)", d: d, eps: eps, centered: false,
             hasWeight: hasWeight, hasBias: false, lanes: lanes)
    }

    /// `out = (x − mean) / sqrt(var + eps) (· weight) (+ bias)`.
    public static func layer(d: Int, eps: Double, hasWeight: Bool, hasBias: Bool, lanes: Int) -> KernelDefinition {
        norm(name: "layer_norm_f32_d\(d)\(hasWeight ? "" : "_noweight")\(hasBias ? "_bias" : "")_v\(lanes)", d: d, eps: eps,
             centered: true, hasWeight: hasWeight, hasBias: hasBias, lanes: lanes)
    }

    static func norm(name: String, d: Int, eps: Double, centered: Bool, hasWeight: Bool, hasBias: Bool, lanes: Int) -> KernelDefinition {
        // eps is part of the name: two norms that differ only in eps are different kernels.
        KernelDefinition(name: name + "_eps\(Support.name(Float(eps)))") { e in
            let b = e.b
            var slot = 0
            func next() -> IRValue { slot += 1; return e.buffer(slot) }
            let x = e.buffer(0)
            let w = hasWeight ? next() : nil
            let bias = hasBias ? next() : nil
            let out = next()
            b.loop(e.begin, e.end, "row") { row in
                let base = b.mul(row, b.i64(d))
                var mean = b.f32(0)
                if centered {
                    mean = b.fdiv(rowSum(b, x, base, d: d, lanes: lanes) { _, v in v }, b.f32(Float(d)))
                }
                let sq = rowSum(b, x, base, d: d, lanes: lanes) { l, v in
                    let c = centered ? b.fsub(v, l.splat(mean)) : v
                    return b.fmul(c, c)
                }
                let variance = b.fdiv(sq, b.f32(Float(d)))
                let inv = b.fdiv(b.f32(1), b.intrinsic("llvm.sqrt", overloads: [b.f32], [b.fadd(variance, b.f32(Float(eps)))]))
                Support.vectorLoop(b, b.i64(0), b.i64(d), width: lanes, "i") { l, i in
                    var y = l.load(b.f32, x, b.add(base, i))
                    if centered { y = b.fsub(y, l.splat(mean)) }
                    y = b.fmul(y, l.splat(inv))
                    if let w { y = b.fmul(y, l.load(b.f32, w, i)) }
                    if let bias { y = b.fadd(y, l.load(b.f32, bias, i)) }
                    l.store(y, b.f32, out, b.add(base, i))
                }
            }
        }
    }
}
