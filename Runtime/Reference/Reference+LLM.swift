import Foundation
import MLXCIR

/// Reference kernels for the LLM ops: norms, softmax, RoPE, attention and KV-cache writes.
/// Accumulation is in Double; results are rounded to the output dtype by `set`.
extension Environment {
    mutating func executeLLM(_ op: Op) throws -> Bool {
        switch op {
        case .rmsNorm(let o):
            let x = try tensor(o.x)
            let w = try optional(o.weight)
            try set(o.out, Self.lastAxisNorm(x, weight: w, bias: nil, eps: o.eps, centered: false))
        case .layerNorm(let o):
            let x = try tensor(o.x)
            try set(o.out, Self.lastAxisNorm(x, weight: try optional(o.weight), bias: try optional(o.bias), eps: o.eps, centered: true))
        case .softmax(let o):
            set(o.out, try Self.softmax(try tensor(o.x), axis: o.axis))
        case .rope(let o):
            try set(o.out, rope(o))
        case .ropeTable(let o):
            try set(o.out, ropeTable(o))
        case .sdpa(let o):
            let q = try tensor(o.q), k = try tensor(o.k), v = try tensor(o.v)
            set(o.out, try Self.attention(q: q, k: k, v: v, scale: o.scale, mask: try optional(o.mask), causal: o.causal,
                                          keyCount: nil, queryOffset: nil))
        case .llamaCustomSdpa(let o):
            try set(o.out, customSDPA(o))
        case .llamaUpdateCache(let o):
            let value = try tensor(o.value), cache = try tensor(o.cache)
            let start = try int(o.startPos)
            guard value.rank == 4, cache.rank == 4, value.shape[0] == cache.shape[0], Array(value.shape[2...]) == Array(cache.shape[2...]) else {
                throw ReferenceError("update_cache: value \(value.shape) does not fit cache \(cache.shape) ([B, S, H, D])")
            }
            let indices = (0..<value.shape[1]).map { start + $0 }
            set(o.out, try Self.writeRows(cache, value, axis: 1, positions: indices, what: "update_cache"))
        case .llamaUpdateCacheWithIndices(let o):
            let value = try tensor(o.value), cache = try tensor(o.cache), indices = try tensor(o.indices)
            guard value.rank == 4, cache.rank == 4, indices.count == value.shape[1] || indices.count == value.shape[0] * value.shape[1] else {
                throw ReferenceError("update_cache_with_indices: value \(value.shape), cache \(cache.shape), indices \(indices.shape)")
            }
            let positions = indices.storage.prefix(value.shape[1]).map { Int(Int64(clampingToInt: $0)) }
            set(o.out, try Self.writeRows(cache, value, axis: 1, positions: positions, what: "update_cache_with_indices"))
        case .updateAndAttend(let o):
            // Place k/v in the layer's off-graph pool, then attend q over the history it returns: the
            // new cells sit at the tail, so the causal mask is aligned lower-right (a ring layer's
            // window comes as an explicit mask).
            guard let layer = o.layerId else { throw ReferenceError("update_and_attend without a layer_id") }
            let q = try tensor(o.q), positions = try tensor(o.position).storage.map { Int(Int64(clampingToInt: $0)) }
            let history = try executor.offGraphCache.updateAndFetch(layer: layer, k: try tensor(o.k), v: try tensor(o.v),
                                                                    positions: Array(positions.prefix(q.shape[2])))
            let scale = o.scale ?? 1 / Double(q.shape[3]).squareRoot()
            var y = try Self.attention(q: q.converted(to: .f32), k: history.keys, v: history.values, scale: scale, mask: history.mask,
                                       causal: true, keyCount: nil, queryOffset: nil)
            y.dtype = o.outDtype ?? q.dtype
            set(o.out, y)
        default:
            return false
        }
        return true
    }

