import MLXCIR

/// View and layout ATen ops. The `_copy` variants copy in ExecuTorch; in the IR they are views,
/// and canonicalization decides what is materialized.
extension PlanImporter {
    static var shapeTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        let reshape: ATenTranslator = { imp, a in
            try imp.arity(a, 3, "view")
            imp.emit(.reshape(ReshapeOp(x: try imp.read(a[0]), out: try imp.write(a.last!), shape: try imp.intList(a[1]))))
        }
        t["aten::view_copy.out"] = reshape
        t["executorch_prim::et_view.default"] = reshape
        t["aten::_unsafe_view.out"] = reshape
        t["aten::reshape.out"] = reshape
        t["aten::permute_copy.out"] = { imp, a in
            try imp.arity(a, 3, "permute")
            let x = try imp.read(a[0])
            imp.emit(.transpose(TransposeOp(x: x, out: try imp.write(a.last!), perm: try imp.literalInts(a[1]).map { imp.axis($0, of: x) })))
        }
        t["aten::transpose_copy.int_out"] = { imp, a in
            try imp.arity(a, 4, "transpose")
            let x = try imp.read(a[0])
            guard let rank = imp.graph.type(x)?.rank else { throw imp.fail("transpose of a value of unknown rank") }
            var perm = Array(0..<rank)
            let d0 = imp.axis(try imp.literalInt(a[1]), of: x), d1 = imp.axis(try imp.literalInt(a[2]), of: x)
            guard perm.indices.contains(d0), perm.indices.contains(d1) else { throw imp.fail("transpose dims \(d0), \(d1) out of range for rank \(rank)") }
            perm.swapAt(d0, d1)
            imp.emit(.transpose(TransposeOp(x: x, out: try imp.write(a.last!), perm: perm)))
        }
        t["aten::t_copy.out"] = { imp, a in
            imp.emit(.transpose(TransposeOp(x: try imp.read(a[0]), out: try imp.write(a.last!), perm: [1, 0])))
        }
        t["aten::squeeze_copy.dims_out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.squeeze(SqueezeOp(x: x, out: try imp.write(a.last!), dims: try imp.literalInts(a[1]).map { imp.axis($0, of: x) })))
        }
        t["aten::squeeze_copy.dim_out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.squeeze(SqueezeOp(x: x, out: try imp.write(a.last!), dims: [imp.axis(try imp.literalInt(a[1]), of: x)])))
        }
        t["aten::squeeze_copy.out"] = { imp, a in
            imp.emit(.squeeze(SqueezeOp(x: try imp.read(a[0]), out: try imp.write(a.last!), dims: [])))
        }
        t["aten::unsqueeze_copy.out"] = { imp, a in
            let x = try imp.read(a[0])
            var d = try imp.literalInt(a[1])
            if d < 0, let rank = imp.graph.type(x)?.rank { d += rank + 1 }
            imp.emit(.expandDims(ExpandDimsOp(x: x, out: try imp.write(a.last!), axis: d)))
        }
        t["aten::expand_copy.out"] = { imp, a in
            try imp.arity(a, 3, "expand")
            let x = try imp.read(a[0])
            var shape = try imp.intList(a[1])
            // -1 keeps the input's size: take it from the type, or read it at run time. A tensor the plan marks
            // dynamic-bound is read at run time whatever its type says: its bound may be one derived from an input's
            // (a conformer's subsampled length, 1/8 of the mel frames), which the importer types as fixed.
            let rank = imp.graph.type(x)?.rank ?? shape.count
            var dynamicSlot = false
            if case .tensor(let t) = try imp.evalue(a[0]), t.dynamism != .staticShape { dynamicSlot = true }
            for (i, s) in shape.enumerated() where s == .literal(-1) {
                let inputDim = i - (shape.count - rank)
                if let n = imp.graph.type(x)?.shape[safe: inputDim]?.fixedValue, !dynamicSlot || n == 1 {
                    shape[i] = .literal(Int64(n))
                } else {
                    let size = imp.graph.addValue(TensorType(.i64, []), .computed)
                    imp.emit(.symSize(SymSizeOp(a: x, dim: inputDim, out: size)))
                    shape[i] = .value(size)
                }
            }
            imp.emit(.broadcastTo(BroadcastToOp(x: x, out: try imp.write(a.last!), shape: shape)))
        }
        t["aten::slice_copy.Tensor_out"] = { imp, a in
            try imp.arity(a, 6, "slice")
            let x = try imp.read(a[0])
            let dim = imp.axis(try imp.literalInt(a[1]), of: x)
            let start = try imp.optionalInt(a[2]) ?? .literal(0)
            let stop = try imp.optionalInt(a[3]) ?? .literal(Int64.max)
            imp.emit(.slice(SliceOp(x: x, out: try imp.write(a.last!), axis: .literal(Int64(dim)), start: start, stop: stop,
                                    step: try imp.literalInt(a[4]))))
        }
        // slice_scatter.out(self, src, dim, start?, end?, step, out): self with self[dim][start:end:step] = src —
        // what functionalization writes for an in-place op on a slice (`buffer[:b].mul_(keep)`).
        t["aten::slice_scatter.out"] = { imp, a in
            try imp.arity(a, 7, "slice_scatter")
            let x = try imp.read(a[0])
            let dim = imp.axis(try imp.literalInt(a[2]), of: x)
            imp.emit(.sliceUpdate(SliceUpdateOp(dst: x, update: try imp.read(a[1]), out: try imp.write(a.last!),
                                                axis: .literal(Int64(dim)), start: try imp.optionalInt(a[3]) ?? .literal(0),
                                                stop: try imp.optionalInt(a[4]) ?? .literal(Int64.max),
                                                step: Int(try imp.literalInt(a[5])))))
        }
        t["aten::select_copy.int_out"] = { imp, a in
            try imp.arity(a, 4, "select")
            let x = try imp.read(a[0])
            imp.emit(.take(TakeOp(x: x, out: try imp.write(a.last!), index: try imp.intArg(a[2]),
                                  axis: imp.axis(try imp.literalInt(a[1]), of: x))))
        }
        t["aten::cat.out"] = { imp, a in
            try imp.arity(a, 3, "cat")
            let parts = try imp.tensorList(a[0]).compactMap { $0 }
            let dim = try imp.literalInt(a[1])
            imp.emit(.concatenate(ConcatenateOp(tensors: parts, out: try imp.write(a.last!),
                                                axis: parts.first.map { imp.axis(dim, of: $0) } ?? dim)))
        }
        t["aten::stack.out"] = { imp, a in
            let parts = try imp.tensorList(a[0]).compactMap { $0 }
            imp.emit(.stack(StackOp(tensors: parts, out: try imp.write(a.last!), axis: try imp.literalInt(a[1]))))
        }
        t["aten::split_with_sizes_copy.out"] = { imp, a in
            try imp.arity(a, 4, "split_with_sizes")
            let x = try imp.read(a[0])
            guard case .tensorList(let outs) = try imp.evalue(a.last!) else { throw imp.fail("split output is not a TensorList") }
            let results = try outs.map { try imp.write(Int($0)) }
            imp.emit(.split(SplitOp(x: x, outs: results, sizes: try imp.intList(a[1]), axis: imp.axis(try imp.literalInt(a[2]), of: x))))
        }
        // split_copy.Tensor_out(Tensor self, SymInt split_size, int dim=0, *, Tensor(a!)[] out): equal chunks, the last shorter.
        t["aten::split_copy.Tensor_out"] = { imp, a in
            try imp.arity(a, 3, "split_copy")
            let x = try imp.read(a[0])
            guard case .tensorList(let outs) = try imp.evalue(a.last!) else { throw imp.fail("split_copy output is not a TensorList") }
            let results = try outs.map { try imp.write(Int($0)) }
            let dim = a.count >= 4 ? try imp.literalInt(a[2]) : 0
            imp.emit(.split(SplitOp(x: x, outs: results, sizes: [try imp.intArg(a[1])], axis: imp.axis(dim, of: x))))
        }
        let identity: ATenTranslator = { imp, a in
            imp.emit(.idCopy(IdCopyOp(x: try imp.read(a[0]), out: try imp.write(a.last!))))
        }
        t["aten::clone.out"] = identity
        t["aten::alias_copy.out"] = identity
        t["aten::detach_copy.out"] = identity
        t["aten::contiguous.out"] = identity
        t["aten::repeat.out"] = { imp, a in
            imp.emit(.tile(TileOp(x: try imp.read(a[0]), out: try imp.write(a.last!), reps: try imp.intList(a[1]))))
        }
        t["aten::constant_pad_nd.out"] = { imp, a in
            try imp.arity(a, 4, "constant_pad_nd")
            let x = try imp.read(a[0])
            guard let rank = imp.graph.type(x)?.rank else { throw imp.fail("pad of a value of unknown rank") }
            // ATen lists (before, after) pairs from the LAST dim backwards; MLX wants them per dim from the first.
            let pads = try imp.literalInts(a[1])
            var widths = [IntOrValue](repeating: .literal(0), count: 2 * rank)
            for pair in 0..<(pads.count / 2) {
                let d = rank - 1 - pair
                guard d >= 0 else { throw imp.fail("pad list \(pads) is longer than twice the rank \(rank)") }
                widths[2 * d] = .literal(Int64(pads[2 * pair]))
                widths[2 * d + 1] = .literal(Int64(pads[2 * pair + 1]))
            }
            imp.emit(.pad(PadOp(x: x, out: try imp.write(a.last!), padWidth: widths, mode: "constant",
                                constantValue: try imp.doubleArg(a[2]))))
        }
        t["aten::tril.out"] = { imp, a in
            imp.emit(.tril(TrilOp(x: try imp.read(a[0]), out: try imp.write(a.last!), k: try imp.literalInt(a[1]))))
        }
        t["aten::triu.out"] = { imp, a in
            imp.emit(.triu(TriuOp(x: try imp.read(a[0]), out: try imp.write(a.last!), k: try imp.literalInt(a[1]))))
        }
        return t
    }
}
