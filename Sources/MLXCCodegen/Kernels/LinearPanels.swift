import CLLVM
import LLVMKit

/// The many-token path of the f32 linears (encoders, prefill: M in the hundreds or thousands): an
/// outer-product GEMM instead of `LinearRows`' dot products. A panel of `columns` (two vectors of) output
/// columns is packed once per call as Wᵀ — [K][columns], each k's weights one contiguous pair of vectors —
/// on the stack, then every block of `tokens` tokens is one register tile: per k, the panel's two vectors
/// and one broadcast x[t, k] per token feed 2·tokens FMAs into 2·tokens accumulators (12×32 on AVX-512,
/// 6×16 on AVX2: 24 or 12 accumulators + 3 registers), no horizontal sums. The panel (K·columns·4 bytes,
/// ≤ 256 KB at K = 2048) stays in L2 while x streams past it once per panel; packing it costs K·columns
/// scalar moves against M·K·columns FMAs, so the path is taken from `minTokens` tokens on.
struct LinearPanels {
    let b: Builder
    let k: Int, lanes: Int

    /// Output columns per panel: two vectors.
    var columns: Int { 2 * lanes }
    /// Tokens per register tile: 2·tokens accumulators fit the register file with room for the panel's
    /// two vectors and a broadcast (32 vector registers with 16 lanes, 16 otherwise).
    var tokens: Int { Self.tokens(lanes: lanes) }
    static func tokens(lanes: Int) -> Int { lanes >= 16 ? 12 : 6 }
    /// How kernel names say they carry this path: the register tile, tokens × columns.
    static func tag(lanes: Int) -> String { "gemm\(tokens(lanes: lanes))x\(2 * lanes)" }

    /// Below this many tokens the dot-product kernels are faster (packing is not paid back).
    static let minTokens = 48

    /// The stack scratch for one panel (allocated once, in the entry block).
    func allocatePanel() -> IRValue { b.alloca(LLVMArrayType(b.f32, UInt32(k * columns))) }

    /// Packs rows [n0, n0 + count) of W ([N, K] f32) transposed into `panel`; rows past `count` are 0.
    func pack(_ w: IRValue, n0: IRValue, count: IRValue, into panel: IRValue) {
        b.loop(b.i64(0), b.i64(columns), "pack") { c in
            let present = b.icmp(LLVMIntSLT, c, count)
            // A missing row reads row n0 (present in every panel) and stores 0.
            let row = b.mul(b.add(n0, b.select(present, c, b.i64(0))), b.i64(k))
            b.loop(b.i64(0), b.i64(k), "packk") { kk in
                let v = b.load(b.f32, b.gep(b.f32, w, b.add(row, kk)))
                b.store(b.select(present, v, b.f32(0)), b.gep(b.f32, panel, b.add(b.mul(kk, b.i64(columns)), c)))
            }
        }
    }

    /// acc[t][c] = Σ_k x[(t0 + t)·K + k] · panel[k][c·lanes ..< (c + 1)·lanes], t < count (a compile-time count).
    func tile(x: IRValue, t0: IRValue, count: Int, panel: IRValue) -> [[IRValue]] {
        let wide = Lanes(b, lanes)
        let rows = (0..<count).map { b.mul(b.add(t0, b.i64($0)), b.i64(k)) }
        let initial = [IRValue](repeating: wide.zero(b.f32), count: 2 * count)
        let accs = b.loop(b.i64(0), b.i64(k), carrying: initial, "gemmk") { kk, acc in
            let at = b.mul(kk, b.i64(columns))
            let w0 = wide.load(b.f32, panel, at), w1 = wide.load(b.f32, panel, b.add(at, b.i64(lanes)))
            var next = acc
            for t in 0..<count {
                let xv = wide.splat(b.load(b.f32, b.gep(b.f32, x, b.add(rows[t], kk))))
                next[2 * t] = b.fma(xv, w0, acc[2 * t])
                next[2 * t + 1] = b.fma(xv, w1, acc[2 * t + 1])
            }
            return next
        }
        return (0..<count).map { [accs[2 * $0], accs[2 * $0 + 1]] }
    }

    /// Output columns [lo, hi) of one weight over tokens [0, m): panels from lo, the last one partial;
    /// `store(t, n0, c, lanes, sum)` gets vector c of token t's sums for columns n0 + c·lanes …, its lanes
    /// masked to the columns that exist.
    func run(w: IRValue, x: IRValue, m: IRValue, lo: IRValue, hi: IRValue, panel: IRValue,
             store: (_ t: IRValue, _ n0: IRValue, _ c: Int, _ l: Lanes, _ sum: IRValue) -> Void) {
        run(x: x, m: m, lo: lo, hi: hi, panel: panel, pack: { pack(w, n0: $0, count: $1, into: panel) }, store: store)
    }

    /// `run` with the panel filled by `pack(n0, count)` (weights stored otherwise, e.g. quantized: dequantized
    /// into the panel once per call, the GEMM then as for f32 weights).
    func run(x: IRValue, m: IRValue, lo: IRValue, hi: IRValue, panel: IRValue, pack: (_ n0: IRValue, _ count: IRValue) -> Void,
             store: (_ t: IRValue, _ n0: IRValue, _ c: Int, _ l: Lanes, _ sum: IRValue) -> Void) {
        let panels = b.sdiv(b.add(b.sub(hi, lo), b.i64(columns - 1)), b.i64(columns))
        b.loop(b.i64(0), panels, "panel") { p in
            let n0 = b.add(lo, b.mul(p, b.i64(columns)))
            let count = Support.smin(b, b.i64(columns), b.sub(hi, n0))
            pack(n0, count)
            let masks = (0..<2).map { c in Lanes(b, lanes, mask: Support.tailMask(b, b.sub(count, b.i64(c * lanes)), width: lanes)) }
            func block(_ t0: IRValue, _ n: Int) {
                let sums = tile(x: x, t0: t0, count: n, panel: panel)
                for t in 0..<n { for c in 0..<2 { store(b.add(t0, b.i64(t)), n0, c, masks[c], sums[t][c]) } }
            }
            let mMain = b.mul(b.sdiv(m, b.i64(tokens)), b.i64(tokens))
            b.loop(b.i64(0), mMain, step: tokens, "tt") { t0 in block(t0, tokens) }
            b.loop(mMain, m, "t1") { t0 in block(t0, 1) }
        }
    }
}