    /// RMSNorm (centered: false) or LayerNorm (centered: true) over the last axis.
    static func lastAxisNorm(_ x: HostTensor, weight: HostTensor?, bias: HostTensor?, eps: Double, centered: Bool) throws -> HostTensor {
        guard let n = x.shape.last, n > 0 else { throw ReferenceError("norm of a tensor with shape \(x.shape)") }
        for p in [weight, bias].compactMap({ $0 }) where p.count != n {
            throw ReferenceError("norm parameter of shape \(p.shape) does not match the last dim \(n) of \(x.shape)")
        }
        var out = x.storage
        for row in 0..<(x.count / n) {
            let base = row * n
            var mean = 0.0
            if centered { for i in 0..<n { mean += x.storage[base + i] }; mean /= Double(n) }
            var sq = 0.0
            for i in 0..<n { let d = x.storage[base + i] - mean; sq += d * d }
            let inv = 1 / (sq / Double(n) + eps).squareRoot()
            for i in 0..<n {
                var y = (x.storage[base + i] - mean) * inv
                if let w = weight { y *= w.storage[i] }
                if let b = bias { y += b.storage[i] }
                out[base + i] = y
            }
        }
        return HostTensor(dtype: x.dtype, shape: x.shape, storage: out)
    }

    static func softmax(_ x: HostTensor, axis a: Int) throws -> HostTensor {
        let axis = try Broadcast.axis(a, rank: x.rank)
        let (outer, size, inner) = Broadcast.around(x.shape, axis: axis)
        var out = x.storage
        for o in 0..<outer {
            for i in 0..<inner {
                let at = { (k: Int) in (o * size + k) * inner + i }
                var m = -Double.infinity
                for k in 0..<size { m = max(m, x.storage[at(k)]) }
                var sum = 0.0
                for k in 0..<size {
                    let e = m == -.infinity ? 0 : Foundation.exp(x.storage[at(k)] - m)
                    out[at(k)] = e
                    sum += e
                }
                for k in 0..<size { out[at(k)] = sum > 0 ? out[at(k)] / sum : .nan }
            }
        }
        return HostTensor(dtype: x.dtype, shape: x.shape, storage: out)
    }

    /// MLX `fast.rope` on x [..., T, D]: position of row t is `offset + t`, angle = position · scale · inv_freq.
    func rope(_ o: RopeOp) throws -> HostTensor {
        let x = try tensor(o.x)
        guard x.rank >= 2 else { throw ReferenceError("rope needs rank >= 2, got \(x.shape)") }
        let d = x.shape[x.rank - 1], t = x.shape[x.rank - 2]
        let dims = o.dims
        guard dims > 0, dims % 2 == 0, dims <= d else { throw ReferenceError("rope dims \(dims) invalid for feature size \(d)") }
        let half = dims / 2
        let invFreq: [Double]
        if let f = try optional(o.freqs) {
            guard f.count == half else { throw ReferenceError("rope freqs has \(f.count) entries, \(half) expected") }
            invFreq = f.storage.map { 1 / $0 }
        } else {
            invFreq = (0..<half).map { Foundation.exp(-Double($0) * Foundation.log(o.base) / Double(half)) }
        }
        // The offset: a scalar, or one position per batch entry.
        let offsets = try tensor(o.offset).storage
        let rows = x.count / (t * d)
        var out = x.storage
        for r in 0..<rows {
            let offset = offsets.count == 1 ? offsets[0] : offsets[min(r * offsets.count / max(rows, 1), offsets.count - 1)]
            for p in 0..<t {
                let position = (offset + Double(p)) * o.scale
                let base = (r * t + p) * d
                for i in 0..<half {
                    let angle = position * invFreq[i]
                    let c = Foundation.cos(angle), s = Foundation.sin(angle)
                    let (a, b) = o.traditional ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                    let x1 = x.storage[a], x2 = x.storage[b]
                    out[a] = x1 * c - x2 * s
                    out[b] = x1 * s + x2 * c
                }
            }
        }
        return HostTensor(dtype: x.dtype, shape: x.shape, storage: out)
    }

