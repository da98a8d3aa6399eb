import CLLVM
import LLVMKit

/// RMSNorm and LayerNorm over the last dim (`d`, fixed at compile time: the size of the weight),
/// one row per work item. x and out are f32, bf16 or f16 (`t`), weight and bias f32, bf16 or f16
/// (`params`); everything is computed in f32 and rounded once on the store. Sums are accumulated in
/// vectors (then reduced once), the row is read again to scale it. buffers: [x, weight?, bias?, out].
public enum NormKernels {
    /// Σ f(x[base + i]) over i in 0..<d, in vector partial sums plus a scalar tail.
    static func rowSum(_ b: Builder, _ x: IRValue, _ t: ElementType, _ base: IRValue, d: Int, lanes: Int,
                       _ f: (Lanes, IRValue) -> IRValue) -> IRValue {
        let main = d / lanes * lanes
        var sum = b.f32(0)
        if main > 0 {
            let l = Lanes(b, lanes)
            let acc = b.loop(b.i64(0), b.i64(main), step: lanes, carrying: [l.zero(b.f32)], "s") { i, acc in
                [b.fadd(acc[0], f(l, l.loadF32(t, x, b.add(base, i))))]
            }
            sum = b.reduceAdd(acc[0])
        }
        let s = Lanes(b, 1)
        for i in main..<d { sum = b.fadd(sum, f(s, s.loadF32(t, x, b.add(base, b.i64(i))))) }
        return sum
    }

    /// `out = x / sqrt(mean(x²) + eps) (· weight)`.
    public static func rms(d: Int, eps: Double, hasWeight: Bool, lanes: Int, _ t: ElementType = .f32,
                           params: ElementType = .f32) -> KernelDefinition {
        norm(name: "rms_norm_\(tag(t, params: params, hasParams: hasWeight))_d\(d)\(hasWeight ? "" : "_noweight")_v\(lanes)", d: d, eps: eps,
             centered: false, hasWeight: hasWeight, hasBias: false, lanes: lanes, t, params: params)
    }

    /// `out = (x − mean) / sqrt(var + eps) (· weight) (+ bias)`.
    public static func layer(d: Int, eps: Double, hasWeight: Bool, hasBias: Bool, lanes: Int, _ t: ElementType = .f32,
                             params: ElementType = .f32) -> KernelDefinition {
        norm(name: "layer_norm_\(tag(t, params: params, hasParams: hasWeight || hasBias))_d\(d)\(hasWeight ? "" : "_noweight")\(hasBias ? "_bias" : "")_v\(lanes)",
             d: d, eps: eps, centered: true, hasWeight: hasWeight, hasBias: hasBias, lanes: lanes, t, params: params)
    }

    /// `bf16`, or `bf16_wf32` when the parameters are stored in another dtype than x.
    static func tag(_ t: ElementType, params: ElementType, hasParams: Bool) -> String {
        hasParams && params != t ? "\(t.tag)_w\(params.tag)" : t.tag
    }

    static func norm(name: String, d: Int, eps: Double, centered: Bool, hasWeight: Bool, hasBias: Bool, lanes: Int,
                     _ t: ElementType, params: ElementType) -> KernelDefinition {
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
                    mean = b.fdiv(rowSum(b, x, t, base, d: d, lanes: lanes) { _, v in v }, b.f32(Float(d)))
                }
                let sq = rowSum(b, x, t, base, d: d, lanes: lanes) { l, v in
                    let c = centered ? b.fsub(v, l.splat(mean)) : v
                    return b.fmul(c, c)
                }
                let variance = b.fdiv(sq, b.f32(Float(d)))
                let inv = b.fdiv(b.f32(1), b.intrinsic("llvm.sqrt", overloads: [b.f32], [b.fadd(variance, b.f32(Float(eps)))]))
                Support.vectorLoop(b, b.i64(0), b.i64(d), width: lanes, "i") { l, i in
                    var y = l.loadF32(t, x, b.add(base, i))
                    if centered { y = b.fsub(y, l.splat(mean)) }
                    y = b.fmul(y, l.splat(inv))
                    if let w { y = b.fmul(y, l.loadF32(params, w, i)) }
                    if let bias { y = b.fadd(y, l.loadF32(params, bias, i)) }
                    l.storeF32(y, t, out, b.add(base, i))
                }
            }
        }
    }
}
