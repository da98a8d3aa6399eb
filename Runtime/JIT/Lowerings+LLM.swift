import Foundation
import MLXCCodegen
import MLXCIR

/// LLM ops → row kernels: RMSNorm/LayerNorm (specialized on the feature size), softmax over the
/// last axis, RoPE (specialized on its static attributes) and attention with an online softmax
/// (specialized on the head sizes; BHSD `sdpa` and BSHD `llama::custom_sdpa` share the kernel).
/// Activations may be f32, bf16 or f16 (computed in f32, results in x's or q's dtype).
extension Lowerings {
    static func llm(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        switch node.op {
        case .rmsNorm(let o): return norm(node, c, x: o.x, weight: o.weight, bias: nil, eps: o.eps, out: o.out, centered: false)
        case .layerNorm(let o): return norm(node, c, x: o.x, weight: o.weight, bias: o.bias, eps: o.eps, out: o.out, centered: true)
        case .softmax(let o): return softmax(o, node, c)
        case .rope(let o): return rope(o, node, c)
        case .ropeTable(let o): return ropeTable(o, node, c)
        case .sdpa(let o): return sdpa(o, node, c)
        case .llamaCustomSdpa(let o): return customSDPA(o, node, c)
        default: return nil
        }
    }

    static func isF32(_ v: ValueID?, _ c: LoweringContext) -> Bool { v.map { c.dtype($0) ?? .f32 == .f32 } ?? true }

    /// The float activation dtype (f32, bf16, f16) of `v`, inferred (f32 when unknown, checked per call).
    static func activation(_ v: ValueID, _ c: LoweringContext) -> (DType, ElementType)? {
        let d = c.dtype(v) ?? .f32
        guard let t = ElementType(d), ElementType.activations.contains(t) else { return nil }
        return (d, t)
    }

    /// The one activation dtype all of `values` share (the parameters of a norm, q/k/v).
    static func sharedActivation(_ values: [ValueID], _ c: LoweringContext) -> (DType, ElementType)? {
        let known = Set(values.compactMap { c.dtype($0) })
        guard known.count <= 1 else { return nil }
        let d = known.first ?? .f32
        guard let t = ElementType(d), ElementType.activations.contains(t) else { return nil }
        return (d, t)
    }

    static func norm(_ node: Node, _ c: LoweringContext, x: ValueID, weight: ValueID?, bias: ValueID?, eps: Double,
                     out: ValueID, centered: Bool) -> LoweredKernel? {
        let params = [weight, bias].compactMap { $0 }
        guard let (xDType, t) = activation(x, c) else { return nil }
        // Weight and bias share one dtype (defaulting to x's when the weight's type is unknown).
        guard let (pDType, p) = params.isEmpty ? (xDType, t) : sharedActivation(params, c).map({ c.dtype(params[0]) == nil ? (xDType, t) : $0 })
        else { return nil }
        // The feature size: from the parameters' static shapes, else x's last dim.
        let sizes = [weight, bias].compactMap { $0 }.compactMap { staticShape($0, c)?.reduce(1, *) }
        guard let d = sizes.first ?? lastDim(x, c), d > 0, sizes.allSatisfy({ $0 == d }) else { return nil }
        let definition = centered
            ? NormKernels.layer(d: d, eps: eps, hasWeight: weight != nil, hasBias: bias != nil, lanes: c.lanes, t, params: p)
            : NormKernels.rms(d: d, eps: eps, hasWeight: weight != nil, lanes: c.lanes, t, params: p)
        let operands = [x] + params
        return launch(definition, node, operands: operands, results: [out], resultDTypes: [xDType],
                      operandDTypes: [xDType] + params.map { _ in pDType }, grain: max(1, 4096 / d)) { inputs in
            let x = inputs[0]
            guard x.shape.last == d, inputs.dropFirst().allSatisfy({ $0.count == d }) else { return nil }
            return CallLayout(shapes: [x.shape], dims: [], work: x.count / d)
        }
    }

