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
/// Half-precision weights or x (bf16, f16) are widened to f32 as they are read (exact): the panel holds f32,
/// the tile broadcasts each x element widened; the sums are f32, rounded by the caller as its ops round.
struct LinearPanels {
    let b: Builder
    let k: Int, lanes: Int
    var weight: ElementType = .f32, activation: ElementType = .f32

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

    /// Packs rows [n0, n0 + count) of W ([N, K] of `weight`) widened and transposed into panel columns
    /// [first, first + width); rows past `count` are 0. (The default: the whole panel from one weight.)
    /// `lanes` rows × `lanes` k at a time are loaded as row vectors and transposed in registers
    /// (`transpose`), so each k's column vector is one store; a K tail goes element by element.
    func pack(_ w: IRValue, n0: IRValue, count: IRValue, into panel: IRValue, first: Int = 0, width: Int? = nil) {
        let width = width ?? columns
        let wide = Lanes(b, lanes), one = Lanes(b, 1)
        /// Row c of the panel's rows: present, or row n0 (present in every panel) read and zeroed.
        func row(_ c: Int) -> (present: IRValue, start: IRValue) {
            let present = b.icmp(LLVMIntSLT, b.i64(c), count)
            return (present, b.mul(b.add(n0, b.select(present, b.i64(c), b.i64(0))), b.i64(k)))
        }
        let rows = (0..<width).map(row)
        let whole = k / lanes * lanes
        if whole > 0 {
            b.loop(b.i64(0), b.i64(whole), step: lanes, "packv") { kk in
                for g in 0..<(width / lanes) {
                    let vectors = (0..<lanes).map { j -> IRValue in
                        let r = rows[g * lanes + j]
                        return b.select(r.present, wide.loadF32(weight, w, b.add(r.start, kk)), wide.zero(b.f32))
                    }
                    for (j, column) in transpose(vectors).enumerated() {
                        wide.store(column, b.f32, panel, b.add(b.mul(b.add(kk, b.i64(j)), b.i64(columns)), b.i64(first + g * lanes)))
                    }
                }
            }
        }
        for kk in whole..<k {
            for (c, r) in rows.enumerated() {
                let v = one.loadF32(weight, w, b.add(r.start, b.i64(kk)))
                b.store(b.select(r.present, v, b.f32(0)), b.gep(b.f32, panel, b.i64(kk * columns + first + c)))
            }
        }
    }

    /// The transpose of a square block of vectors (`v[i]` lane `l` → result `l` lane `i`): log2(lanes) stages,
    /// stage g swapping the off-diagonal g×g blocks of each pair (i, i + g) — one two-source shuffle per vector.
    func transpose(_ v: [IRValue]) -> [IRValue] {
        let n = v.count
        var v = v
        var g = 1
        while g < n {
            var next = v
            for i in 0..<n where i & g == 0 {
                next[i] = b.shuffle(v[i], v[i + g], (0..<n).map { $0 & g == 0 ? $0 : n + $0 - g })
                next[i + g] = b.shuffle(v[i], v[i + g], (0..<n).map { $0 & g == 0 ? $0 + g : n + $0 })
            }
            v = next
            g *= 2
        }
        return v
    }

    /// acc[t][c] = Σ_k x[(t0 + t)·K + k] · panel[k][c·lanes ..< (c + 1)·lanes], t < count (a compile-time count).
    func tile(x: IRValue, t0: IRValue, count: Int, panel: IRValue) -> [[IRValue]] {
        tile(x: x, t0: t0, count: count, weights: panelVectors(panel))
    }

    /// Reads a packed panel's two vectors of one k.
    func panelVectors(_ panel: IRValue) -> (_ kk: IRValue) -> (IRValue, IRValue) {
        let wide = Lanes(b, lanes)
        return { kk in
            let at = b.mul(kk, b.i64(columns))
            return (wide.load(b.f32, panel, at), wide.load(b.f32, panel, b.add(at, b.i64(lanes))))
        }
    }

