/// Result types of every op: the dtype and shape of each of `op.results`, from the operands' types
/// and (where a shape depends on a run-time scalar: reshape dims, slice bounds, full/arange sizes…)
/// the scalars' values or bounds. The rules are the reference executor's (Runtime/Reference), so
/// that a buffer allocated from them is exactly what the reference would compute.
///
/// One set of rules serves two modes:
/// - concrete: every dim `.fixed`, every scalar known → the exact types. The compiled runtime calls
///   this on every call, so the rules avoid work beyond building the result arrays.
/// - symbolic: dims may be `.dynamic(min:max:)`, scalars unknown or known within bounds → a sound
///   over-approximation: a result dim that depends on something unknown becomes `.dynamic` with
///   the tightest bounds that are easy to derive (`max: nil` when none is).
///
/// A result whose type cannot be determined at all (an operand of unknown type, the outputs of a
/// delegate call or a scan) is nil. Operands that cannot go together (matmul inner dims that differ,
/// shapes that do not broadcast, an axis out of range) throw `IRError` naming the op and the shapes.
///
/// A few results take their dtype from the result's own declared type, as the reference does
/// (`executor.graph[out].type`): arange without `scalar_type`, cumsum of bool, sum/prod of ints,
/// argmax/argmin/argsort/arg_partition indices. For those the rules ask `type` about the result.
public enum ShapeRules {
    /// Concrete and symbolic mode with exactly known scalars: `scalar` gives the value of a run-time
    /// int (an `IntOrValue` holding `.value`), nil when unknown.
    public static func resultTypes(of op: Op, type: (ValueID) -> TensorType?, scalar: (ValueID) -> Int?) throws -> [TensorType?] {
        try withoutActuallyEscaping(type) { type in
            try withoutActuallyEscaping(scalar) { scalar in
                try resultTypes(op, Env(typeOf: type, exact: scalar, bounded: nil, difference: nil))
            }
        }
    }

    /// Symbolic mode with scalar bounds: `scalarBounds` gives what is known of a run-time int
    /// (nil when nothing is). `ShapeInference` uses this to carry e.g. `sym_size` ranges into reshapes.
    /// `difference(a, b)`, if given, bounds `a − b` for two run-time ints (a slice's stop and start
    /// often differ by a known range while both are unknown).
    /// `sameSize(n, x, axis)`, if given, says a run-time int n equals dim `axis` of tensor x on every
    /// call (both are one `sym_size`), so a reshape's `[…, n, -1, …]` cancels it out of x's count.
    public static func resultTypes(of op: Op, type: (ValueID) -> TensorType?, scalarBounds: (ValueID) -> Bounds?,
                                   difference: (ValueID, ValueID) -> Bounds? = { _, _ in nil },
                                   sameSize: (ValueID, ValueID, Int) -> Bool = { _, _, _ in false }) throws -> [TensorType?] {
        try withoutActuallyEscaping(type) { type in
            try withoutActuallyEscaping(scalarBounds) { bounds in
                try withoutActuallyEscaping(difference) { difference in
                    try withoutActuallyEscaping(sameSize) { sameSize in
                        try resultTypes(op, Env(typeOf: type, exact: nil, bounded: bounds, difference: difference, sameSize: sameSize))
                    }
                }
            }
        }
    }

    /// An operand whose type is unknown: every result of the op is unknown.
    struct Unknown: Error {}

    /// What the rules may ask: operand types and run-time scalars.
    struct Env {
        let typeOf: (ValueID) -> TensorType?
        let exact: ((ValueID) -> Int?)?
        let bounded: ((ValueID) -> Bounds?)?
        let difference: ((ValueID, ValueID) -> Bounds?)?
        /// Whether a run-time int equals a tensor's dim (see `resultTypes(of:type:scalarBounds:difference:sameSize:)`).
        var sameSize: ((ValueID, ValueID, Int) -> Bool)? = nil

        /// The type of an operand; unknown → every result unknown.
        @inline(__always)
        func t(_ v: ValueID) throws -> TensorType {
            guard let t = typeOf(v) else { throw Unknown() }
            return t
        }

        func t(_ v: ValueID?) throws -> TensorType? {
            guard let v else { return nil }
            return try t(v)
        }

