import MLXCIR

/// LLM ops of plain exports: KV-cache writes (index_put + copy_, llama::update_cache), the fused
/// `llama::custom_sdpa`, and ExecuTorch's quantized embeddings.
extension PlanImporter {
    static var llmTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["aten::index_put.out"] = { imp, a in
            // (self, indices: Tensor?[], values, accumulate, out)
            try imp.arity(a, 5, "index_put")
            let x = try imp.read(a[0])
            let indices = try imp.tensorList(a[1])
            let given = indices.enumerated().filter { $0.element != nil }
            imp.emit(.indexPut(IndexPutOp(x: x, indices: given.map { $0.element! }, indexAxes: given.map { $0.offset },
                                          values: try imp.read(a[2]), accumulate: try imp.boolArg(a[3]),
                                          out: try imp.write(a.last!))))
        }
        t["aten::index_put_"] = { imp, a in
            try imp.arity(a, 4, "index_put_")
            let x = try imp.read(a[0])
            let given = try imp.tensorList(a[1]).enumerated().filter { $0.element != nil }
            imp.emit(.indexPut(IndexPutOp(x: x, indices: given.map { $0.element! }, indexAxes: given.map { $0.offset },
                                          values: try imp.read(a[2]), accumulate: try imp.boolArg(a[3]), out: x)))
            imp.current[a.last!] = x
        }
        t["aten::copy_"] = { imp, a in
            // (self!, src, non_blocking) -> self: writes src into self (state) in place.
            try imp.arity(a, 3, "copy_")
            let dst = try imp.read(a[0])
            imp.emit(.copyInto(CopyIntoOp(dst: dst, src: try imp.read(a[1]), out: dst)))
            if a.count > 3 { imp.current[a.last!] = dst }
        }
        t["aten::copy.out"] = { imp, a in
            // (self, src, non_blocking, out): a copy of src with self's shape and dtype.
            try imp.arity(a, 4, "copy.out")
            imp.emit(.copyInto(CopyIntoOp(dst: try imp.read(a[0]), src: try imp.read(a[1]), out: try imp.write(a.last!))))
        }
        t["llama::update_cache.out"] = { imp, a in
            // (value, cache!, start_pos, out): the out tensor is a dummy; the cache is written in place.
            try imp.arity(a, 4, "update_cache")
            let cache = try imp.read(a[1])
            imp.emit(.llamaUpdateCache(LlamaUpdateCacheOp(value: try imp.read(a[0]), cache: cache, startPos: try imp.intArg(a[2]), out: cache)))
            imp.current[a.last!] = cache
        }
        t["llama::update_cache_with_indices.out"] = { imp, a in
            try imp.arity(a, 5, "update_cache_with_indices")
            let cache = try imp.read(a[1])
            imp.emit(.llamaUpdateCacheWithIndices(LlamaUpdateCacheWithIndicesOp(
                value: try imp.read(a[0]), cache: cache, startPos: try imp.intArg(a[2]), indices: try imp.read(a[3]), out: cache)))
            imp.current[a.last!] = cache
        }
        t["llama::custom_sdpa.out"] = { imp, a in
            // (q, k, v, start_pos, attn_mask?, dropout_p, is_causal, scale?, out)
            try imp.arity(a, 9, "custom_sdpa")
            imp.emit(.llamaCustomSdpa(LlamaCustomSdpaOp(
                q: try imp.read(a[0]), k: try imp.read(a[1]), v: try imp.read(a[2]), startPos: try imp.intArg(a[3]),
                attnMask: try imp.optionalTensor(a[4]), dropoutP: try imp.doubleArg(a[5]), isCausal: try imp.boolArg(a[6]),
                scale: try imp.optionalDouble(a[7]), out: try imp.write(a.last!))))
        }
        for (name, bits) in [("embedding_byte", 8), ("embedding_4bit", 4), ("embedding_2bit", 2)] {
            // (weight, scales, zero_points?, quant_min, quant_max, indices, [dtype,] out)
            let make: (Bool) -> ATenTranslator = { hasDType in
                { imp, a in
                    try imp.arity(a, hasDType ? 8 : 7, name)
                    let out = try imp.write(a.last!)
                    imp.emit(.quantizedEmbedding(QuantizedEmbeddingOp(
                        weight: try imp.read(a[0]), scales: try imp.read(a[1]), zeroPoints: try imp.optionalTensor(a[2]),
                        quantMin: try imp.literalInt(a[3]), quantMax: try imp.literalInt(a[4]), bits: bits,
                        indices: try imp.read(a[5]), dtype: hasDType ? try imp.optionalDType(a[6]) : nil, out: out)))
                }
            }
            t["quantized_decomposed::\(name).out"] = make(false)
            t["quantized_decomposed::\(name).dtype_out"] = make(true)
        }
        return t
    }
}