    /// RoPE from tables as plain exports compute it: row t of x [..., T, D] takes rows start + t of
    /// cos/sin [R, h]; pairs (2i, 2i+1) when traditional, else (i, i + h); features from 2h pass through.
    func ropeTable(_ o: RopeTableOp) throws -> HostTensor {
        let x = try tensor(o.x), cosT = try tensor(o.cos), sinT = try tensor(o.sin)
        let start = try int(.value(o.start)), stop = try int(.value(o.stop))
        guard x.rank >= 2 else { throw ReferenceError("rope_table needs rank >= 2, got \(x.shape)") }
        let d = x.shape[x.rank - 1], t = x.shape[x.rank - 2]
        guard cosT.rank == 2, cosT.shape == sinT.shape, cosT.shape[1] > 0, 2 * cosT.shape[1] <= d else {
            throw ReferenceError("rope_table: tables \(cosT.shape), \(sinT.shape) do not fit x \(x.shape)")
        }
        let h = cosT.shape[1]
        guard start >= 0, stop == start + t, stop <= cosT.shape[0] else {
            throw ReferenceError("rope_table: table rows [\(start), \(stop)) of \(cosT.shape[0]) do not match the \(t) positions of x \(x.shape)")
        }
        var out = x.storage
        for r in 0..<(x.count / (t * d)) {
            for p in 0..<t {
                let base = (r * t + p) * d, row = (start + p) * h
                for i in 0..<h {
                    let c = cosT.storage[row + i], s = sinT.storage[row + i]
                    let (a, b) = o.traditional ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + h)
                    let x1 = x.storage[a], x2 = x.storage[b]
                    out[a] = x1 * c - x2 * s
                    out[b] = x1 * s + x2 * c
                }
            }
        }
        return HostTensor(dtype: x.dtype, shape: x.shape, storage: out)
    }

    /// Attention on BHSD tensors: q [B, Hq, T, D], k/v [B, Hkv, S, D] (GQA when Hq is a multiple of Hkv).
    /// Keys beyond `keyCount` are ignored. Causal masking is aligned lower-right: query i sits at
    /// position `queryOffset + i` (default S − T) and sees keys ≤ that position. `mask` is additive
    /// (float) or a keep-mask (bool), broadcast to [B, Hq, T, S].
    static func attention(q: HostTensor, k: HostTensor, v: HostTensor, scale: Double, mask: HostTensor?, causal: Bool,
                          keyCount: Int?, queryOffset: Int?) throws -> HostTensor {
        guard q.rank == 4, k.rank == 4, v.rank == 4 else { throw ReferenceError("sdpa needs rank-4 q/k/v, got \(q.shape) \(k.shape) \(v.shape)") }
        let (b, hq, t, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let hkv = k.shape[1], sAll = k.shape[2], dv = v.shape[3]
        guard k.shape[0] == b, v.shape[0] == b, k.shape[3] == dk, v.shape[1] == hkv, v.shape[2] == sAll, hkv > 0, hq % hkv == 0 else {
            throw ReferenceError("sdpa shapes do not agree: q \(q.shape), k \(k.shape), v \(v.shape)")
        }
        let s = min(keyCount ?? sAll, sAll)
        let offset = queryOffset ?? (s - t)
        let fullMask = try mask.map { try Broadcast.expand($0, to: [b, hq, t, mask!.shape.last ?? s]) }
        if let m = fullMask, m.shape[3] < s { throw ReferenceError("sdpa mask covers \(m.shape[3]) keys, \(s) needed") }
        var out = [Double](repeating: 0, count: b * hq * t * dv)
        var scores = [Double](repeating: 0, count: s)
        for bi in 0..<b {
            for h in 0..<hq {
                let kh = h / (hq / hkv)
                for i in 0..<t {
                    var m = -Double.infinity
                    for j in 0..<s {
                        var dot = 0.0
                        let qBase = ((bi * hq + h) * t + i) * dk, kBase = ((bi * hkv + kh) * sAll + j) * dk
                        for c in 0..<dk { dot += q.storage[qBase + c] * k.storage[kBase + c] }
                        var score = dot * scale
                        if causal && j > offset + i { score = -.infinity }
                        if let fm = fullMask {
                            let mv = fm.storage[((bi * hq + h) * t + i) * fm.shape[3] + j]
                            if fm.dtype == .bool { if mv == 0 { score = -.infinity } } else { score += mv }
                        }
                        scores[j] = score
                        m = max(m, score)
                    }
                    var sum = 0.0
                    for j in 0..<s {
                        scores[j] = m == -.infinity ? 0 : Foundation.exp(scores[j] - m)
                        sum += scores[j]
                    }
                    let oBase = ((bi * hq + h) * t + i) * dv
                    for j in 0..<s where scores[j] != 0 {
                        let p = scores[j] / sum
                        let vBase = ((bi * hkv + kh) * sAll + j) * dv
                        for c in 0..<dv { out[oBase + c] += p * v.storage[vBase + c] }
                    }
                }
            }
        }
        return HostTensor(dtype: q.dtype, shape: [b, hq, t, dv], storage: out)
    }

    /// `llama::custom_sdpa` on BSHD tensors with the whole cache as k/v: attends to keys
    /// [0, start_pos + T) — or to the mask's width when a mask is given.
    func customSDPA(_ o: LlamaCustomSdpaOp) throws -> HostTensor {
        let q = try tensor(o.q), k = try tensor(o.k), v = try tensor(o.v)
        guard q.rank == 4, k.rank == 4, v.rank == 4 else { throw ReferenceError("custom_sdpa needs [B, S, H, D] tensors") }
        let start = try int(o.startPos)
        let t = q.shape[1]
        let mask = try optional(o.attnMask)
        let keys = mask?.shape.last ?? (start + t)
        guard keys <= k.shape[1] else { throw ReferenceError("custom_sdpa: start_pos \(start) + \(t) tokens exceed the cache length \(k.shape[1])") }
        let perm = [0, 2, 1, 3]
        let scale = o.scale ?? 1 / Double(q.shape[3]).squareRoot()
        var maskBHTS: HostTensor? = nil
        if let mask {
            // [T, S] or [B, T, S] or [B, 1, T, S]: broadcast over heads.
            let padded = [Int](repeating: 1, count: max(0, 4 - mask.rank)) + mask.shape
            maskBHTS = mask.reshaped(padded)
        }
        let y = try Self.attention(q: Self.permute(q, perm), k: Self.permute(k, perm), v: Self.permute(v, perm), scale: scale,
                                   mask: maskBHTS, causal: o.isCausal, keyCount: keys, queryOffset: start)
        return Self.permute(y, perm)
    }

    static func permute(_ x: HostTensor, _ perm: [Int]) -> HostTensor {
        let shape = perm.map { x.shape[$0] }
        let srcStrides = x.strides
        var out = [Double](repeating: 0, count: x.count)
        var index = [Int](repeating: 0, count: shape.count)
        for flat in 0..<x.count {
            var src = 0
            for d in 0..<shape.count { src += index[d] * srcStrides[perm[d]] }
            out[flat] = x.storage[src]
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return HostTensor(dtype: x.dtype, shape: shape, storage: out)
    }

    /// `dst` with the slices at `positions` along `axis` replaced by consecutive slices of `rows`.
    static func writeRows(_ dst: HostTensor, _ rows: HostTensor, axis: Int, positions: [Int], what: String) throws -> HostTensor {
        let (outer, size, inner) = Broadcast.around(dst.shape, axis: axis)
        let (rOuter, rSize, rInner) = Broadcast.around(rows.shape, axis: axis)
        guard rOuter == outer, rInner == inner, rSize == positions.count else {
            throw ReferenceError("\(what): rows \(rows.shape) do not fit \(dst.shape) along axis \(axis)")
        }
        var out = dst
        for (r, p) in positions.enumerated() {
            guard p >= 0, p < size else { throw ReferenceError("\(what): position \(p) is outside 0..<\(size)") }
            for o in 0..<outer {
                for i in 0..<inner { out.storage[(o * size + p) * inner + i] = rows.storage[(o * rSize + r) * inner + i] }
            }
        }
        return out
    }
}