        /// The value of an int field: a literal, or what is known of a run-time scalar.
        @inline(__always)
        func int(_ x: IntOrValue) -> Bounds {
            switch x {
            case .literal(let n): return .exactly(Int(n))
            case .value(let v): return scalar(v)
            }
        }

        /// What is known of `stop − start`.
        func span(_ start: IntOrValue, _ stop: IntOrValue) -> Bounds {
            if case .value(let a) = stop, case .value(let b) = start, let difference, let d = difference(a, b) { return d }
            return int(stop) - int(start)
        }

        func scalar(_ v: ValueID) -> Bounds {
            if let exact { return exact(v).map(Bounds.exactly) ?? .unknown }
            if let bounded { return bounded(v) ?? .unknown }
            return .unknown
        }
    }

    static func resultTypes(_ op: Op, _ e: Env) throws -> [TensorType?] {
        do {
            return try rule(op, e)
        } catch is Unknown {
            return [TensorType?](repeating: nil, count: op.results.count)
        }
    }

    /// One case per op of the closed set.
    static func rule(_ op: Op, _ e: Env) throws -> [TensorType?] {
        switch op {
        // Copies and casts.
        case .idCopy(let o): return [try e.t(o.x)]
        case .contiguous(let o): return [try e.t(o.x)]
        case .asType(let o): return [TensorType(o.scalarType, try e.t(o.x).shape)]

        // Binary arithmetic in the common dtype.
        case .add(let o): return [try arithmetic("add", o.a, o.b, e)]
        case .subtract(let o): return [try arithmetic("subtract", o.a, o.b, e)]
        case .multiply(let o): return [try arithmetic("multiply", o.a, o.b, e)]
        case .maximum(let o): return [try arithmetic("maximum", o.a, o.b, e)]
        case .minimum(let o): return [try arithmetic("minimum", o.a, o.b, e)]
        case .power(let o): return [try arithmetic("power", o.a, o.b, e)]
        case .remainder(let o): return [try arithmetic("remainder", o.a, o.b, e)]
        case .floorDivide(let o): return [try arithmetic("floor_divide", o.a, o.b, e)]
        case .divide(let o): return [try floatBinary("divide", o.a, o.b, e)]
        case .atan2(let o): return [try floatBinary("atan2", o.a, o.b, e)]
        case .logAddExp(let o): return [try floatBinary("log_add_exp", o.a, o.b, e)]

        // Unary math with a floating-point result.
        case .exp(let o): return [try unaryFloat(o.x, e)]
        case .expm1(let o): return [try unaryFloat(o.x, e)]
        case .log(let o): return [try unaryFloat(o.x, e)]
        case .log2(let o): return [try unaryFloat(o.x, e)]
        case .log10(let o): return [try unaryFloat(o.x, e)]
        case .log1p(let o): return [try unaryFloat(o.x, e)]
        case .sin(let o): return [try unaryFloat(o.x, e)]
        case .cos(let o): return [try unaryFloat(o.x, e)]
        case .tan(let o): return [try unaryFloat(o.x, e)]
        case .arcsin(let o): return [try unaryFloat(o.x, e)]
        case .arccos(let o): return [try unaryFloat(o.x, e)]
        case .arctan(let o): return [try unaryFloat(o.x, e)]
        case .sinh(let o): return [try unaryFloat(o.x, e)]
        case .cosh(let o): return [try unaryFloat(o.x, e)]
        case .tanh(let o): return [try unaryFloat(o.x, e)]
        case .arcsinh(let o): return [try unaryFloat(o.x, e)]
        case .arccosh(let o): return [try unaryFloat(o.x, e)]
        case .arctanh(let o): return [try unaryFloat(o.x, e)]
        case .erf(let o): return [try unaryFloat(o.x, e)]
        case .sqrt(let o): return [try unaryFloat(o.x, e)]
        case .rsqrt(let o): return [try unaryFloat(o.x, e)]
        case .reciprocal(let o): return [try unaryFloat(o.x, e)]
        case .sigmoid(let o): return [try unaryFloat(o.x, e)]
        case .silu(let o): return [try unaryFloat(o.x, e)]
        case .gelu(let o): return [try gelu(o, e)]

        // Unary ops that keep the dtype.
        case .floor(let o): return [try e.t(o.x)]
        case .ceil(let o): return [try e.t(o.x)]
        case .trunc(let o): return [try e.t(o.x)]
        case .round(let o): return [try e.t(o.x)]
        case .abs(let o): return [try e.t(o.x)]
        case .sign(let o): return [try e.t(o.x)]
        case .square(let o): return [try e.t(o.x)]
        case .neg(let o): return [try neg(o, e)]

        // Comparisons and logic: bool results.
        case .less(let o): return [try boolBinary("less", o.a, o.b, e)]
        case .lessEqual(let o): return [try boolBinary("less_equal", o.a, o.b, e)]
        case .greater(let o): return [try boolBinary("greater", o.a, o.b, e)]
        case .greaterEqual(let o): return [try boolBinary("greater_equal", o.a, o.b, e)]
        case .equal(let o): return [try boolBinary("equal", o.a, o.b, e)]
        case .notEqual(let o): return [try boolBinary("not_equal", o.a, o.b, e)]
        case .logicalAnd(let o): return [try boolBinary("logical_and", o.a, o.b, e)]
        case .logicalOr(let o): return [try boolBinary("logical_or", o.a, o.b, e)]
        case .logicalNot(let o): return [TensorType(.bool, try e.t(o.x).shape)]

        // Bitwise.
        case .bitwiseInvert(let o): return [try bitwiseInvert(o, e)]
        case .bitwiseAnd(let o): return [try bitwise("bitwise_and", o.a, o.b, e)]
        case .bitwiseOr(let o): return [try bitwise("bitwise_or", o.a, o.b, e)]
        case .bitwiseXor(let o): return [try bitwise("bitwise_xor", o.a, o.b, e)]

        // Selection.
        case .where(let o): return [try select(o, e)]
        case .clip(let o): return [try clip(o, e)]

        // Creation.
        case .full(let o): return [try full(o, e)]
        case .fullLike(let o): let x = try e.t(o.x); return [TensorType(o.scalarType ?? x.dtype, x.shape)]
        case .arange(let o): return [try arange(o, e)]
        case .tri(let o): return [try tri(o, e)]
        case .randomBits(let o): return [try randomBits(o, e)]

        // Layout.
        case .reshape(let o): return [try reshape(o, e)]
        case .transpose(let o): return [try transpose(o, e)]
        case .expandDims(let o): return [try expandDims(o, e)]
        case .squeeze(let o): return [try squeeze(o, e)]
        case .broadcastTo(let o): return [try broadcastTo(o, e)]
        case .slice(let o): return [try slice(o, e)]
        case .concatenate(let o): return [try concatenate(o, e)]
        case .split(let o): return try split(o, e)
        case .stack(let o): return [try stack(o, e)]
        case .tile(let o): return [try tile(o, e)]
        case .repeat(let o): return [try repeatOp(o, e)]
        case .pad(let o): return [try pad(o, e)]
        case .flip(let o): return [try flip(o, e)]
        case .roll(let o): return [try roll(o, e)]
        case .asStrided(let o): return [try asStrided(o, e)]
        case .tril(let o): return [try triangle("tril", o.x, e)]
        case .triu(let o): return [try triangle("triu", o.x, e)]

        // Reductions, scans, sorts.
        case .sum(let o): return [try reduce("sum", o.x, o.out, o.axes, o.keepdims, .integerAccumulator, e)]
        case .prod(let o): return [try reduce("prod", o.x, o.out, o.axes, o.keepdims, .integerAccumulator, e)]
        case .mean(let o): return [try reduce("mean", o.x, o.out, o.axes, o.keepdims, .atLeastFloat, e)]
        case .var(let o): return [try reduce("var", o.x, o.out, o.axes, o.keepdims, .atLeastFloat, e)]
        case .std(let o): return [try reduce("std", o.x, o.out, o.axes, o.keepdims, .atLeastFloat, e)]
        case .median(let o): return [try reduce("median", o.x, o.out, o.axes, o.keepdims, .atLeastFloat, e, nonEmpty: true)]
        case .logSumExp(let o): return [try reduce("log_sum_exp", o.x, o.out, o.axes, o.keepdims, .atLeastFloat, e, nonEmpty: true)]
        case .max(let o): return [try reduce("max", o.x, o.out, o.axes, o.keepdims, .same, e, nonEmpty: true)]
        case .min(let o): return [try reduce("min", o.x, o.out, o.axes, o.keepdims, .same, e, nonEmpty: true)]
        case .any(let o): return [try reduce("any", o.x, o.out, o.axes, o.keepdims, .bool, e)]
        case .all(let o): return [try reduce("all", o.x, o.out, o.axes, o.keepdims, .bool, e)]
        case .argmax(let o): return [try argReduce("argmax", o.x, o.out, o.axis, o.keepdims, e)]
        case .argmin(let o): return [try argReduce("argmin", o.x, o.out, o.axis, o.keepdims, e)]
        case .cumsum(let o): return [try cumsum(o, e)]
        case .sort(let o): return [try sortAlong("sort", o.x, o.out, o.axis, indices: false, kth: nil, e)]
        case .argsort(let o): return [try sortAlong("argsort", o.x, o.out, o.axis, indices: true, kth: nil, e)]
        case .partition(let o): return [try sortAlong("partition", o.x, o.out, o.axis, indices: false, kth: o.kth, e)]
        case .argPartition(let o): return [try sortAlong("arg_partition", o.x, o.out, o.axis, indices: true, kth: o.kth, e)]

        // Gather and scatter.
        case .take(let o): return [try take(o, e)]
        case .takeAlongAxis(let o): return [try takeAlongAxis(o, e)]
        case .gather(let o): return [try gather(o, e)]
        case .scatterAdd(let o): return [try scatterAdd(o, e)]
        case .sliceUpdate(let o): return [try sliceUpdate(o, e)]
        case .indexCopy(let o): return [try indexCopy(o, e)]
        case .indexPut(let o): return [try indexPut(o, e)]
        case .copyInto(let o): return [try copyInto(o, e)]

        // Linear algebra.
        case .matmul(let o): return [try matmul("matmul", try e.t(o.a), try e.t(o.b))]
        case .addmm(let o): return [try addmm(o, e)]
        case .conv1D(let o):
            return [try conv("conv1d", o.x, o.w, stride: [o.stride], padding: [o.padding], dilation: [o.dilation],
                             outputPadding: nil, groups: o.groups, e)]
        case .conv2D(let o):
            return [try conv("conv2d", o.x, o.w, stride: [o.strideH, o.strideW], padding: [o.paddingH, o.paddingW],
                             dilation: [o.dilationH, o.dilationW], outputPadding: nil, groups: o.groups, e)]
        case .conv3D(let o):
            return [try conv("conv3d", o.x, o.w, stride: [o.strideD, o.strideH, o.strideW],
                             padding: [o.paddingD, o.paddingH, o.paddingW], dilation: [o.dilationD, o.dilationH, o.dilationW],
                             outputPadding: nil, groups: o.groups, e)]
        case .convTranspose1D(let o):
            return [try conv("conv_transpose1d", o.x, o.w, stride: [o.stride], padding: [o.padding], dilation: [o.dilation],
                             outputPadding: [o.outputPadding], groups: o.groups, e)]
        case .convTranspose2D(let o):
            return [try conv("conv_transpose2d", o.x, o.w, stride: [o.strideH, o.strideW], padding: [o.paddingH, o.paddingW],
                             dilation: [o.dilationH, o.dilationW], outputPadding: [o.outputPaddingH, o.outputPaddingW],
                             groups: o.groups, e)]
        case .convTranspose3D(let o):
            return [try conv("conv_transpose3d", o.x, o.w, stride: [o.strideD, o.strideH, o.strideW],
                             padding: [o.paddingD, o.paddingH, o.paddingW], dilation: [o.dilationD, o.dilationH, o.dilationW],
                             outputPadding: [o.outputPaddingD, o.outputPaddingH, o.outputPaddingW], groups: o.groups, e)]
        case .gatherMm(let o): return [try gatherMm(o, e)]

        // Quantized weights.
        case .dequantize(let o): return [try dequantize(o, e)]
        case .quantizedMatmul(let o): return [try quantizedMatmul(o, e)]
        case .gatherQmm(let o): return [try gatherQmm(o, e)]
        case .quantizedEmbedding(let o): return [try quantizedEmbedding(o, e)]
        case .dequantizeAffine(let o): return [try dequantizeAffine(o, e)]
        case .packAffineWeight(let o): return try packAffineWeight(o, e)

        // Fused by the fusion passes.
        case .fusedQuantizedLinear(let o): return try fusedQuantizedLinear(o, e)
        case .fusedLinear(let o): return try fusedLinear(o, e)
        case .ropeAttention(let o): return try ropeAttention(o, e)
        case .ropeTable(let o): return [try ropeTable(o, e)]
        case .gatedDeltaRule(let o): return try gatedDeltaRule(o, e)
        case .ggufDequantize(let o): return [try ggufDequantize(o, e)]
        case .ggufPackAffine(let o): return try ggufPackAffine(o, e)
        case .dynamicQuantLinear(let o): return [try dynamicQuantLinear(o, e)]

        // Norms, attention, KV caches.
        case .rmsNorm(let o): return [try norm("rms_norm", o.x, weight: o.weight, bias: nil, e)]
        case .layerNorm(let o): return [try norm("layer_norm", o.x, weight: o.weight, bias: o.bias, e)]
        case .softmax(let o): return [try softmax(o, e)]
        case .rope(let o): return [try rope(o, e)]
        case .sdpa(let o): return [try sdpa(o, e)]
        case .llamaCustomSdpa(let o): return [try customSdpa(o, e)]
        case .llamaUpdateCache(let o): return [try updateCache(o, e)]
        case .llamaUpdateCacheWithIndices(let o): return [try updateCacheWithIndices(o, e)]
        case .updateAndAttend(let o): return [try updateAndAttend(o, e)]

        // Scalars (rank-0 values).
        case .addInt, .subtractInt, .multiplyInt, .floorDivideInt, .modInt: return [TensorType(.i64, [])]
        case .symSize(let o): return [try symSize(o, e)]
        case .itemInt(let o): return [try item("item_int", o.x, .i64, e)]
        case .item(let o): return [try item("item", o.x, .f64, e)]
        case .scalarMath(let o): return [try scalarMath(o, e)]

        // Control flow and opaque ops.
        case .noop, .if: return []
        case .scan(let o): return [TensorType?](repeating: nil, count: o.outputs.count)
        case .delegateCall(let o): return [TensorType?](repeating: nil, count: o.outs.count)
        case .metalKernel(let o): return try metalKernel(o, e)
        }
    }
}

