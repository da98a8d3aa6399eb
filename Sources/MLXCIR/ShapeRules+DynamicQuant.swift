/// `dynamic_quant_linear`: x f32 [..., K], w u32 [N, K/8] (bits 4) or i8 [N, K] (bits 8), scales f32
/// [N, K / group_size] → f32 [..., N].
extension ShapeRules {
    static func dynamicQuantLinear(_ o: DynamicQuantLinearOp, _ e: Env) throws -> TensorType {
        let op = "dynamic_quant_linear"
        let x = try e.t(o.x), w = try e.t(o.w), s = try e.t(o.scales)
        guard x.dtype == .f32, x.rank >= 1 else { throw fail(op, "x \(x.dtype.name)\(text(x.shape)) is not f32 [..., K]") }
        guard o.bits == 4 || o.bits == 8 else { throw fail(op, "bits \(o.bits) (4 or 8)") }
        let codes: DType = o.bits == 4 ? .u32 : .i8
        guard w.dtype == codes, w.rank == 2 else {
            throw fail(op, "w \(w.dtype.name)\(text(w.shape)) is not \(codes.name) [N, \(o.bits == 4 ? "K/8" : "K")]")
        }
        guard s.dtype == .f32, s.rank == 2 else { throw fail(op, "scales \(s.dtype.name)\(text(s.shape)) are not f32 [N, groups]") }
        guard o.groupSize > 0 else { throw fail(op, "group_size \(o.groupSize)") }
        // With a static K (symbolic sizes are left to the run): groups divide it, x ends in it.
        if let packed = w.shape[1].fixedValue {
            let k = o.bits == 4 ? packed * 8 : packed
            guard k % o.groupSize == 0 else { throw fail(op, "group_size \(o.groupSize) does not divide K = \(k)") }
            if let groups = s.shape[1].fixedValue, groups != k / o.groupSize {
                throw fail(op, "scales \(text(s.shape)) do not have K / group_size = \(k / o.groupSize) columns")
            }
            if let xk = x.shape.last?.fixedValue, xk != k { throw fail(op, "x \(text(x.shape)) does not end in K = \(k)") }
        }
        return TensorType(.f32, Array(x.shape.dropLast()) + [w.shape[0]])
    }
}