    /// The register tile with each k's two weight vectors from `weights(kk)` (f32): a packed panel, or weights
    /// already stored k-major (`runUnpacked`).
    func tile(x: IRValue, t0: IRValue, count: Int, weights: (_ kk: IRValue) -> (IRValue, IRValue)) -> [[IRValue]] {
        let wide = Lanes(b, lanes)
        let rows = (0..<count).map { b.mul(b.add(t0, b.i64($0)), b.i64(k)) }
        let initial = [IRValue](repeating: wide.zero(b.f32), count: 2 * count)
        let accs = b.loop(b.i64(0), b.i64(k), carrying: initial, "gemmk") { kk, acc in
            let (w0, w1) = weights(kk)
            var next = acc
            for t in 0..<count {
                let xv = wide.splat(Lanes(b, 1).loadF32(activation, x, b.add(rows[t], kk)))
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
        walk(x: x, m: m, lo: lo, hi: hi, step: columns, prepare: { n0, count in
            pack(n0, count)
            return panelVectors(panel)
        }) { t, n0, count, sums in
            for c in 0..<2 { store(t, n0, c, columnLanes(count, c), sums[c]) }
        }
    }

    /// `run` over weights that need no packing: `weights(kk, n0, c, l)` loads vector c of k's weights for columns
    /// n0 + c·lanes … (lanes `l`) from where they are stored — a 1×1 convolution's weight, which the load-time layout
    /// (`conv-weight-layout`) already stores k-major, [K][N]: the tile reads each k's two vectors from there.
    func runUnpacked(x: IRValue, m: IRValue, lo: IRValue, hi: IRValue,
                     weights: @escaping (_ kk: IRValue, _ n0: IRValue, _ c: Int, _ l: Lanes) -> IRValue,
                     store: (_ t: IRValue, _ n0: IRValue, _ c: Int, _ l: Lanes, _ sum: IRValue) -> Void) {
        walk(x: x, m: m, lo: lo, hi: hi, step: columns, prepare: { n0, count in
            let parts = (0..<2).map { columnLanes(count, $0) }
            return { kk in (weights(kk, n0, 0, parts[0]), weights(kk, n0, 1, parts[1])) }
        }) { t, n0, count, sums in
            for c in 0..<2 { store(t, n0, c, columnLanes(count, c), sums[c]) }
        }
    }

    /// Vector c of a panel of `count` columns: its lanes masked to the columns that exist.
    private func columnLanes(_ count: IRValue, _ c: Int) -> Lanes {
        Lanes(b, lanes, mask: Support.tailMask(b, b.sub(count, b.i64(c * lanes)), width: lanes))
    }

    /// Gated linears (act(x·W_0ᵀ) · (x·W_1ᵀ)): each panel holds the same `lanes` columns of both weights —
    /// W_0's in the first vector, W_1's in the second, filled by `pack(n0, count)` — so the register tile
    /// yields both products of a (token, column vector) together; `store(t, n0, l, sum0, sum1)`.
    func runPaired(x: IRValue, m: IRValue, lo: IRValue, hi: IRValue, panel: IRValue, pack: (_ n0: IRValue, _ count: IRValue) -> Void,
                   store: (_ t: IRValue, _ n0: IRValue, _ l: Lanes, _ sum0: IRValue, _ sum1: IRValue) -> Void) {
        walk(x: x, m: m, lo: lo, hi: hi, step: lanes, prepare: { n0, count in
            pack(n0, count)
            return panelVectors(panel)
        }) { t, n0, count, sums in
            store(t, n0, Lanes(b, lanes, mask: Support.tailMask(b, count, width: lanes)), sums[0], sums[1])
        }
    }

    /// Panels of `step` output columns from `lo` (the last one partial), each prepared (`prepare(n0, count)`: packed,
    /// say; it returns how the tile reads each k's weight vectors) then run over tokens [0, m) in register tiles;
    /// `body(t, n0, count, sums)` gets token t's two vectors of sums.
    private func walk(x: IRValue, m: IRValue, lo: IRValue, hi: IRValue, step: Int,
                      prepare: (_ n0: IRValue, _ count: IRValue) -> (_ kk: IRValue) -> (IRValue, IRValue),
                      body: (_ t: IRValue, _ n0: IRValue, _ count: IRValue, _ sums: [IRValue]) -> Void) {
        // The panels' loops are register tiles already: LLVM unrolling them again only multiplies the code it
        // compiles at a cold start (`Builder.unrollLoops`).
        let unrolls = b.unrollLoops
        b.unrollLoops = false
        defer { b.unrollLoops = unrolls }
        let panels = b.sdiv(b.add(b.sub(hi, lo), b.i64(step - 1)), b.i64(step))
        b.loop(b.i64(0), panels, "panel") { p in
            let n0 = b.add(lo, b.mul(p, b.i64(step)))
            let count = Support.smin(b, b.i64(step), b.sub(hi, n0))
            let weights = prepare(n0, count)
            func block(_ t0: IRValue, _ n: Int) {
                let sums = tile(x: x, t0: t0, count: n, weights: weights)
                for t in 0..<n { body(b.add(t0, b.i64(t)), n0, count, sums[t]) }
            }
            // Whole tiles, then the rest in tiles of a third (a 1-token tile runs at one FMA chain's latency).
            var done = b.i64(0)
            for (i, size) in [tokens, tokens / 3, 1].enumerated() where size >= 1 && (i == 0 || size < tokens) {
                let end = size == 1 ? m : b.add(done, b.mul(b.sdiv(b.sub(m, done), b.i64(size)), b.i64(size)))
                b.loop(done, end, step: size, "tt\(size)") { t0 in block(t0, size) }
                done = end
            }
        }
    }
}
