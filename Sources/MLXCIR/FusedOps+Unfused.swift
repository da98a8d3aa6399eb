/// The unfused form of every op a fusion pass makes: the ops it replaced, in order. It is the
/// definition of the fused op — the reference executor runs it, and the fused kernels are tested
/// against it — and the fallback when a fused kernel cannot take a call.
public enum FusedOps {
    /// `temp(i)` names the i-th intermediate value (values the caller allocates or keeps private).
    public static func unfused(_ op: Op, temp: (Int) -> ValueID) -> [Op]? {
        switch op {
        case .fusedQuantizedLinear(let o):
            func linear(_ i: Int, _ out: ValueID) -> Op {
                .quantizedMatmul(QuantizedMatmulOp(x: o.x, w: o.w[i], scales: o.scales[i], out: out, biases: o.biases[i],
                                                   groupSize: o.groupSize, bits: o.bits, mode: "affine", transpose: true))
            }
            var ops: [Op] = []
            let product: ValueID
            switch o.epilogue {
            case "swiglu":
                guard o.w.count == 2, o.outs.count == 1 else { return nil }
                product = o.residual == nil ? o.outs[0] : temp(3)
                ops = [linear(0, temp(0)), linear(1, temp(1)), .silu(SiluOp(x: temp(0), out: temp(2))),
                       .multiply(MultiplyOp(a: temp(2), b: temp(1), out: product))]
            default:
                guard o.outs.count == o.w.count, o.residual == nil || o.w.count == 1 else { return nil }
                product = o.residual == nil ? o.outs[0] : temp(0)
                ops = o.w.indices.map { linear($0, $0 == 0 ? product : o.outs[$0]) }
            }
            if let residual = o.residual { ops.append(.add(AddOp(a: residual, b: product, out: o.outs[0]))) }
            return ops
        case .fusedLinear(let o):
            return unfusedLinear(o, temp: temp)
        case .ropeAttention(let o):
            guard o.outs.count == 3 else { return nil }
            func rope(_ x: ValueID, _ out: ValueID) -> Op {
                if let c = o.cosTable, let s = o.sinTable, let stop = o.tableStop {
                    return .ropeTable(RopeTableOp(x: x, cos: c, sin: s, start: o.offset, stop: stop, traditional: o.traditional, out: out))
                }
                return .rope(RopeOp(x: x, out: out, dims: o.ropeDims, offset: o.offset, freqs: o.freqs, traditional: o.traditional,
                             base: o.base, scale: o.ropeScale))
            }
            // rope_dims 0 without tables: no rotation (fuse-kv-attention: attention over a cache without RoPE).
            let rotated = o.ropeDims > 0 || o.cosTable != nil
            let (q, k) = rotated ? (temp(0), temp(1)) : (o.q, o.k)
            return (rotated ? [rope(o.q, q), rope(o.k, k)] : []) + [
                    .indexCopy(IndexCopyOp(dst: o.kCache, update: k, indices: o.indices, out: o.outs[1], axis: 2)),
                    .indexCopy(IndexCopyOp(dst: o.vCache, update: o.v, indices: o.indices, out: o.outs[2], axis: 2)),
                    .sdpa(SdpaOp(q: q, k: o.outs[1], v: o.outs[2], out: o.outs[0], scale: o.scale, mask: o.mask, causal: o.causal))]
        default:
            return nil
        }
    }
}
