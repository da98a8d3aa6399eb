import MLXCIR

/// Reductions and normalizations: mean/sum/amax/any/argmax, softmax, layer norm, top-k.
extension PlanImporter {
    static var reductionTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        func axes(_ imp: PlanImporter, _ slot: Int, _ x: ValueID) throws -> [Int] {
            switch try imp.evalue(slot) {
            case .none, .null: return []
            case .int: return [imp.axis(try imp.literalInt(slot), of: x)]
            default: return try imp.literalInts(slot).map { imp.axis($0, of: x) }
            }
        }
        typealias Make = (ValueID, ValueID, [Int], Bool) -> Op
        let listReductions: [String: Make] = [
            "aten::mean.out": { .mean(MeanOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::sum.IntList_out": { .sum(SumOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::amax.out": { .max(MaxOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::amin.out": { .min(MinOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::any.out": { .any(AnyOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::any.dims_out": { .any(AnyOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::all.dims_out": { .all(AllOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::prod.int_out": { .prod(ProdOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
            "aten::logsumexp.out": { .logSumExp(LogSumExpOp(x: $0, out: $1, axes: $2, keepdims: $3)) },
        ]
        for (name, make) in listReductions {
            t[name] = { imp, a in
                try imp.arity(a, 4, name)
                let x = try imp.read(a[0])
                imp.emit(make(x, try imp.write(a.last!), try axes(imp, a[1], x), try imp.boolArg(a[2])))
            }
        }
        t["aten::any.all_out"] = { imp, a in
            imp.emit(.any(AnyOp(x: try imp.read(a[0]), out: try imp.write(a.last!), axes: [], keepdims: false)))
        }
        t["aten::sum.out"] = { imp, a in
            imp.emit(.sum(SumOp(x: try imp.read(a[0]), out: try imp.write(a.last!), axes: [], keepdims: false)))
        }
        t["aten::argmax.out"] = { imp, a in
            try imp.arity(a, 4, "argmax")
            let x = try imp.read(a[0])
            let ax = try axes(imp, a[1], x)
            guard ax.count == 1 else { throw imp.fail("argmax over all dims (dim=None) is not supported") }
            imp.emit(.argmax(ArgmaxOp(x: x, out: try imp.write(a.last!), axis: ax[0], keepdims: try imp.boolArg(a[2]))))
        }
        t["aten::argmin.out"] = { imp, a in
            try imp.arity(a, 4, "argmin")
            let x = try imp.read(a[0])
            let ax = try axes(imp, a[1], x)
            guard ax.count == 1 else { throw imp.fail("argmin over all dims (dim=None) is not supported") }
            imp.emit(.argmin(ArgminOp(x: x, out: try imp.write(a.last!), axis: ax[0], keepdims: try imp.boolArg(a[2]))))
        }
        // max.dim_max / min.dim_min(self, dim, keepdim, *, values, indices): the reduction and its arg.
        for (name, isMax) in [("aten::max.dim_max", true), ("aten::min.dim_min", false)] {
            t[name] = { imp, a in
                try imp.arity(a, 5, name)
                let x = try imp.read(a[0])
                let d = imp.axis(try imp.literalInt(a[1]), of: x), keep = try imp.boolArg(a[2])
                let values = try imp.write(a[3]), indices = try imp.write(a[4])
                if isMax {
                    imp.emit(.max(MaxOp(x: x, out: values, axes: [d], keepdims: keep)))
                    imp.emit(.argmax(ArgmaxOp(x: x, out: indices, axis: d, keepdims: keep)))
                } else {
                    imp.emit(.min(MinOp(x: x, out: values, axes: [d], keepdims: keep)))
                    imp.emit(.argmin(ArgminOp(x: x, out: indices, axis: d, keepdims: keep)))
                }
            }
        }
        // max.unary_out / min.unary_out(self, *, out): over every element.
        t["aten::max.unary_out"] = { imp, a in
            imp.emit(.max(MaxOp(x: try imp.read(a[0]), out: try imp.write(a.last!), axes: [], keepdims: false)))
        }
        t["aten::min.unary_out"] = { imp, a in
            imp.emit(.min(MinOp(x: try imp.read(a[0]), out: try imp.write(a.last!), axes: [], keepdims: false)))
        }
        t["aten::_softmax.out"] = { imp, a in
            try imp.arity(a, 4, "softmax")
            let x = try imp.read(a[0])
            imp.emit(.softmax(SoftmaxOp(x: x, out: try imp.write(a.last!), axis: imp.axis(try imp.literalInt(a[1]), of: x), precise: true)))
        }
        t["aten::_log_softmax.out"] = { imp, a in
            try imp.arity(a, 4, "log_softmax")
            let x = try imp.read(a[0])
            let d = imp.axis(try imp.literalInt(a[1]), of: x)
            var reducedType = imp.graph.type(x)
            if reducedType != nil, d < reducedType!.rank { reducedType!.shape[d] = .fixed(1) }
            // x − m − log Σ exp(x − m), m the max, as eager's CPU kernel computes it (each step has a kernel).
            let xType = imp.graph.type(x)
            let m = imp.temporary(reducedType), shifted = imp.temporary(xType), e = imp.temporary(xType)
            let total = imp.temporary(reducedType), logTotal = imp.temporary(reducedType)
            imp.emit(.max(MaxOp(x: x, out: m, axes: [d], keepdims: true)))
            imp.emit(.subtract(SubtractOp(a: x, b: m, out: shifted)))
            imp.emit(.exp(ExpOp(x: shifted, out: e)))
            imp.emit(.sum(SumOp(x: e, out: total, axes: [d], keepdims: true)))
            imp.emit(.log(LogOp(x: total, out: logTotal)))
            imp.emit(.subtract(SubtractOp(a: shifted, b: logTotal, out: try imp.write(a.last!))))
        }
        t["aten::cumsum.out"] = { imp, a in
            let x = try imp.read(a[0])
            imp.emit(.cumsum(CumsumOp(x: x, out: try imp.write(a.last!), axis: imp.axis(try imp.literalInt(a[1]), of: x),
                                      reverse: false, inclusive: true)))
        }
        t["aten::native_layer_norm.out"] = { imp, a in
            // (input, normalized_shape, weight?, bias?, eps, out, save_mean, save_rstd)
            try imp.arity(a, 8, "native_layer_norm")
            let x = try imp.read(a[0])
            guard try imp.literalInts(a[1]).count == 1 else { throw imp.fail("layer_norm over more than the last dim is not supported") }
            imp.emit(.layerNorm(LayerNormOp(x: x, out: try imp.write(a[5]), weight: try imp.optionalTensor(a[2]),
                                            bias: try imp.optionalTensor(a[3]), eps: try imp.doubleArg(a[4]))))
            // save_mean / save_rstd are left undefined: a later read of them is reported as an error.
        }
        t["aten::topk.values"] = { imp, a in
            // (self, k, dim, largest, sorted, values, indices): argsort of the negated input, sliced to k.
            try imp.arity(a, 7, "topk")
            let x = try imp.read(a[0])
            let k = try imp.intArg(a[1])
            let d = imp.axis(try imp.literalInt(a[2]), of: x)
            let largest = try imp.boolArg(a[3])
            let xType = imp.graph.type(x)
            var key = x
            if largest {
                key = imp.temporary(xType)
                imp.emit(.neg(NegOp(x: x, out: key)))
            }
            let order = imp.temporary(xType.map { TensorType(.i32, $0.shape) })
            imp.emit(.argsort(ArgsortOp(x: key, out: order, axis: d)))
            let indices = try imp.write(a[6])
            let narrowed = imp.temporary(imp.graph.type(indices).map { TensorType(.i32, $0.shape) })
            imp.emit(.slice(SliceOp(x: order, out: narrowed, axis: .literal(Int64(d)), start: .literal(0), stop: k, step: 1)))
            imp.emit(.asType(AsTypeOp(x: narrowed, out: indices, scalarType: .i64)))
            imp.emit(.takeAlongAxis(TakeAlongAxisOp(x: x, indices: narrowed, out: try imp.write(a[5]), axis: d)))
        }
        return t
    }
}
