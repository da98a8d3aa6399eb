import MLXCIR

/// ExecuTorch's dim-order ops (`dim_order_ops::*`, executorch/exir/passes/dim_order_ops_registry.py),
/// which programs exported without `_skip_dim_order` carry instead of `aten::_to_copy` / `clone` /
/// `empty`: `.to(dtype)`, `.contiguous()`, `.clone()` and `torch.empty`. Their `dim_order` argument
/// is the memory layout of the result (the values are the same): a contiguous order (or none) is
/// the graph's own row-major layout, so they become dtype conversions, copies and fills; a permuted
/// order (channels-last) would change how the result's bytes are laid out, which values here
/// cannot express, so it is refused, naming the op and the order.
extension PlanImporter {
    static var dimOrderTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        // _to_dim_order_copy.out(Tensor self, *, bool non_blocking=False, int[]? dim_order=None, Tensor(a!) out)
        t["dim_order_ops::_to_dim_order_copy.out"] = { imp, a in
            try imp.arity(a, 2, "_to_dim_order_copy")
            let x = try imp.read(a[0])
            let out = try imp.write(a.last!)
            try imp.requireContiguous(a.count >= 4 ? a[2] : nil, of: out, "dim_order_ops::_to_dim_order_copy.out")
            guard let dt = imp.graph.type(out)?.dtype else { throw imp.fail("_to_dim_order_copy output has no dtype") }
            if imp.graph.type(x)?.dtype == dt {
                imp.emit(.idCopy(IdCopyOp(x: x, out: out)))
            } else {
                imp.emit(.asType(AsTypeOp(x: x, out: out, scalarType: dt)))
            }
        }
        // _clone_dim_order.out(Tensor self, *, bool non_blocking=False, int[]? dim_order=None, Tensor(a!) out)
        t["dim_order_ops::_clone_dim_order.out"] = { imp, a in
            try imp.arity(a, 2, "_clone_dim_order")
            let x = try imp.read(a[0])
            let out = try imp.write(a.last!)
            try imp.requireContiguous(a.count >= 4 ? a[2] : nil, of: out, "dim_order_ops::_clone_dim_order.out")
            imp.emit(.idCopy(IdCopyOp(x: x, out: out)))
        }
        // _empty_dim_order.out(int[] size, *, int[]? dim_order=None, Tensor(a!) out): unspecified values; zeros.
        t["dim_order_ops::_empty_dim_order.out"] = { imp, a in
            try imp.arity(a, 2, "_empty_dim_order")
            let out = try imp.write(a.last!)
            try imp.requireContiguous(a.count >= 3 ? a[1] : nil, of: out, "dim_order_ops::_empty_dim_order.out")
            guard let dt = imp.graph.type(out)?.dtype else { throw imp.fail("_empty_dim_order output has no dtype") }
            imp.emit(.full(FullOp(out: out, shape: try imp.intList(a[0]), v: .literal(0), scalarType: dt)))
        }
        return t
    }

    /// Refuses a `dim_order` argument that is not the identity permutation (None is contiguous).
    func requireContiguous(_ slot: Int?, of out: ValueID, _ op: String) throws {
        guard let slot else { return }
        let order = try literalInts(slot)
        if order.isEmpty { return }
        let rank = graph.type(out)?.rank ?? order.count
        guard order != Array(0..<rank) else { return }
        throw fail("\(op): dim_order \(order) (a permuted memory layout of a rank-\(rank) result) is not supported; only the contiguous order \(Array(0..<rank)) is")
    }
}
