/// Shape rules of the plain-export weight dequantization (`dequantize_affine`) and of the load-time
/// repack into MLX's affine layout (`pack_affine_weight`).
extension ShapeRules {
    /// x's shape in `dtype` (f32 when absent); block_size has one entry per axis of x.
    static func dequantizeAffine(_ o: DequantizeAffineOp, _ e: Env) throws -> TensorType {
        let x = try e.t(o.x), scale = try e.t(o.scale)
        guard o.blockSize.count == x.rank else {
            throw fail("dequantize_affine", "block_size \(o.blockSize) does not have one entry per axis of \(text(x.shape))")
        }
        guard o.blockSize.allSatisfy({ $0 > 0 }) else { throw fail("dequantize_affine", "block_size \(o.blockSize) must be positive") }
        var blocks = 1
        var known = true
        for (d, b) in zip(x.shape, o.blockSize) {
            guard case .fixed(let n) = d else { known = false; continue }
            guard n % b == 0 else { throw fail("dequantize_affine", "axis of \(n) does not split into blocks of \(b) (x \(text(x.shape)))") }
            blocks *= n / b
        }
        if known, let s = count(scale.shape).exact, s != blocks {
            throw fail("dequantize_affine", "scale \(text(scale.shape)) holds \(s) elements, \(blocks) blocks of x \(text(x.shape)) need one each")
        }
        if known, let z = try e.t(o.zeroPoint), let n = count(z.shape).exact, n != blocks {
            throw fail("dequantize_affine", "zero_point \(text(z.shape)) holds \(n) elements, \(blocks) blocks need one each")
        }
        return TensorType(o.dtype ?? .f32, x.shape)
    }

    /// [w u32 [N, K·bits/32], scales f32 [N, K/g], biases f32 [N, K/g]] from q [N, K].
    static func packAffineWeight(_ o: PackAffineWeightOp, _ e: Env) throws -> [TensorType?] {
        let q = try e.t(o.q)
        guard q.rank == 2 else { throw fail("pack_affine_weight", "codes must be 2-D, got \(text(q.shape))") }
        guard [2, 4, 8].contains(o.bits) else { throw fail("pack_affine_weight", "\(o.bits) bits is not supported (2, 4 or 8)") }
        guard o.groupSize > 0, o.outs.count == 3 else { throw fail("pack_affine_weight", "group size \(o.groupSize), \(o.outs.count) results (3 needed)") }
        let n = q.shape[0]
        guard case .fixed(let k) = q.shape[1] else {
            // A run-time column count (symbolic shapes): the results' widths follow it; checked when run.
            let groups = Dim.dynamic(min: 0, max: q.shape[1].upperBound.map { $0 / o.groupSize })
            let params = TensorType(.f32, [n, groups])
            return [TensorType(.u32, [n, .dynamic(min: 0, max: q.shape[1].upperBound.map { $0 * o.bits / 32 })]), params, params]
        }
        guard k % o.groupSize == 0, (k * o.bits) % 32 == 0 else {
            throw fail("pack_affine_weight", "\(k) columns do not split into groups of \(o.groupSize) and whole words")
        }
        let params = TensorType(.f32, [n, .fixed(k / o.groupSize)])
        return [TensorType(.u32, [n, .fixed(k * o.bits / 32)]), params, params]
    }
}