    static func softmax(_ o: SoftmaxOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c) else { return nil }
        let definition = SoftmaxKernels.lastAxis(lanes: c.lanes, t)
        return launch(definition, node, operands: [o.x], results: [o.out], resultDTypes: [dtype], operandDTypes: [dtype],
                      grain: 4) { inputs in
            let x = inputs[0]
            guard let a = try? Broadcast.axis(o.axis, rank: x.shape.count), a == x.shape.count - 1, let d = x.shape.last, d > 0 else { return nil }
            return CallLayout(shapes: [x.shape], dims: [Int64(d)], work: x.count / d)
        }
    }

    static func rope(_ o: RopeOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c), o.dims > 0, o.dims % 2 == 0 else { return nil }
        // x = transpose(q [B, T, H, D]) is read through: the kernel takes q itself.
        let swap = headSwap(o.x, c)
        var operands = [swap?.source ?? o.x, o.offset]
        var freqsDType = DType.f32, ft = ElementType.f32
        if let freqs = o.freqs {
            guard let (d, e) = activation(freqs, c) else { return nil }
            (freqsDType, ft) = (d, e)
            operands.append(freqs)
        }
        let definition = RopeKernels.rope(RopeRotation.Rope(dims: o.dims, traditional: o.traditional, base: o.base, scale: o.scale,
                                                            freqs: o.freqs == nil ? nil : ft), lanes: c.lanes, t)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, nil] + (o.freqs == nil ? [] : [freqsDType]), grain: 4, scalars: [1],
                      absorbs: swap == nil ? [] : [o.x], fallbackNodes: swap.map { [$0.node, node] }) { inputs in
            let x = inputs[0], offset = inputs[1]
            guard x.shape.count >= 2, let d = x.shape.last, o.dims <= d, offset.count == 1,
                  ![.f32, .f16, .bf16, .f64].contains(offset.dtype) else { return nil }
            if o.freqs != nil && inputs[2].count != o.dims / 2 { return nil }
            return ropeRows(x, swapped: swap != nil) { _ in offset.intValue() }
        }
    }

    /// The row kernel's layout for x (or the [B, T, H, D] tensor x reads through a head swap):
    /// output shape, dims [D, T, first position, H, sB, sH, sT], one work item per row.
    /// `first(T)`: the position of row 0, or nil if the call does not fit.
    static func ropeRows(_ x: NativeTensor, swapped: Bool, first: (Int) -> Int?) -> CallLayout? {
        guard let d = x.shape.last, d > 0 else { return nil }
        var shape = x.shape, t = x.shape[x.shape.count - 2]
        var strides: [Int64] = [1, Int64(t * d), 0, Int64(d)]   // H = 1: rows in order
        if swapped {
            guard let s = rowStrides(x, swapped: true) else { return nil }
            shape = [x.shape[0], x.shape[2], x.shape[1], d]
            t = x.shape[1]
            strides = s
        }
        guard let position = first(t) else { return nil }
        guard t > 0 else { return CallLayout(shapes: [shape], dims: [Int64(d), 1, 0] + strides, work: 0) }
        return CallLayout(shapes: [shape], dims: [Int64(d), Int64(t), Int64(position)] + strides, work: x.count / d)
    }

    /// `rope_table` → the RoPE row kernel reading cos/sin table rows [start, stop) (checked per call:
    /// stop − start = T and inside the tables, else the reference runs it).
    static func ropeTable(_ o: RopeTableOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = activation(o.x, c), let (tableDType, tt) = activation(o.cos, c), c.dtype(o.sin) ?? .f32 == tableDType,
              let h = c.type(o.cos)?.shape.last?.fixedValue, h > 0 else { return nil }
        let swap = headSwap(o.x, c)
        let rope = RopeRotation.Rope(dims: 2 * h, traditional: o.traditional, base: 1, scale: 1, freqs: nil, table: tt)
        let definition = RopeKernels.rope(rope, lanes: c.lanes, t)
        return launch(definition, node, operands: [swap?.source ?? o.x, o.start, o.stop, o.cos, o.sin], results: [o.out],
                      resultDTypes: [dtype], operandDTypes: [dtype, nil, nil, tableDType, tableDType], grain: 4, scalars: [1, 2],
                      absorbs: swap == nil ? [] : [o.x], fallbackNodes: swap.map { [$0.node, node] }) { inputs in
            let x = inputs[0], start = inputs[1], stop = inputs[2], cosT = inputs[3], sinT = inputs[4]
            guard x.shape.count >= 2, let d = x.shape.last, 2 * h <= d, start.count == 1, stop.count == 1,
                  ![.f32, .f16, .bf16, .f64].contains(start.dtype), ![.f32, .f16, .bf16, .f64].contains(stop.dtype),
                  cosT.shape.count == 2, cosT.shape == sinT.shape, cosT.shape[1] == h else { return nil }
            // Table rows [start, stop) must be the T positions, inside the tables.
            let first = start.intValue(), end = stop.intValue()
            return ropeRows(x, swapped: swap != nil) { t in first >= 0 && end - first == t && end <= cosT.shape[0] ? first : nil }
        }
    }

    /// How the kernel reads a mask: additive (f32, bf16 or f16, its element type) or a bool keep-mask.
    static func maskKind(_ mask: ValueID?, _ c: LoweringContext) -> (AttentionKernels.Mask, DType?, ElementType)? {
        guard let mask else { return (.none, nil, .f32) }
        switch c.dtype(mask) ?? .f32 {
        case .f32: return (.additive, .f32, .f32)
        case .bf16: return (.additive, .bf16, .bf16)
        case .f16: return (.additive, .f16, .f16)
        case .bool: return (.keep, .bool, .bool)
        default: return nil
        }
    }

    /// Strides (batch, head, row) that read `mask` broadcast to [B, Hq, T, ≥ keys] (rank ≤ 4,
    /// padded with leading 1s), as the reference expands it; nil if it does not broadcast.
    static func maskStrides(_ mask: NativeTensor, _ target: [Int], keys: Int) -> [Int64]? {
        guard (1...4).contains(mask.shape.count), let last = mask.shape.last, last >= keys else { return nil }
        let padded = [Int](repeating: 1, count: 4 - mask.shape.count) + mask.shape
        let strides = StridedLayout.rowMajor(padded)
        var result: [Int64] = []
        for d in 0..<3 {
            if padded[d] == target[d] { result.append(padded[d] == 1 ? 0 : Int64(strides[d])) }
            else if padded[d] == 1 { result.append(0) }
            else { return nil }
        }
        return result
    }

    /// [B, H, R, D] read as (batch, head, row) strides; `swapped`: the tensor is [B, R, H, D]
    /// (a head swap read through). Returns (B, H, R) and the strides.
    static func headLayout(_ t: NativeTensor, swapped: Bool) -> (b: Int, h: Int, r: Int, strides: [Int64]) {
        let (b, x, y, d) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        return swapped ? (b, y, x, [x * y * d, d, y * d].map { Int64($0) }) : (b, x, y, [x * y * d, y * d, d].map { Int64($0) })
    }

    static func sdpa(_ o: SdpaOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = sharedActivation([o.q, o.k, o.v], c), let (mask, maskDType, maskType) = maskKind(o.mask, c),
              let dk = lastDim(o.q, c) ?? lastDim(o.k, c), let dv = lastDim(o.v, c), dk > 0, dv > 0 else { return nil }
        // q, k, v that are head swaps of [B, S, H, D] tensors are read through, and a head swap that
        // is the only reader of the output is written through (the kernel produces its result).
        let swaps = [o.q, o.k, o.v].map { headSwap($0, c) }
        // Unmasked f32 attention whose query and key counts are fixed and long (an audio encoder's) takes
        // the long-sequence kernel (q and k are [B, H, T|S, D] as the op reads them).
        func fixedRows(_ v: ValueID) -> Int? { c.type(v).flatMap { $0.rank == 4 ? $0.shape[2].fixedValue : nil } }
        let long = mask == .none && !o.causal && t == .f32 && fixedRows(o.q).map { tq in
            fixedRows(o.k).map { LongAttentionKernels.suits(queryRows: tq, keys: $0, lanes: c.lanes) } ?? false } ?? false
        let definition = long ? LongAttentionKernels.sdpa(dk: dk, dv: dv, scale: o.scale, lanes: c.lanes)
            : AttentionKernels.sdpa(dk: dk, dv: dv, mask: mask, causal: o.causal, scale: o.scale, lanes: c.lanes, t, maskType: maskType)
        let lanes = c.lanes
        var outSwap: (out: ValueID, node: Node)? = nil
        if c.useCounts[o.out] == 1, !c.graph.outputs.contains(o.out), let reader = c.readers(o.out).first,
           case .transpose(let t) = reader.op, t.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 2, 1, 3] {
            outSwap = (t.out, reader)
        }
        let operands = zip([o.q, o.k, o.v], swaps).map { $1?.source ?? $0 } + (o.mask.map { [$0] } ?? [])
        var absorbs = Set(zip([o.q, o.k, o.v], swaps).compactMap { $1 == nil ? nil : $0 })
        if let outSwap { absorbs.insert(outSwap.out) }
        let fallbackNodes = swaps.compactMap { $0?.node } + [node] + (outSwap.map { [$0.node] } ?? [])
        let swapped = swaps.map { $0 != nil }
        return launch(definition, node, operands: operands, results: [outSwap?.out ?? o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype, dtype] + (o.mask == nil ? [] : [maskDType]), grain: 1,
                      absorbs: absorbs, fallbackNodes: absorbs.isEmpty ? nil : fallbackNodes) { inputs in
            guard inputs[0].shape.count == 4, inputs[1].shape.count == 4, inputs[2].shape.count == 4,
                  inputs[0].shape[3] == dk, inputs[1].shape[3] == dk, inputs[2].shape[3] == dv else { return nil }
            let q = headLayout(inputs[0], swapped: swapped[0]), k = headLayout(inputs[1], swapped: swapped[1])
            let v = headLayout(inputs[2], swapped: swapped[2])
            let (b, hq, t) = (q.b, q.h, q.r)
            let hkv = k.h, s = k.r
            guard k.b == b, v.b == b, v.h == hkv, v.r == s, hkv > 0, hq % hkv == 0 else { return nil }
            var maskDims: [Int64] = [0, 0, 0]
            if o.mask != nil {
                guard let m = maskStrides(inputs[3], [b, hq, t], keys: s) else { return nil }
                maskDims = m
            }
            let outShape = outSwap == nil ? [b, hq, t, dv] : [b, t, hq, dv]
            let outStrides = outSwap == nil ? [hq * t * dv, t * dv, dv] : [t * hq * dv, dv, hq * dv]
            let dims: [Int64] = [Int64(hq), Int64(hkv), Int64(t), Int64(s), Int64(s - t)] + q.strides + k.strides + v.strides
                + outStrides.map { Int64($0) } + maskDims
            let work = long ? LongAttentionKernels.workItems(batch: b, hq: hq, hkv: hkv, t: t, lanes: lanes)
                : AttentionKernels.workItems(batch: b, hq: hq, hkv: hkv, t: t)
            return CallLayout(shapes: [outShape], dims: dims, work: work)
        }
    }

    /// `llama::custom_sdpa` on BSHD tensors with the whole cache as k/v: queries sit at
    /// start_pos + i and attend to keys [0, start_pos + T), or to the mask's width.
    static func customSDPA(_ o: LlamaCustomSdpaOp, _ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        guard let (dtype, t) = sharedActivation([o.q, o.k, o.v], c), let (mask, maskDType, maskType) = maskKind(o.attnMask, c),
              let dk = lastDim(o.q, c) ?? lastDim(o.k, c), let dv = lastDim(o.v, c), dk > 0, dv > 0 else { return nil }
        let scale = o.scale ?? 1 / Double(dk).squareRoot()
        var operands = [o.q, o.k, o.v] + (o.attnMask.map { [$0] } ?? [])
        var scalars: [Int] = []
        let fixed = operands.count
        let start = scalarOperand(o.startPos, &operands, &scalars)
        let definition = AttentionKernels.sdpa(dk: dk, dv: dv, mask: mask, causal: o.isCausal, scale: scale, lanes: c.lanes,
                                               skip: operands.count - fixed, t, maskType: maskType)
        return launch(definition, node, operands: operands, results: [o.out], resultDTypes: [dtype],
                      operandDTypes: [dtype, dtype, dtype] + (o.attnMask == nil ? [] : [maskDType]) + scalars.map { _ in nil },
                      grain: 1, scalars: scalars) { inputs in
            let q = inputs[0], k = inputs[1], v = inputs[2]
            guard q.shape.count == 4, k.shape.count == 4, v.shape.count == 4 else { return nil }
            let (b, t, hq) = (q.shape[0], q.shape[1], q.shape[2])
            let sAll = k.shape[1], hkv = k.shape[2]
            let first = start(inputs)
            let keys = o.attnMask == nil ? first + t : (inputs[3].shape.last ?? 0)
            guard q.shape[3] == dk, k.shape[3] == dk, v.shape[3] == dv, k.shape[0] == b, v.shape[0] == b, v.shape[1] == sAll,
                  v.shape[2] == hkv, hkv > 0, hq % hkv == 0, keys >= 0, keys <= sAll else { return nil }
            var maskDims: [Int64] = [0, 0, 0]
            if o.attnMask != nil {
                guard let m = maskStrides(inputs[3], [b, hq, t], keys: keys) else { return nil }
                maskDims = m
            }
            let dims: [Int64] = [Int64(hq), Int64(hkv), Int64(t), Int64(keys), Int64(first)]
                + [t * hq * dk, dk, hq * dk].map { Int64($0) }
                + [sAll * hkv * dk, dk, hkv * dk].map { Int64($0) }
                + [sAll * hkv * dv, dv, hkv * dv].map { Int64($0) }
                + [t * hq * dv, dv, hq * dv].map { Int64($0) }
                + maskDims
            return CallLayout(shapes: [[b, t, hq, dv]], dims: dims, work: AttentionKernels.workItems(batch: b, hq: hq, hkv: hkv, t: t))
        }
    }
}
