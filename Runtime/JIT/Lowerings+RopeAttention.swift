import MLXCCodegen
import MLXCIR

/// `rope_attention` (fuse-rope-attention's op) → one `RopeAttentionKernels` kernel: q, k and v
/// that are head swaps of [B, T, H, D] projections are read through, an output head swap that is
/// the output's only reader is written through, and both caches are written in place. A call the
/// kernel cannot take (duplicate or out-of-range indices, a mask that does not broadcast, …) runs
/// the transposes and the op's unfused form on the reference.
extension Lowerings {
    static func ropeAttention(_ o: RopeAttentionOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard o.outs.count == 3, o.outs[1] == o.kCache, o.outs[2] == o.vCache, o.kCache != o.vCache,
              writableInPlace(o.kCache, out: o.outs[1], c), writableInPlace(o.vCache, out: o.outs[2], c),
              let (dtype, t) = sharedActivation([o.q, o.k, o.v, o.kCache, o.vCache], c),
              let (mask, maskDType, maskType) = maskKind(o.mask, c),
              let dk = lastDim(o.kCache, c), let dv = lastDim(o.vCache, c), dk > 0, dv > 0,
              o.ropeDims >= 0, o.ropeDims % 2 == 0, o.ropeDims <= dk else { return nil }   // 0: no RoPE (fuse-kv-attention)
        let indexDType = c.dtype(o.indices) ?? .i64
        guard indexDType == .i64 || indexDType == .i32, let it = ElementType(indexDType) else { return nil }
        var freqsDType: DType? = nil, ft: ElementType? = nil
        if let freqs = o.freqs {
            guard let (d, e) = activation(freqs, c) else { return nil }
            (freqsDType, ft) = (d, e)
        }
        var tableDType: DType? = nil, tt: ElementType? = nil
        if let cosT = o.cosTable, let sinT = o.sinTable {
            guard o.tableStop != nil, let (d, e) = activation(cosT, c), c.dtype(sinT) ?? .f32 == d,
                  c.type(cosT)?.shape.last?.fixedValue == o.ropeDims / 2 else { return nil }
            (tableDType, tt) = (d, e)
        } else if o.cosTable != nil || o.sinTable != nil || o.tableStop != nil {
            return nil
        }
        let rope = RopeAttentionKernels.Rope(dims: o.ropeDims, traditional: o.traditional, base: o.base, scale: o.ropeScale,
                                             freqs: tt == nil ? ft : nil, table: tt)
        let definition = RopeAttentionKernels.ropeAttention(dk: dk, dv: dv, rope: rope, mask: mask, causal: o.causal, scale: o.scale,
                                                            index: it, lanes: c.lanes, t, maskType: maskType)
        let swaps = [o.q, o.k, o.v].map { headSwap($0, c) }
        let out = o.outs[0]
        var outSwap: (out: ValueID, node: Node)? = nil
        if c.useCounts[out] == 1, !c.graph.outputs.contains(out), let reader = c.readers(out).first,
           case .transpose(let tr) = reader.op, tr.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 2, 1, 3] {
            outSwap = (tr.out, reader)
        }
        var operands = zip([o.q, o.k, o.v], swaps).map { $1?.source ?? $0 } + [o.kCache, o.vCache, o.indices, o.offset]
        var operandDTypes: [DType?] = [dtype, dtype, dtype, dtype, dtype, indexDType, nil]
        if let m = o.mask { operands.append(m); operandDTypes.append(maskDType) }
        if let f = o.freqs, tt == nil { operands.append(f); operandDTypes.append(freqsDType) }
        if tt != nil, let cosT = o.cosTable, let sinT = o.sinTable, let stop = o.tableStop {
            operands += [cosT, sinT, stop]
            operandDTypes += [tableDType, tableDType, nil]
        }
        let tableAt = tt == nil ? nil : operands.count - 3
        var absorbs = Set(zip([o.q, o.k, o.v], swaps).compactMap { $1 == nil ? nil : $0 })
        if let outSwap { absorbs.insert(outSwap.out) }
        let fallbackNodes = swaps.compactMap { $0?.node } + [node] + (outSwap.map { [$0.node] } ?? [])
        let swapped = swaps.map { $0 != nil }
        return launch(definition, node, operands: operands, results: [outSwap?.out ?? out, o.kCache, o.vCache],
                      resultDTypes: [dtype, dtype, dtype], operandDTypes: operandDTypes, grain: 1, inPlace: [1: 3, 2: 4],
                      scalars: [6] + (tableAt.map { [$0 + 2] } ?? []), check: { inputs in distinctPositions(inputs[5], axisSize: inputs[3].shape.count == 4 ? inputs[3].shape[2] : 0) },
                      absorbs: absorbs, fallbackNodes: absorbs.isEmpty ? nil : fallbackNodes) { inputs in
            let kCache = inputs[3], vCache = inputs[4], indices = inputs[5], offset = inputs[6]
            guard inputs[0].shape.count == 4, inputs[1].shape.count == 4, inputs[2].shape.count == 4,
                  kCache.shape.count == 4, vCache.shape.count == 4, indices.shape.count == 1, offset.count == 1,
                  ![.f32, .f16, .bf16, .f64].contains(offset.dtype),
                  inputs[0].shape[3] == dk, inputs[1].shape[3] == dk, inputs[2].shape[3] == dv,
                  kCache.shape[3] == dk, vCache.shape[3] == dv else { return nil }
            if o.freqs != nil && tt == nil && inputs[inputs.count - 1].count != o.ropeDims / 2 { return nil }
            if let at = tableAt {
                // Table rows [offset, stop) must be the T new positions, inside the tables.
                let cosT = inputs[at], sinT = inputs[at + 1], stop = inputs[at + 2]
                guard cosT.shape.count == 2, cosT.shape == sinT.shape, cosT.shape[1] == o.ropeDims / 2, stop.count == 1,
                      ![.f32, .f16, .bf16, .f64].contains(stop.dtype), offset.intValue() >= 0,
                      stop.intValue() - offset.intValue() == inputs[0].shape[swapped[0] ? 1 : 2],
                      stop.intValue() <= cosT.shape[0] else { return nil }
            }
            let q = headLayout(inputs[0], swapped: swapped[0]), k = headLayout(inputs[1], swapped: swapped[1])
            let v = headLayout(inputs[2], swapped: swapped[2])
            let (b, hq, t) = (q.b, q.h, q.r)
            let (hkv, s) = (kCache.shape[1], kCache.shape[2])
            guard kCache.shape[0] == b, vCache.shape[0] == b, vCache.shape[1] == hkv, vCache.shape[2] == s,
                  k.b == b, k.h == hkv, k.r == t, v.b == b, v.h == hkv, v.r == t, indices.count == t,
                  hkv > 0, hq % hkv == 0, t <= s else { return nil }
            var maskDims: [Int64] = [0, 0, 0]
            if o.mask != nil {
                guard let m = maskStrides(inputs[7], [b, hq, t], keys: s) else { return nil }
                maskDims = m
            }
            let outShape = outSwap == nil ? [b, hq, t, dv] : [b, t, hq, dv]
            let outStrides = outSwap == nil ? [hq * t * dv, t * dv, dv] : [t * hq * dv, dv, hq * dv]
            let dims: [Int64] = [Int64(hq), Int64(hkv), Int64(t), Int64(s), Int64(offset.intValue())] + q.strides + k.strides + v.strides
                + outStrides.map { Int64($0) } + maskDims
            return CallLayout(shapes: [outShape, kCache.shape, vCache.shape], dims: dims, work: b * hkv)
        }
    }

    /// A transpose that a `rope_attention` kernel reads (or writes) through: no kernel of its own.
    static func foldedIntoRopeAttention(_ o: TransposeOp, _ c: LoweringContext) -> Bool {
        let neighbours = (c.useCounts[o.out] == 1 ? c.readers(o.out) : []) + [c.definingNode(o.x)].compactMap { $0 }
        return neighbours.contains { n in
            guard case .ropeAttention(let r) = n.op else { return false }
            return ropeAttention(r, n, c)?.absorbs.contains(o.out) ?? false
        }
    }
}
