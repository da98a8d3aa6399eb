import MLXCIR

/// Ops NeMo's FastConformer programs add to the portable set (ExecuTorch's Parakeet TDT export): the conv module's
/// batch norm in eval mode, the preprocessor's `view_as_real` of the STFT and its NaN guard, and the joint's
/// `argmax()` over every element.
extension PlanImporter {
    static var conformerTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["aten::_native_batch_norm_legit_no_training.out"] = { imp, a in
            // (input, weight?, bias?, running_mean, running_var, momentum, eps, *, out, save_mean, save_invstd):
            // (x − mean) · (var + eps)^−½ · w + b per channel (axis 1), as eager's CPU kernel orders it.
            try imp.arity(a, 10, "batch_norm")
            let x = try imp.read(a[0])
            guard let type = imp.graph.type(x), type.rank >= 2 else { throw imp.fail("batch_norm of a value of unknown or rank < 2 shape") }
            let mean = try imp.read(a[3]), variance = try imp.read(a[4])
            guard let c = imp.graph.type(mean)?.shape.first?.fixedValue, imp.graph.type(mean)?.rank == 1 else {
                throw imp.fail("batch_norm running_mean is not a fixed [C] tensor")
            }
            guard type.shape[1].fixedValue == nil || type.shape[1].fixedValue == c else {
                throw imp.fail("batch_norm over \(type.shape[1]) channels with \(c) running statistics")
            }
            let eps = try imp.doubleArg(a[6])
            let dtype = type.dtype
            let perChannel = [Int64(c)] + Array(repeating: Int64(1), count: type.rank - 2)
            let channelType = TensorType(dtype, fixed: perChannel.map(Int.init))
            func column(_ v: ValueID) -> ValueID {
                let out = imp.temporary(channelType)
                imp.emit(.reshape(ReshapeOp(x: v, out: out, shape: perChannel.map { .literal($0) })))
                return out
            }
            let epsValue = imp.graph.addValue(TensorType(dtype, fixed: []), .constant(.literal([eps])))
            let shifted = imp.temporary(TensorType(dtype, [.fixed(c)]))
            imp.emit(.add(AddOp(a: variance, b: epsValue, out: shifted)))
            let invstd = imp.temporary(TensorType(dtype, [.fixed(c)]))
            imp.emit(.rsqrt(RsqrtOp(x: shifted, out: invstd)))
            let weight = try imp.optionalTensor(a[1]), bias = try imp.optionalTensor(a[2])
            let out = try imp.write(a[7])
            let centered = imp.temporary(type)
            imp.emit(.subtract(SubtractOp(a: x, b: column(mean), out: centered)))
            var y = weight == nil && bias == nil ? out : imp.temporary(type)
            imp.emit(.multiply(MultiplyOp(a: centered, b: column(invstd), out: y)))
            if let w = weight {
                let next = bias == nil ? out : imp.temporary(type)
                imp.emit(.multiply(MultiplyOp(a: y, b: column(w), out: next)))
                y = next
            }
            if let b = bias {
                imp.emit(.add(AddOp(a: y, b: column(b), out: out)))
            }
            // save_mean / save_invstd are empty in eval mode: a later read of them is reported as an error.
        }
        t["aten::view_as_real_copy.out"] = { imp, a in
            // A complex tensor (imported as its two parts) → [..., 2] with (re, im) last.
            guard let (re, im) = imp.complexParts[a[0]] else { throw imp.fail("view_as_real of a tensor that is not complex") }
            guard let type = imp.graph.type(re) else { throw imp.fail("view_as_real of a value of unknown rank") }
            // Each part gains a last axis of 1 and the two are concatenated there (kernels exist for both).
            let column = TensorType(type.dtype, type.shape + [.fixed(1)])
            let parts = [re, im].map { part -> ValueID in
                let v = imp.temporary(column)
                imp.emit(.expandDims(ExpandDimsOp(x: part, out: v, axis: type.rank)))
                return v
            }
            imp.emit(.concatenate(ConcatenateOp(tensors: parts, out: try imp.write(a.last!), axis: type.rank)))
        }
        t["aten::bitwise_not.out"] = { imp, a in
            // On bool tensors (the masks NeMo inverts) it is logical not, which has a kernel.
            let x = try imp.read(a[0])
            guard imp.graph.type(x)?.dtype == .bool else { return try elementwiseTranslators["aten::bitwise_not.out"]!(imp, a) }
            imp.emit(.logicalNot(LogicalNotOp(x: x, out: try imp.write(a.last!))))
        }
        t["aten::sum.IntList_out"] = { imp, a in
            // A count of true values (NeMo's valid-frame masks) is summed in f32 — exact while the count stays below
            // 2^24, which the reduced axes' bounds must prove — then converted to the output's integer dtype.
            try imp.arity(a, 4, "sum")
            let x = try imp.read(a[0])
            guard let type = imp.graph.type(x), type.dtype == .bool, case .intList = try imp.evalue(a[1]) else {
                return try reductionTranslators["aten::sum.IntList_out"]!(imp, a)
            }
            let axes = try imp.literalInts(a[1]).map { imp.axis($0, of: x) }
            let keep = try imp.boolArg(a[2])
            let bound = axes.reduce(1) { n, d in n * (type.shape[safe: d]?.upperBound ?? Int.max / 2) }
            guard bound < 1 << 24, let outType = try imp.slotType(a.last!), outType.dtype == .i64 || outType.dtype == .i32 else {
                return try reductionTranslators["aten::sum.IntList_out"]!(imp, a)
            }
            let out = try imp.write(a.last!)
            let ones = imp.temporary(TensorType(.f32, type.shape))
            imp.emit(.asType(AsTypeOp(x: x, out: ones, scalarType: .f32)))
            let total = imp.temporary(TensorType(.f32, outType.shape))
            imp.emit(.sum(SumOp(x: ones, out: total, axes: axes, keepdims: keep)))
            imp.emit(.asType(AsTypeOp(x: total, out: out, scalarType: outType.dtype)))
        }
        t["aten::isnan.out"] = { imp, a in
            // NaN is the one value not equal to itself.
            let x = try imp.read(a[0])
            imp.emit(.notEqual(NotEqualOp(a: x, b: x, out: try imp.write(a.last!))))
        }
        t["aten::permute_copy.out"] = complexView(fallback: shapeTranslators["aten::permute_copy.out"]!) { imp, a, x in
            guard let type = imp.graph.type(x) else { throw imp.fail("permute of a value of unknown rank") }
            let perm = try imp.literalInts(a[1]).map { imp.axis($0, of: x) }
            guard perm.sorted() == Array(0..<type.rank) else { throw imp.fail("permute \(perm) of a rank-\(type.rank) tensor") }
            return ({ v, out in .transpose(TransposeOp(x: v, out: out, perm: perm)) }, TensorType(type.dtype, perm.map { type.shape[$0] }))
        }
        t["aten::argmax.out"] = { imp, a in
            // (self, dim?, keepdim, out): dim None is the index into the flattened tensor.
            try imp.arity(a, 4, "argmax")
            let x = try imp.read(a[0])
            if case .int = try imp.evalue(a[1]) {
                return try reductionTranslators["aten::argmax.out"]!(imp, a)
            }
            guard let type = imp.graph.type(x), let count = type.staticShape?.reduce(1, *) else {
                throw imp.fail("argmax over every element of a tensor of dynamic shape")
            }
            guard try !imp.boolArg(a[2]) else { throw imp.fail("argmax over every element with keepdim") }
            let flat = imp.temporary(TensorType(type.dtype, fixed: [count]))
            imp.emit(.reshape(ReshapeOp(x: x, out: flat, shape: [.literal(Int64(count))])))
            imp.emit(.argmax(ArgmaxOp(x: flat, out: try imp.write(a.last!), axis: 0, keepdims: false)))
        }
        return t
    }
}
