import CLLVM
import LLVMKit

/// `out[m, n] = Σ_k x[m, k] · W[n, k] (+ bias[n])` with W stored [N, K] (nn.Linear layout), f32.
///
/// Work items are output columns n (rows of W), so threads split the weight matrix and each reads
/// its share once per call. K is fixed at compile time (weights are constants); M (tokens) is the
/// run-time `dims[0]`. Inner loop (`LinearRows`): `rows` rows of W × `tokens` tokens at a time, K in
/// steps of the vector width, with rows·tokens vector accumulators (register blocking).
/// buffers: [x, W, bias?, out]; dims: [M].
public enum LinearKernels {
    /// `halfCopy`: buffers [x, W, bias?, W as f16, out] — every value of W is an f16, and calls of up to
    /// `halfCopyTokens` tokens (decode; a tied vocabulary projection) read the copy, half the bytes.
    public static func f32(k: Int, n: Int, hasBias: Bool, lanes: Int, halfCopy: Bool = false) -> KernelDefinition {
        let name = "linear_f32_k\(k)_n\(n)\(hasBias ? "_bias" : "")\(halfCopy ? "_h16" : "")_v\(lanes)"
        return single(name: name, k: k, n: n, weight: .f32, activation: .f32, bias: hasBias ? .f32 : nil, output: .f32, lanes: lanes,
                      halfCopy: halfCopy)
    }

    /// One weight: each (token, row) sum plus the bias, rounded once to `output`.
    static func single(name: String, k: Int, n: Int, weight: ElementType, activation: ElementType, bias: ElementType?,
                       output: ElementType, lanes: Int, halfCopy: Bool = false) -> KernelDefinition {
        KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1)
            let biasBuffer = bias != nil ? e.buffer(2) : nil
            let half = halfCopy ? e.buffer(bias != nil ? 3 : 2) : nil
            let out = e.buffer((bias != nil ? 3 : 2) + (halfCopy ? 1 : 0))
            let one = Lanes(b, 1)
            func tiles(_ weights: IRValue, _ stored: ElementType) {
                let rows = LinearRows(b: b, k: k, weight: stored, activation: activation, lanes: lanes)
                LinearRows.tiles(b, lo: e.begin, hi: e.end, m: e.dim(0)) { n0, nr, t0, nt in
                    let sums = rows.dot(weights: (0..<nr).map { (weights, b.mul(b.add(n0, b.i64($0)), b.i64(k))) }, x: x,
                                        tokens: (0..<nt).map { b.mul(b.add(t0, b.i64($0)), b.i64(k)) }, prefetchRows: nr)
                    for t in 0..<nt {
                        for r in 0..<nr {
                            var sum = sums[t][r]
                            let nIndex = b.add(n0, b.i64(r))
                            if let bias, let biasBuffer { sum = b.fadd(sum, one.loadF32(bias, biasBuffer, nIndex)) }
                            one.storeF32(sum, output, out, b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), nIndex))
                        }
                    }
                }
            }
            guard let half else { return tiles(w, weight) }
            _ = Support.ifElse(b, b.icmp(LLVMIntSLE, e.dim(0), b.i64(halfCopyTokens)), "half", then: { tiles(half, .f16); return [] },
                               otherwise: { tiles(w, weight); return [] })
        }
    }
}
