import CLLVM
import LLVMKit

/// MLX block-scaled float quantized matmul (`quantized_matmul` with mode nvfp4 / mxfp4 / mxfp8,
/// transpose = true): `out[m, n] = Σ_k x[m, k] · code(w[n, k]) · scale[n, k / groupSize]`.
/// Weights are decoded in registers and never written out (see `FloatQuantizedRows` for the
/// decoding and the activation order); scales are decoded once per group.
///
/// Tokens are processed in blocks of up to `QuantizedLinearKernels.tokenBlock(k:)`: each weight
/// chunk is decoded and scaled once and used for every token of the block (prefill), with one
/// accumulator per token; decode (M = 1) sums codes · x per chunk in two chains and scales the
/// chunk once. Activations may be f32, bf16 or f16 (widened into the f32 scratch; results rounded
/// once on the store, in x's dtype).
///
/// With `globalScale` (nvfp4's per-tensor scale, a one-element tensor of that float type) every
/// result is multiplied by it before the store — the `multiply` the MLX delegate emits after the
/// matmul, folded in (f32: the same single rounding; bf16/f16: one rounding instead of two).
///
/// buffers: [x, w u32, scales u8, global scale?, out]; dims: [M]; work items: output columns n.
public enum FloatQuantizedLinearKernels {
    /// Shapes with a kernel: k a whole number of groups.
    public static func supports(k: Int, mode: FloatQuantization) -> Bool { FloatQuantizedRows.supports(k: k, mode: mode) }

    public static func linear(k: Int, n: Int, mode: FloatQuantization, x xType: ElementType, globalScale: ElementType? = nil,
                              lanes: Int) -> KernelDefinition {
        let tb = QuantizedLinearKernels.tokenBlock(k: k)
        let name = "qmm_\(mode.rawValue)_g\(mode.groupSize)_\(xType.tag)_k\(k)_n\(n)"
            + (globalScale.map { "_gscale\($0.tag)" } ?? "") + "_tb\(tb)_" + FloatQuantizedRows.tag(k: k, mode: mode, lanes: lanes)
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1), scales = e.buffer(2)
            let out = e.buffer(globalScale == nil ? 3 : 4)
            let m = e.dim(0)
            let rows = FloatQuantizedRows(b, k: k, mode: mode, lanes: lanes)
            let l = Lanes(b, rows.cl), scalar = Lanes(b, 1)
            let xp = rows.scratch(tb * k)
            let global = globalScale.map { scalar.loadF32($0, e.buffer(3), b.i64(0)) }

            func tokens(t0: IRValue, nt: Int) {
                for t in 0..<nt {
                    let rowStart = b.mul(b.add(t0, b.i64(t)), b.i64(k))
                    rows.permute(into: b.gep(b.f32, xp, b.i64(t * k))) { i in l.loadF32(xType, x, b.add(rowStart, i)) }
                }
                b.loop(e.begin, e.end, "n") { r in
                    let totals = rows.dot(rowWords: b.gep(b.i32, w, b.mul(r, b.i64(rows.rowWords))),
                                          rowScales: b.gep(b.i8, scales, b.mul(r, b.i64(rows.groups))), x: xp, nt: nt)
                    for t in 0..<nt {
                        var v = totals[t]
                        if let global {
                            v = b.fmul(v, global)
                            LLVMSetFastMathFlags(v, 0)
                        }
                        scalar.storeF32(v, xType, out, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), r))
                    }
                }
            }
            let mMain = b.mul(b.sdiv(m, b.i64(tb)), b.i64(tb))
            b.loop(b.i64(0), mMain, step: tb, "t") { t0 in tokens(t0: t0, nt: tb) }
            if tb > 1 { b.loop(mMain, m, "tt") { t0 in tokens(t0: t0, nt: 1) } }
        }
    }
}