// MARK: - Shared helpers

extension ShapeRules {
    /// An error naming the op.
    @inline(never)
    static func fail(_ op: String, _ message: String) -> IRError { IRError("\(op): \(message)") }

    /// A shape as IR text writes it: `[2, ?1..32, 64]`.
    static func text(_ shape: [Dim]) -> String { "[" + shape.map(\.description).joined(separator: ", ") + "]" }

    /// A possibly negative axis in [-rank, rank), normalized (Layout.axis).
    @inline(__always)
    static func axis(_ a: Int, rank: Int, _ op: String) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < rank else { throw fail(op, "axis \(a) is out of range for rank \(rank)") }
        return r
    }

    /// An axis at which a new dim is inserted: [-(rank+1), rank] (Layout.insertionAxis).
    static func insertionAxis(_ a: Int, rank: Int, _ op: String) throws -> Int {
        let r = a < 0 ? a + rank + 1 : a
        guard r >= 0 && r <= rank else { throw fail(op, "axis \(a) is out of range for inserting into rank \(rank)") }
        return r
    }

    /// An axis for ops that treat a rank-0 tensor as one lane (cumsum, sorts, arg reductions).
    static func laneAxis(_ a: Int, rank: Int, _ op: String) throws -> Int {
        if rank == 0 {
            guard a == 0 || a == -1 else { throw fail(op, "axis \(a) is out of range for a rank-0 tensor") }
            return 0
        }
        return try axis(a, rank: rank, op)
    }

    /// The dtype the reference reads from a result's declared type when it is an integer type.
    static func declaredInteger(_ out: ValueID, _ e: Env, default fallback: DType) -> DType {
        if let d = e.typeOf(out)?.dtype, isInteger(d) { return d }
        return fallback
    }
}
