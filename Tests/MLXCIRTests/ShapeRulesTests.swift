import XCTest
@testable import MLXCIR

/// Result types of every op (Sources/MLXCIR/ShapeRules*.swift), by hand: one valid case per op of
/// the closed set (checked for coverage, and re-run with dynamic dims and unknown scalars to check
/// that symbolic mode contains the concrete answer), then the tricky semantics family by family.
/// That these rules equal the reference executor's is checked on the fixtures in
/// Tests/RuntimeTests/ShapeRulesMatchReferenceTests.swift.
final class ShapeRulesTests: XCTestCase {
    // Operands are %0…%5, results %9 and up.
    let a = ValueID(0), b = ValueID(1), c = ValueID(2), d = ValueID(3), e = ValueID(4), f = ValueID(5)
    let o = ValueID(9), o2 = ValueID(10), o3 = ValueID(11)

    func T(_ dtype: DType, _ dims: Int...) -> TensorType { TensorType(dtype, fixed: dims) }
    func T(_ dtype: DType, _ dims: [Dim]) -> TensorType { TensorType(dtype, dims) }
    func dyn(_ lo: Int, _ hi: Int?) -> Dim { .dynamic(min: lo, max: hi) }
    func lit(_ n: Int) -> IntOrValue { .literal(Int64(n)) }
    func val(_ v: ValueID) -> IntOrValue { .value(v) }

    func infer(_ op: Op, _ types: [ValueID: TensorType], scalars: [ValueID: Int] = [:]) throws -> [TensorType?] {
        try ShapeRules.resultTypes(of: op, type: { types[$0] }, scalar: { scalars[$0] })
    }

    func bounded(_ op: Op, _ types: [ValueID: TensorType], bounds: [ValueID: ShapeRules.Bounds]) throws -> [TensorType?] {
        try ShapeRules.resultTypes(of: op, type: { types[$0] }, scalarBounds: { bounds[$0] })
    }

    func assertType(_ op: Op, _ types: [ValueID: TensorType], _ expected: TensorType?, scalars: [ValueID: Int] = [:],
                    file: StaticString = #filePath, line: UInt = #line) {
        do {
            let r = try infer(op, types, scalars: scalars)
            XCTAssertEqual(r.count, 1, "\(op.name) result count", file: file, line: line)
            XCTAssertEqual(r.first ?? nil, expected, "\(op.name)", file: file, line: line)
        } catch {
            XCTFail("\(op.name): unexpected error \(error)", file: file, line: line)
        }
    }

    func assertFails(_ op: Op, _ types: [ValueID: TensorType], scalars: [ValueID: Int] = [:], mentions words: [String],
                     file: StaticString = #filePath, line: UInt = #line) {
        do {
            let r = try infer(op, types, scalars: scalars)
            XCTFail("\(op.name): expected an error, got \(r)", file: file, line: line)
        } catch let error as IRError {
            for word in words {
                XCTAssertTrue(error.message.contains(word), "\"\(error.message)\" should mention \(word)", file: file, line: line)
            }
        } catch {
            XCTFail("\(op.name): expected IRError, got \(error)", file: file, line: line)
        }
    }

    // MARK: - One case per op

    struct Case {
        var op: Op
        var types: [ValueID: TensorType]
        var scalars: [ValueID: Int] = [:]
        var expected: [TensorType?]
    }

    /// A valid case for every op of the closed set, with its exact result types.
    var catalog: [Case] {
        let f23 = T(.f32, 2, 3), i64s = T(.i64), f64s = T(.f64), bools = T(.bool)
        let q4 = T(.f32, 1, 4, 5, 16), kv = T(.f32, 1, 2, 7, 16)
        func unary(_ make: (ValueID, ValueID) -> Op, _ x: TensorType, _ r: TensorType) -> Case { Case(op: make(a, o), types: [a: x], expected: [r]) }
        func binary(_ make: (ValueID, ValueID, ValueID) -> Op, _ x: TensorType, _ y: TensorType, _ r: TensorType) -> Case {
            Case(op: make(a, b, o), types: [a: x, b: y], expected: [r])
        }
        return [
            Case(op: .noop(NoopOp()), types: [:], expected: []),
            unary({ .idCopy(IdCopyOp(x: $0, out: $1)) }, f23, f23),
            Case(op: .addmm(AddmmOp(mat1: a, mat2: b, out: o, bias: c)), types: [a: f23, b: T(.f32, 3, 4), c: T(.f32, 4)], expected: [T(.f32, 2, 4)]),
            unary({ .itemInt(ItemIntOp(x: $0, out: $1)) }, T(.i32, 1), i64s),
            Case(op: .expandDims(ExpandDimsOp(x: a, out: o, axis: -1)), types: [a: f23], expected: [T(.f32, 2, 3, 1)]),
            Case(op: .tile(TileOp(x: a, out: o, reps: [lit(2), lit(1), lit(3)])), types: [a: f23], expected: [T(.f32, 2, 2, 9)]),
            Case(op: .takeAlongAxis(TakeAlongAxisOp(x: a, indices: b, out: o, axis: 1)), types: [a: T(.f32, 2, 5), b: T(.i32, 1, 3)],
                 expected: [T(.f32, 2, 3)]),
            Case(op: .take(TakeOp(x: a, out: o, index: val(b), axis: 1)), types: [a: T(.f32, 4, 5), b: T(.i64, 2, 3)],
                 expected: [T(.f32, 4, 2, 3)]),
            Case(op: .rmsNorm(RMSNormOp(x: a, weight: b, out: o)), types: [a: T(.bf16, 2, 8), b: T(.bf16, 8)], expected: [T(.bf16, 2, 8)]),
            Case(op: .layerNorm(LayerNormOp(x: a, out: o, weight: b, bias: c)), types: [a: T(.f32, 2, 8), b: T(.f32, 8), c: T(.f32, 8)],
                 expected: [T(.f32, 2, 8)]),
            Case(op: .rope(RopeOp(x: a, out: o, dims: 16, offset: b)), types: [a: q4, b: i64s], expected: [q4]),
            Case(op: .sdpa(SdpaOp(q: a, k: b, v: c, out: o, scale: 0.25, mask: d)), types: [a: q4, b: kv, c: T(.f32, 1, 2, 7, 8), d: T(.f32, 5, 7)],
                 expected: [T(.f32, 1, 4, 5, 8)]),
            binary({ .add(AddOp(a: $0, b: $1, out: $2)) }, T(.f32, 2, 1, 4), T(.f32, 3, 1), T(.f32, 2, 3, 4)),
            Case(op: .addInt(AddIntOp(a: lit(2), b: val(c), out: o)), types: [c: i64s], scalars: [c: 5], expected: [i64s]),
            Case(op: .subtractInt(SubtractIntOp(a: lit(2), b: lit(3), out: o)), types: [:], expected: [i64s]),
            Case(op: .multiplyInt(MultiplyIntOp(a: lit(2), b: lit(3), out: o)), types: [:], expected: [i64s]),
            Case(op: .floorDivideInt(FloorDivideIntOp(a: lit(7), b: lit(2), out: o)), types: [:], expected: [i64s]),
            Case(op: .symSize(SymSizeOp(a: a, dim: -1, out: o)), types: [a: f23], expected: [i64s]),
            binary({ .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }, T(.bf16, 2, 3), T(.f32), T(.bf16, 2, 3)),
            binary({ .divide(DivideOp(a: $0, b: $1, out: $2)) }, T(.i32, 2, 3), T(.i32, 3), T(.f32, 2, 3)),
            binary({ .subtract(SubtractOp(a: $0, b: $1, out: $2)) }, T(.i32, 2), T(.i64, 2), T(.i64, 2)),
            Case(op: .conv1D(Conv1DOp(x: a, w: b, out: o, stride: 2, padding: 1)), types: [a: T(.f32, 2, 10, 4), b: T(.f32, 6, 3, 4)],
                 expected: [T(.f32, 2, 5, 6)]),
            Case(op: .conv2D(Conv2DOp(x: a, w: b, out: o, dilationH: 2, dilationW: 2)), types: [a: T(.f32, 1, 8, 8, 3), b: T(.f32, 4, 3, 3, 3)],
                 expected: [T(.f32, 1, 4, 4, 4)]),
            Case(op: .conv3D(Conv3DOp(x: a, w: b, out: o, groups: 2)), types: [a: T(.f32, 1, 4, 4, 4, 2), b: T(.f32, 4, 2, 2, 2, 1)],
                 expected: [T(.f32, 1, 3, 3, 3, 4)]),
            unary({ .gelu(GeluOp(x: $0, out: $1, approximate: "tanh")) }, T(.i32, 3), T(.f32, 3)),
            Case(op: .arange(ARangeOp(out: o, start: lit(0), stop: lit(10), step: lit(3))), types: [:], expected: [T(.i32, 4)]),
            unary({ .silu(SiluOp(x: $0, out: $1)) }, T(.f16, 3), T(.f16, 3)),
            unary({ .sigmoid(SigmoidOp(x: $0, out: $1)) }, T(.bool, 3), T(.f32, 3)),
            unary({ .tanh(TanhOp(x: $0, out: $1)) }, T(.bf16, 3), T(.bf16, 3)),
            unary({ .squeeze(SqueezeOp(x: $0, out: $1)) }, T(.f32, 1, 3, 1), T(.f32, 3)),
            Case(op: .split(SplitOp(x: a, outs: [o, o2, o3], sizes: [lit(3)])), types: [a: T(.f32, 7, 2)],
                 expected: [T(.f32, 3, 2), T(.f32, 3, 2), T(.f32, 1, 2)]),
            unary({ .rsqrt(RsqrtOp(x: $0, out: $1)) }, T(.bool, 2), T(.f32, 2)),
            binary({ .maximum(MaximumOp(a: $0, b: $1, out: $2)) }, T(.u8, 2), T(.i8, 2), T(.u8, 2)),
            binary({ .minimum(MinimumOp(a: $0, b: $1, out: $2)) }, T(.i16, 2), T(.i32), T(.i16, 2)),
            unary({ .log(LogOp(x: $0, out: $1)) }, f64s, f64s),
            Case(op: .softmax(SoftmaxOp(x: a, out: o, axis: -1)), types: [a: f23], expected: [f23]),
            Case(op: .broadcastTo(BroadcastToOp(x: a, out: o, shape: [lit(2), lit(-1), lit(4)])), types: [a: T(.f32, 3, 1)],
                 expected: [T(.f32, 2, 3, 4)]),
            Case(op: .pad(PadOp(x: a, out: o, padWidth: [lit(1), lit(0), lit(2), lit(2)], mode: "constant")), types: [a: f23],
                 expected: [T(.f32, 3, 7)]),
            Case(op: .where(WhereOp(condition: a, x: b, y: c, out: o)), types: [a: T(.bool, 2, 1), b: T(.f32, 3), c: T(.f64)],
                 expected: [T(.f32, 2, 3)]),
            Case(op: .reshape(ReshapeOp(x: a, out: o, shape: [lit(-1), lit(4)])), types: [a: T(.f32, 2, 3, 4)], expected: [T(.f32, 6, 4)]),
            Case(op: .transpose(TransposeOp(x: a, out: o, perm: [-1, 0, 1])), types: [a: T(.f32, 2, 3, 4)], expected: [T(.f32, 4, 2, 3)]),
            Case(op: .asStrided(AsStridedOp(x: a, out: o, shape: [lit(3), lit(2)], strides: [lit(4), lit(1)])), types: [a: T(.f32, 12)],
                 expected: [T(.f32, 3, 2)]),
            unary({ .contiguous(ContiguousOp(x: $0, out: $1)) }, f23, f23),
            Case(op: .gather(GatherOp(x: a, indices: [b, c], out: o, axes: [0, 2], sliceSizes: [1, 6, 1])),
                 types: [a: T(.f32, 5, 6, 7), b: T(.i32, 2, 3), c: T(.i32, 3)], expected: [T(.f32, 2, 3, 1, 6, 1)]),
            Case(op: .slice(SliceOp(x: a, out: o, axis: lit(0), start: lit(-3), stop: .literal(.max))), types: [a: T(.f32, 10, 4)],
                 expected: [T(.f32, 3, 4)]),
            unary({ .asType(AsTypeOp(x: $0, out: $1, scalarType: .i8)) }, f23, T(.i8, 2, 3)),
            Case(op: .concatenate(ConcatenateOp(tensors: [a, b], out: o, axis: -1)), types: [a: f23, b: T(.bf16, 2, 5)], expected: [T(.f32, 2, 8)]),
            Case(op: .full(FullOp(out: o, shape: [lit(2), val(c)], v: .literal(1), scalarType: .f32)), types: [c: i64s], scalars: [c: 3],
                 expected: [f23]),
            Case(op: .fullLike(FullLikeOp(x: a, out: o, v: .literal(0), scalarType: .f16)), types: [a: T(.i32, 2, 2)], expected: [T(.f16, 2, 2)]),
            Case(op: .argmax(ArgmaxOp(x: a, out: o, axis: 1, keepdims: true)), types: [a: T(.f32, 2, 3, 4)], expected: [T(.u32, 2, 1, 4)]),
            Case(op: .sliceUpdate(SliceUpdateOp(dst: a, update: b, out: o, axis: lit(0), start: lit(2), stop: lit(4))),
                 types: [a: T(.f32, 8, 4), b: T(.f32, 4)], expected: [T(.f32, 8, 4)]),
            Case(op: .indexCopy(IndexCopyOp(dst: a, update: b, indices: c, out: o, axis: 2)),
                 types: [a: T(.f32, 1, 2, 8, 4), b: T(.f32, 1, 2, 3, 4), c: T(.i64, 3)], expected: [T(.f32, 1, 2, 8, 4)]),
            Case(op: .dequantize(DequantizeOp(w: a, scales: b, out: o, biases: c, groupSize: 32, bits: 4, mode: "affine", dtype: .bf16)),
                 types: [a: T(.u32, 16, 4), b: T(.f32, 16, 1), c: T(.f32, 16, 1)], expected: [T(.bf16, 16, 32)]),
            binary({ .less(LessOp(a: $0, b: $1, out: $2)) }, T(.f32, 2, 1), T(.i32, 3), T(.bool, 2, 3)),
            binary({ .lessEqual(LessEqualOp(a: $0, b: $1, out: $2)) }, T(.i64, 3), T(.i64, 3), T(.bool, 3)),
            binary({ .greater(GreaterOp(a: $0, b: $1, out: $2)) }, T(.f32, 3), T(.f64), T(.bool, 3)),
            binary({ .greaterEqual(GreaterEqualOp(a: $0, b: $1, out: $2)) }, T(.f32), T(.f32), T(.bool)),
            binary({ .equal(EqualOp(a: $0, b: $1, out: $2)) }, T(.bool, 2), T(.bool, 2), T(.bool, 2)),
            binary({ .notEqual(NotEqualOp(a: $0, b: $1, out: $2)) }, T(.u8, 4, 1), T(.u8, 5), T(.bool, 4, 5)),
            unary({ .logicalNot(LogicalNotOp(x: $0, out: $1)) }, T(.f32, 2), T(.bool, 2)),
            binary({ .logicalAnd(LogicalAndOp(a: $0, b: $1, out: $2)) }, T(.bool, 2), T(.bool, 3, 1), T(.bool, 3, 2)),
            binary({ .logicalOr(LogicalOrOp(a: $0, b: $1, out: $2)) }, T(.i32, 2), T(.bool, 2), T(.bool, 2)),
            Case(op: .tri(TriOp(out: o, n: lit(3), m: lit(4), scalarType: .f32)), types: [:], expected: [T(.f32, 3, 4)]),
            unary({ .tril(TrilOp(x: $0, out: $1)) }, T(.f32, 3, 3), T(.f32, 3, 3)),
            unary({ .triu(TriuOp(x: $0, out: $1, k: 1)) }, T(.f32, 2, 3, 3), T(.f32, 2, 3, 3)),
            unary({ .floor(FloorOp(x: $0, out: $1)) }, T(.i32, 2), T(.i32, 2)),
            unary({ .ceil(CeilOp(x: $0, out: $1)) }, T(.f16, 2), T(.f16, 2)),
            unary({ .square(SquareOp(x: $0, out: $1)) }, T(.i64, 2), T(.i64, 2)),
            unary({ .exp(ExpOp(x: $0, out: $1)) }, T(.i64, 2), T(.f32, 2)),
            unary({ .sin(SinOp(x: $0, out: $1)) }, T(.f64, 2), T(.f64, 2)),
            unary({ .cos(CosOp(x: $0, out: $1)) }, T(.u8, 2), T(.f32, 2)),
            unary({ .tan(TanOp(x: $0, out: $1)) }, f23, f23),
            unary({ .arcsin(ArcsinOp(x: $0, out: $1)) }, f23, f23),
            unary({ .arccos(ArccosOp(x: $0, out: $1)) }, f23, f23),
            unary({ .arctan(ArctanOp(x: $0, out: $1)) }, f23, f23),
            unary({ .sinh(SinhOp(x: $0, out: $1)) }, f23, f23),
            unary({ .cosh(CoshOp(x: $0, out: $1)) }, f23, f23),
            unary({ .arcsinh(ArcsinhOp(x: $0, out: $1)) }, f23, f23),
            unary({ .arccosh(ArccoshOp(x: $0, out: $1)) }, f23, f23),
            unary({ .arctanh(ArctanhOp(x: $0, out: $1)) }, f23, f23),
            unary({ .log2(Log2Op(x: $0, out: $1)) }, T(.i32), T(.f32)),
            unary({ .log10(Log10Op(x: $0, out: $1)) }, f23, f23),
            unary({ .log1p(Log1pOp(x: $0, out: $1)) }, f23, f23),
            unary({ .erf(ErfOp(x: $0, out: $1)) }, f23, f23),
            unary({ .expm1(Expm1Op(x: $0, out: $1)) }, f23, f23),
            unary({ .round(RoundOp(x: $0, out: $1, decimals: 2)) }, f23, f23),
            unary({ .reciprocal(ReciprocalOp(x: $0, out: $1)) }, T(.i32, 2), T(.f32, 2)),
            unary({ .sqrt(SqrtOp(x: $0, out: $1)) }, f23, f23),
            unary({ .abs(AbsOp(x: $0, out: $1)) }, T(.i8, 2), T(.i8, 2)),
            unary({ .neg(NegOp(x: $0, out: $1)) }, T(.i32, 2), T(.i32, 2)),
            binary({ .atan2(Atan2Op(a: $0, b: $1, out: $2)) }, T(.i32, 2), T(.f16, 2), T(.f16, 2)),
            binary({ .logAddExp(LogAddExpOp(a: $0, b: $1, out: $2)) }, T(.i32, 2), T(.i32, 2), T(.f32, 2)),
            binary({ .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }, T(.i32, 2), T(.i32), T(.i32, 2)),
            binary({ .power(PowerOp(a: $0, b: $1, out: $2)) }, T(.f32, 2), T(.i32), T(.f32, 2)),
            Case(op: .logSumExp(LogSumExpOp(x: a, out: o)), types: [a: f23], expected: [T(.f32)]),
            Case(op: .sum(SumOp(x: a, out: o, axes: [0])), types: [a: T(.i32, 2, 3)], expected: [T(.i32, 3)]),
            Case(op: .mean(MeanOp(x: a, out: o, axes: [-1], keepdims: true)), types: [a: T(.i32, 2, 3)], expected: [T(.f32, 2, 1)]),
            Case(op: .var(VarOp(x: a, out: o, axes: [0, 1], ddof: 1)), types: [a: f23], expected: [T(.f32)]),
            Case(op: .std(StdOp(x: a, out: o, axes: [1])), types: [a: T(.f16, 2, 3)], expected: [T(.f16, 2)]),
            Case(op: .prod(ProdOp(x: a, out: o, axes: [1])), types: [a: T(.u8, 2, 3)], expected: [T(.u32, 2)]),
            Case(op: .max(MaxOp(x: a, out: o, axes: [-1], keepdims: true)), types: [a: T(.i8, 2, 3)], expected: [T(.i8, 2, 1)]),
            Case(op: .min(MinOp(x: a, out: o, axes: [0])), types: [a: f23], expected: [T(.f32, 3)]),
            Case(op: .argmin(ArgminOp(x: a, out: o, axis: 0)), types: [a: f23], expected: [T(.u32, 3)]),
            Case(op: .median(MedianOp(x: a, out: o, axes: [1])), types: [a: T(.i32, 2, 3)], expected: [T(.f32, 2)]),
            Case(op: .modInt(ModIntOp(a: lit(7), b: lit(3), out: o)), types: [:], expected: [i64s]),
            binary({ .remainder(RemainderOp(a: $0, b: $1, out: $2)) }, T(.f32, 2), T(.f32, 2), T(.f32, 2)),
            Case(op: .convTranspose1D(ConvTranspose1DOp(x: a, w: b, out: o, stride: 2, padding: 1, outputPadding: 1)),
                 types: [a: T(.f32, 1, 5, 4), b: T(.f32, 3, 3, 4)], expected: [T(.f32, 1, 10, 3)]),
            Case(op: .convTranspose2D(ConvTranspose2DOp(x: a, w: b, out: o, strideH: 2, strideW: 1)),
                 types: [a: T(.f32, 1, 3, 3, 2), b: T(.f32, 5, 2, 2, 2)], expected: [T(.f32, 1, 6, 4, 5)]),
            Case(op: .convTranspose3D(ConvTranspose3DOp(x: a, w: b, out: o)),
                 types: [a: T(.f32, 1, 2, 2, 2, 2), b: T(.f32, 3, 2, 2, 2, 2)], expected: [T(.f32, 1, 3, 3, 3, 3)]),
            Case(op: .clip(ClipOp(x: a, out: o, aMin: b)), types: [a: f23, b: T(.f32)], expected: [f23]),
            Case(op: .cumsum(CumsumOp(x: a, out: o)), types: [a: T(.bool, 4)], expected: [T(.i32, 4)]),
            Case(op: .stack(StackOp(tensors: [a, b], out: o, axis: -1)), types: [a: f23, b: f23], expected: [T(.f32, 2, 3, 2)]),
            unary({ .sign(SignOp(x: $0, out: $1)) }, f23, f23),
            Case(op: .any(AnyOp(x: a, out: o, axes: [1])), types: [a: f23], expected: [T(.bool, 2)]),
            Case(op: .all(AllOp(x: a, out: o)), types: [a: f23], expected: [bools]),
            Case(op: .repeat(RepeatOp(x: a, out: o, repeats: lit(2), axis: 1)), types: [a: f23], expected: [T(.f32, 2, 6)]),
            Case(op: .sort(SortOp(x: a, out: o, axis: -1)), types: [a: f23], expected: [f23]),
            Case(op: .argsort(ArgsortOp(x: a, out: o, axis: -1)), types: [a: f23], expected: [T(.u32, 2, 3)]),
            Case(op: .partition(PartitionOp(x: a, out: o, kth: lit(1), axis: -1)), types: [a: f23], expected: [f23]),
            Case(op: .argPartition(ArgPartitionOp(x: a, out: o, kth: lit(-2), axis: -1)), types: [a: f23], expected: [T(.u32, 2, 3)]),
            Case(op: .quantizedMatmul(QuantizedMatmulOp(x: a, w: b, scales: c, out: o, biases: d, groupSize: 32, bits: 4, mode: "affine")),
                 types: [a: T(.f32, 5, 64), b: T(.u32, 32, 8), c: T(.f32, 32, 2), d: T(.f32, 32, 2)], expected: [T(.f32, 5, 32)]),
            Case(op: .scatterAdd(ScatterAddOp(x: a, indices: b, updates: c, out: o, axis: 1)),
                 types: [a: T(.f32, 4, 5), b: T(.i32, 4, 2), c: T(.f32, 4, 2)], expected: [T(.f32, 4, 5)]),
            Case(op: .gatherMm(GatherMmOp(a: a, b: b, out: o, lhsIndices: c, rhsIndices: d)),
                 types: [a: T(.f32, 3, 2, 4), b: T(.f32, 5, 4, 6), c: T(.i32, 7), d: T(.i32, 7)], expected: [T(.f32, 7, 2, 6)]),
            Case(op: .gatherQmm(GatherQmmOp(x: a, w: b, scales: c, out: o, mode: "affine", biases: d, rhsIndices: e, groupSize: 32, bits: 4)),
                 types: [a: T(.f32, 7, 1, 64), b: T(.u32, 4, 32, 8), c: T(.f32, 4, 32, 2), d: T(.f32, 4, 32, 2), e: T(.u32, 7)],
                 expected: [T(.f32, 7, 1, 32)]),
            Case(op: .scan(ScanOp(originals: [a], sliced: [b], outputs: [o, o2], carry: [c])), types: [a: f23], expected: [nil, nil]),
            Case(op: .metalKernel(MetalKernelOp(name: "k", source: "", inputs: [a], outputs: [o, o2], grid: [lit(1)], threadgroup: [lit(1)],
                                                outputShapesFlat: [lit(2), val(c), lit(4)], outputShapeLengths: [2, 1],
                                                outputDtypes: [.f32, .i32])),
                 types: [a: f23], scalars: [c: 3], expected: [f23, T(.i32, 4)]),
            unary({ .bitwiseInvert(BitwiseInvertOp(x: $0, out: $1)) }, T(.i32, 2), T(.i32, 2)),
            Case(op: .roll(RollOp(x: a, out: o, shift: [lit(1)], axes: [1])), types: [a: f23], expected: [f23]),
            binary({ .bitwiseAnd(BitwiseAndOp(a: $0, b: $1, out: $2)) }, T(.bool, 2), T(.bool, 2), T(.bool, 2)),
            binary({ .bitwiseOr(BitwiseOrOp(a: $0, b: $1, out: $2)) }, T(.i32, 2), T(.i64, 2), T(.i64, 2)),
            binary({ .bitwiseXor(BitwiseXorOp(a: $0, b: $1, out: $2)) }, T(.u8, 2), T(.u8), T(.u8, 2)),
            Case(op: .if(IfOp(cond: val(a), thenChainIdx: 1, elseChainIdx: 2)), types: [a: bools], expected: []),
            Case(op: .randomBits(RandomBitsOp(out: o, shape: [lit(2), lit(3)])), types: [:], expected: [T(.u32, 2, 3)]),
            Case(op: .updateAndAttend(UpdateAndAttendOp(q: a, k: b, v: c, position: d, out: o, layerId: 0)),
                 types: [a: q4, b: T(.f32, 1, 2, 5, 16), c: T(.f32, 1, 2, 5, 8), d: i64s], expected: [T(.f32, 1, 4, 5, 8)]),
            unary({ .trunc(TruncOp(x: $0, out: $1)) }, f23, f23),
            Case(op: .flip(FlipOp(x: a, out: o, axes: [0, -1])), types: [a: f23], expected: [f23]),
            binary({ .matmul(MatmulOp(a: $0, b: $1, out: $2)) }, T(.f32, 4), T(.f32, 3, 4, 5), T(.f32, 3, 5)),
            Case(op: .llamaCustomSdpa(LlamaCustomSdpaOp(q: a, k: b, v: c, startPos: lit(3), out: o)),
                 types: [a: T(.f32, 1, 5, 4, 16), b: T(.f32, 1, 64, 2, 16), c: T(.f32, 1, 64, 2, 16)], expected: [T(.f32, 1, 5, 4, 16)]),
            Case(op: .llamaUpdateCache(LlamaUpdateCacheOp(value: a, cache: b, startPos: lit(3), out: o)),
                 types: [a: T(.f32, 1, 5, 2, 16), b: T(.f32, 1, 64, 2, 16)], expected: [T(.f32, 1, 64, 2, 16)]),
            Case(op: .llamaUpdateCacheWithIndices(LlamaUpdateCacheWithIndicesOp(value: a, cache: b, startPos: lit(0), indices: c, out: o)),
                 types: [a: T(.f32, 1, 5, 2, 16), b: T(.f32, 1, 64, 2, 16), c: T(.i64, 5)], expected: [T(.f32, 1, 64, 2, 16)]),
            Case(op: .indexPut(IndexPutOp(x: a, indices: [b], indexAxes: [2], values: c, out: o)),
                 types: [a: T(.f32, 1, 2, 64, 16), b: T(.i64, 5), c: T(.f32, 2, 5, 16)], expected: [T(.f32, 1, 2, 64, 16)]),
            Case(op: .copyInto(CopyIntoOp(dst: a, src: b, out: o)), types: [a: f23, b: T(.f64, 3)], expected: [f23]),
            Case(op: .quantizedEmbedding(QuantizedEmbeddingOp(weight: a, scales: b, bits: 4, indices: c, out: o)),
                 types: [a: T(.u8, 10, 8), b: T(.f32, 10, 2), c: T(.i64, 1, 5)], expected: [T(.f32, 1, 5, 16)]),
            Case(op: .delegateCall(DelegateCallOp(backendId: "XnnpackBackend", inputs: [a], outs: [o, o2])), types: [a: f23],
                 expected: [nil, nil]),
            Case(op: .scalarMath(ScalarMathOp(kind: "truediv", args: [a, b], out: o)), types: [a: i64s, b: i64s], expected: [f64s]),
            unary({ .item(ItemOp(x: $0, out: $1)) }, T(.f32, 1, 1), f64s),
            // Ops the fusion passes make: the types of what they replace.
            Case(op: .fusedQuantizedLinear(FusedQuantizedLinearOp(x: a, w: [b, b], scales: [c, c], biases: [d, d], groupSize: 32, bits: 4,
                                                                   epilogue: "none", outs: [o, o2])),
                 types: [a: T(.f32, 5, 64), b: T(.u32, 32, 8), c: T(.f32, 32, 2), d: T(.f32, 32, 2)], expected: [T(.f32, 5, 32), T(.f32, 5, 32)]),
            Case(op: .ropeAttention(RopeAttentionOp(q: a, k: b, v: c, kCache: d, vCache: e, indices: f, offset: f, ropeDims: 16,
                                                    outs: [o, o2, o3])),
                 types: [a: q4, b: T(.f32, 1, 2, 5, 16), c: T(.f32, 1, 2, 5, 16), d: kv, e: kv, f: T(.i64, 5)],
                 expected: [q4, kv, kv]),
            Case(op: .ropeTable(RopeTableOp(x: a, cos: b, sin: c, start: d, stop: e, traditional: true, out: o)),
                 types: [a: q4, b: T(.f32, 40, 8), c: T(.f32, 40, 8), d: i64s, e: i64s], expected: [q4]),
            Case(op: .fusedLinear(FusedLinearOp(x: a, w: [b, b], biases: [], biasOf: [], epilogue: "none", outs: [o, o2])),
                 types: [a: T(.f32, 5, 64), b: T(.f32, 32, 64)], expected: [T(.f32, 5, 32), T(.f32, 5, 32)]),
            // Plain exports' weight-only quantization, and its load-time repack into MLX's affine layout.
            Case(op: .dequantizeAffine(DequantizeAffineOp(x: a, blockSize: [1, 32], scale: b, zeroPoint: c, quantMin: -128, quantMax: 127, out: o)),
                 types: [a: T(.i8, 8, 64), b: T(.f32, 8, 2), c: T(.i8, 8, 2)], expected: [T(.f32, 8, 64)]),
            Case(op: .packAffineWeight(PackAffineWeightOp(q: a, scale: b, zeroPoint: c, quantMin: -8, bits: 4, groupSize: 32, outs: [o, o2, o3])),
                 types: [a: T(.i8, 8, 64), b: T(.f32, 8, 2), c: T(.i8, 8, 2)], expected: [T(.u32, 8, 8), T(.f32, 8, 2), T(.f32, 8, 2)]),
            // The MLX delegate's Metal kernels as native ops: GatedDeltaNet's recurrence (GQA 2:4), GGUF Q4_K rows.
            Case(op: .gatedDeltaRule(GatedDeltaRuleOp(q: a, k: b, v: c, g: d, beta: e, state: f, outs: [o, o2])),
                 types: [a: T(.f32, 1, 3, 2, 32), b: T(.f32, 1, 3, 2, 32), c: T(.f32, 1, 3, 4, 16), d: T(.f32, 1, 3, 4),
                         e: T(.f32, 1, 3, 4), f: T(.f32, 1, 4, 16, 32)],
                 expected: [T(.f32, 1, 3, 4, 16), T(.f32, 1, 4, 16, 32)]),
            Case(op: .ggufDequantize(GgufDequantizeOp(weight: a, ggmlType: "q4_k", dtype: .bf16, out: o)),
                 types: [a: T(.u8, 4, 288)], expected: [T(.bf16, 4, 512)]),
            // GGUF rows repacked into affine groups: two Q6_K blocks a row → K 512 as bytes, groups of 16.
            Case(op: .ggufPackAffine(GgufPackAffineOp(weight: a, ggmlType: "q6_k", outs: [o, o2, o3])),
                 types: [a: T(.u8, 4, 420)], expected: [T(.u32, 4, 128), T(.f32, 4, 32), T(.f32, 4, 32)]),
            // XNNPACK's dynamically quantized linear: x [2, 3, 64], 4-bit codes [N 8, K/8], scales per group of 32.
            Case(op: .dynamicQuantLinear(DynamicQuantLinearOp(x: a, w: b, scales: c, groupSize: 32, bits: 4, out: o)),
                 types: [a: T(.f32, 2, 3, 64), b: T(.u32, 8, 8), c: T(.f32, 8, 2)], expected: [T(.f32, 2, 3, 8)]),
        ]
    }

    func testEveryOpHasARuleAndTheCatalogCoversEveryOp() throws {
        let cases = catalog
        XCTAssertEqual(Set(cases.map(\.op.name)), Set(Op.allNames), "ops without a case")
        XCTAssertEqual(cases.count, Op.allNames.count)
        for c in cases {
            do {
                let r = try infer(c.op, c.types, scalars: c.scalars)
                XCTAssertEqual(r.count, c.op.results.count, "\(c.op.name): one type per result")
                XCTAssertEqual(r, c.expected, "\(c.op.name)")
            } catch {
                XCTFail("\(c.op.name): \(error)")
            }
        }
    }

    /// Symbolic mode contains the concrete answer: each case again with every dim widened to a
    /// range around its size, and with its scalars unknown.
    func testSymbolicModeContainsTheConcreteResult() throws {
        func contains(_ symbolic: TensorType, _ concrete: TensorType) -> Bool {
            symbolic.dtype == concrete.dtype && symbolic.rank == concrete.rank
                && zip(symbolic.shape, concrete.shape).allSatisfy { ShapeRules.canBe($0, $1.fixedValue!) }
        }
        func widen(_ t: TensorType) -> TensorType {
            TensorType(t.dtype, t.shape.map { .dynamic(min: Swift.max(0, $0.fixedValue! - 1), max: $0.fixedValue! + 2) })
        }
        var widened = 0
        for c in catalog {
            let wide = c.types.mapValues(widen)
            for scalars in [c.scalars, [:]] {
                let r: [TensorType?]
                do { r = try infer(c.op, wide, scalars: scalars) } catch {
                    XCTFail("\(c.op.name): symbolic mode throws where a concrete instance is valid: \(error)")
                    continue
                }
                XCTAssertEqual(r.count, c.expected.count, c.op.name)
                for (s, x) in zip(r, c.expected) {
                    guard let s, let x else { continue }  // unknown is always sound
                    XCTAssertTrue(contains(s, x), "\(c.op.name): \(s) does not contain \(x)")
                    if !s.isStatic { widened += 1 }
                }
            }
        }
        XCTAssertGreaterThan(widened, 100)
    }

    // MARK: - Elementwise

    func testBroadcasting() throws {
        let add = Op.add(AddOp(a: a, b: b, out: o))
        assertType(add, [a: T(.f32, 5, 1, 3), b: T(.f32, 4, 1)], T(.f32, 5, 4, 3))
        assertType(add, [a: T(.f32), b: T(.f32, 2, 2)], T(.f32, 2, 2))
        assertType(add, [a: T(.f32, 0, 1), b: T(.f32, 1, 3)], T(.f32, 0, 3))
        assertFails(add, [a: T(.f32, 2, 3), b: T(.f32, 4, 3)], mentions: ["add", "[2, 3]", "[4, 3]", "broadcast"])
        assertFails(.where(WhereOp(condition: a, x: b, y: c, out: o)), [a: T(.bool, 2), b: T(.f32, 3), c: T(.f32, 1)],
                    mentions: ["where"])
        // Dynamic dims: 1 broadcasts over them, fixed sizes pin them, two ranges join.
        assertType(add, [a: T(.f32, [dyn(1, 32), .fixed(64)]), b: T(.f32, 1, 64)], T(.f32, [dyn(1, 32), .fixed(64)]))
        assertType(add, [a: T(.f32, [dyn(1, 32)]), b: T(.f32, 8)], T(.f32, 8))
        assertType(add, [a: T(.f32, [dyn(2, 32)]), b: T(.f32, [dyn(4, 64)])], T(.f32, [dyn(4, 32)]))
        assertType(add, [a: T(.f32, [dyn(1, 32)]), b: T(.f32, [dyn(1, 8)])], T(.f32, [dyn(1, 32)]))
        assertFails(add, [a: T(.f32, [dyn(2, 4)]), b: T(.f32, 8)], mentions: ["?2..4", "8"])
    }

    func testBinaryDTypes() throws {
        let mul = { (x: TensorType, y: TensorType) throws -> DType? in
            try self.infer(.multiply(MultiplyOp(a: self.a, b: self.b, out: self.o)), [self.a: x, self.b: y])[0]?.dtype
        }
        // Rank-0 operands do not promote a tensor within or above their kind.
        XCTAssertEqual(try mul(T(.bf16, 2), T(.f32)), .bf16)
        XCTAssertEqual(try mul(T(.f32), T(.bf16, 2)), .bf16)
        XCTAssertEqual(try mul(T(.i32, 2), T(.i64)), .i32)
        XCTAssertEqual(try mul(T(.i32, 2), T(.f64)), .f32)
        XCTAssertEqual(try mul(T(.bool, 2), T(.f64)), .f32)
        XCTAssertEqual(try mul(T(.i32, 2), T(.f16)), .f16)
        XCTAssertEqual(try mul(T(.bool, 2), T(.i64)), .i64)
        // Same rank class: promote.
        XCTAssertEqual(try mul(T(.bf16, 2), T(.f16, 2)), .f32)
        XCTAssertEqual(try mul(T(.bf16, 2), T(.f32, 2)), .f32)
        XCTAssertEqual(try mul(T(.i32, 2), T(.i64, 2)), .i64)
        XCTAssertEqual(try mul(T(.i32, 2), T(.u32, 2)), .i32)
        XCTAssertEqual(try mul(T(.f64), T(.i32)), .f64)
        XCTAssertEqual(try mul(T(.bool, 2), T(.bool, 2)), .bool)
        // Int division and friends go to floats; comparisons to bool; bitwise refuses floats.
        assertType(.divide(DivideOp(a: a, b: b, out: o)), [a: T(.i64, 2), b: T(.i64, 2)], T(.f32, 2))
        assertType(.divide(DivideOp(a: a, b: b, out: o)), [a: T(.bf16, 2), b: T(.f32)], T(.bf16, 2))
        assertType(.floorDivide(FloorDivideOp(a: a, b: b, out: o)), [a: T(.i64, 2), b: T(.i64, 2)], T(.i64, 2))
        assertType(.equal(EqualOp(a: a, b: b, out: o)), [a: T(.f32, 2), b: T(.i32, 2)], T(.bool, 2))
        assertFails(.bitwiseAnd(BitwiseAndOp(a: a, b: b, out: o)), [a: T(.f32, 2), b: T(.i32, 2)], mentions: ["bitwise_and", "f32"])
        assertFails(.bitwiseInvert(BitwiseInvertOp(x: a, out: o)), [a: T(.f16, 2)], mentions: ["bitwise_invert"])
        assertFails(.neg(NegOp(x: a, out: o)), [a: T(.bool, 2)], mentions: ["neg", "bool"])
        assertFails(.gelu(GeluOp(x: a, out: o, approximate: "fast")), [a: T(.f32, 2)], mentions: ["gelu", "fast"])
        // where: x and y decide the dtype; clip folds left to right.
        assertType(.where(WhereOp(condition: a, x: b, y: c, out: o)), [a: T(.bool, 3), b: T(.bf16, 3), c: T(.f32)], T(.bf16, 3))
        assertType(.clip(ClipOp(x: a, out: o, aMin: b, aMax: c)), [a: T(.i32, 3), b: T(.f64), c: T(.f64)], T(.f32, 3))
        assertType(.clip(ClipOp(x: a, out: o, aMax: c)), [a: T(.f16, 3), c: T(.f32, 2, 1)], T(.f32, 2, 3))
        assertFails(.clip(ClipOp(x: a, out: o)), [a: T(.f32, 3)], mentions: ["clip", "a_min"])
    }

    func testCreationOps() throws {
        // full: sizes from literals or run-time scalars; negative sizes are errors.
        let full = Op.full(FullOp(out: o, shape: [val(a), lit(4)], v: .literal(0), scalarType: .bf16))
        assertType(full, [a: T(.i64)], T(.bf16, 3, 4), scalars: [a: 3])
        assertType(full, [a: T(.i64)], T(.bf16, [dyn(0, nil), .fixed(4)]))
        XCTAssertEqual(try bounded(full, [a: T(.i64)], bounds: [a: .init(2, 9)])[0], T(.bf16, [dyn(2, 9), .fixed(4)]))
        assertFails(full, [a: T(.i64)], scalars: [a: -1], mentions: ["full", "negative"])
        assertType(.full(FullOp(out: o, shape: [], v: .literal(1), scalarType: .i32)), [:], T(.i32))
        // arange: ⌈(stop − start) / step⌉, never negative; dtype given, else declared, else int32.
        func arange(_ start: IntOrValue, _ stop: IntOrValue, _ step: IntOrValue, _ dtype: DType? = nil) -> Op {
            .arange(ARangeOp(out: o, start: start, stop: stop, step: step, scalarType: dtype))
        }
        assertType(arange(lit(0), lit(10), lit(3), .i64), [:], T(.i64, 4))
        assertType(arange(lit(10), lit(0), lit(-3), .f32), [:], T(.f32, 4))
        assertType(arange(lit(5), lit(0), lit(1)), [:], T(.i32, 0))
        assertType(arange(lit(0), lit(6), lit(2)), [o: T(.i64, 3)], T(.i64, 3))  // the declared dtype
        assertFails(arange(lit(0), lit(6), lit(0)), [:], mentions: ["arange", "step"])
        assertFails(arange(lit(0), lit(6), lit(1), .bool), [:], mentions: ["arange", "bool"])
        XCTAssertEqual(try bounded(arange(lit(0), val(a), lit(1), .i64), [:], bounds: [a: .init(1, 32)])[0], T(.i64, [dyn(1, 32)]))
        XCTAssertEqual(try bounded(arange(val(b), val(a), lit(2), .i64), [:], bounds: [a: .init(1, 32), b: .init(0, 4)])[0],
                       T(.i64, [dyn(0, 16)]))
        assertType(arange(lit(0), val(a), lit(1), .i64), [:], T(.i64, [dyn(0, nil)]))
        assertType(.tri(TriOp(out: o, n: val(a), m: lit(2), scalarType: .bool)), [:], T(.bool, 5, 2), scalars: [a: 5])
        assertFails(.randomBits(RandomBitsOp(out: o, shape: [lit(2)], width: 3)), [:], mentions: ["random_bits", "width"])
        assertType(.randomBits(RandomBitsOp(out: o, shape: [lit(2)], width: 1)), [:], T(.u8, 2))
    }

    // MARK: - Shape

    func testReshape() throws {
        func reshape(_ shape: [IntOrValue]) -> Op { .reshape(ReshapeOp(x: a, out: o, shape: shape)) }
        let x = T(.f32, 2, 3, 4)
        assertType(reshape([lit(4), lit(-1)]), [a: x], T(.f32, 4, 6))
        assertType(reshape([lit(-1)]), [a: x], T(.f32, 24))
        assertType(reshape([val(b), lit(2), lit(-1)]), [a: x], T(.f32, 3, 2, 4), scalars: [b: 3])
        assertFails(reshape([lit(0), lit(-1)]), [a: T(.f32, 0, 5)], mentions: ["reshape", "-1"])
        assertType(reshape([lit(0), lit(7)]), [a: T(.f32, 0, 5)], T(.f32, 0, 7))
        assertFails(reshape([lit(5), lit(-1)]), [a: x], mentions: ["reshape", "-1"])
        assertFails(reshape([lit(5), lit(5)]), [a: x], mentions: ["reshape", "[2, 3, 4]"])
        assertFails(reshape([lit(-1), lit(-1)]), [a: x], mentions: ["reshape"])
        assertFails(reshape([lit(-2), lit(-12)]), [a: x], mentions: ["reshape"])
        // Symbolic: a -1 divides the element count's range; one run-time entry is what makes it fit.
        let seq = T(.f32, [.fixed(1), dyn(1, 32), .fixed(64)])
        assertType(reshape([lit(-1), lit(64)]), [a: seq], T(.f32, [dyn(1, 32), .fixed(64)]))
        assertType(reshape([lit(1), val(b), lit(4), lit(16)]), [a: seq], T(.f32, [.fixed(1), dyn(1, 32), .fixed(4), .fixed(16)]))
        XCTAssertEqual(try bounded(reshape([lit(1), val(b), lit(4), lit(16)]), [a: seq], bounds: [b: .init(1, 32)])[0],
                       T(.f32, [.fixed(1), dyn(1, 32), .fixed(4), .fixed(16)]))
        XCTAssertEqual(try bounded(reshape([val(b), lit(2), lit(-1)]), [a: T(.f32, [dyn(2, 64), .fixed(64)])], bounds: [b: .init(1, 32)])[0],
                       T(.f32, [dyn(1, 32), .fixed(2), dyn(2, 2048)]))
        assertType(reshape([val(b), val(c)]), [a: T(.f32, 6)], T(.f32, [dyn(1, 6), dyn(1, 6)]))
        assertType(reshape([val(b), val(c)]), [a: T(.f32, 0)], T(.f32, [dyn(0, nil), dyn(0, nil)]))
        XCTAssertEqual(try bounded(reshape([val(b), lit(-1)]), [a: T(.f32, [dyn(0, 8)])], bounds: [b: .init(2, 4)])[0],
                       T(.f32, [dyn(2, 4), dyn(0, 4)]))
    }

    func testTransposeExpandSqueeze() throws {
        let x = T(.f32, 2, 3, 4)
        assertType(.transpose(TransposeOp(x: a, out: o, perm: [2, 0, 1])), [a: x], T(.f32, 4, 2, 3))
        assertFails(.transpose(TransposeOp(x: a, out: o, perm: [0, 0, 1])), [a: x], mentions: ["transpose", "permutation"])
        assertFails(.transpose(TransposeOp(x: a, out: o, perm: [0, 1])), [a: x], mentions: ["transpose"])
        assertFails(.transpose(TransposeOp(x: a, out: o, perm: [0, 1, 3])), [a: x], mentions: ["transpose", "axis 3"])
        // expand_dims: axis in [-(rank+1), rank]; -1 appends.
        for (axis, shape) in [(0, [1, 2, 3, 4]), (3, [2, 3, 4, 1]), (-1, [2, 3, 4, 1]), (-4, [1, 2, 3, 4]), (-2, [2, 3, 1, 4])] {
            assertType(.expandDims(ExpandDimsOp(x: a, out: o, axis: axis)), [a: x], TensorType(.f32, fixed: shape))
        }
        assertFails(.expandDims(ExpandDimsOp(x: a, out: o, axis: 4)), [a: x], mentions: ["expand_dims", "axis 4"])
        assertFails(.expandDims(ExpandDimsOp(x: a, out: o, axis: -5)), [a: x], mentions: ["expand_dims"])
        assertType(.expandDims(ExpandDimsOp(x: a, out: o, axis: -1)), [a: T(.f32)], T(.f32, 1))
        // squeeze: no dims → all 1s; listed dims only if 1 (PyTorch); a dynamic dim that may be 1 is unknown.
        func squeeze(_ dims: [Int]) -> Op { .squeeze(SqueezeOp(x: a, out: o, dims: dims)) }
        let y = T(.f32, 1, 3, 1, 2)
        assertType(squeeze([]), [a: y], T(.f32, 3, 2))
        assertType(squeeze([-2]), [a: y], T(.f32, 1, 3, 2))
        assertType(squeeze([1]), [a: y], y)
        assertType(squeeze([0, 0]), [a: y], T(.f32, 3, 1, 2))
        assertFails(squeeze([4]), [a: y], mentions: ["squeeze"])
        assertType(squeeze([]), [a: T(.f32, 1, 1)], T(.f32))
        assertType(squeeze([0]), [a: T(.f32, [dyn(2, 8), .fixed(1)])], T(.f32, [dyn(2, 8), .fixed(1)]))
        assertType(squeeze([]), [a: T(.f32, [dyn(1, 8), .fixed(1)])], nil)
        assertType(squeeze([1]), [a: T(.f32, [dyn(1, 8), .fixed(1)])], T(.f32, [dyn(1, 8)]))
    }

    func testBroadcastTo() throws {
        func bt(_ shape: [IntOrValue]) -> Op { .broadcastTo(BroadcastToOp(x: a, out: o, shape: shape)) }
        assertType(bt([lit(2), lit(3), lit(4)]), [a: T(.f32, 3, 1)], T(.f32, 2, 3, 4))
        assertType(bt([lit(2), lit(-1), lit(4)]), [a: T(.f32, 3, 1)], T(.f32, 2, 3, 4))
        assertFails(bt([lit(-1), lit(3)]), [a: T(.f32, 3)], mentions: ["broadcast_to", "-1"])
        assertFails(bt([lit(2), lit(4)]), [a: T(.f32, 3)], mentions: ["broadcast_to"])
        assertFails(bt([lit(1)]), [a: T(.f32, 3)], mentions: ["broadcast_to"])
        assertFails(bt([lit(3)]), [a: T(.f32, 2, 3)], mentions: ["broadcast_to"])
        // Symbolic: an input dim that is not 1 pins the target.
        assertType(bt([val(b), lit(64)]), [a: T(.f32, [dyn(2, 32), .fixed(64)])], T(.f32, [dyn(2, 32), .fixed(64)]))
        assertType(bt([lit(1), lit(-1), lit(8)]), [a: T(.f32, [dyn(1, 32), .fixed(1)])], T(.f32, [.fixed(1), dyn(1, 32), .fixed(8)]))
    }

    /// Python's `slice(start, stop, step).indices(n)` length, by the definition.
    func pythonSliceLength(_ n: Int, _ start: Int, _ stop: Int, _ step: Int) -> Int {
        func clamp(_ i: Int, _ lo: Int, _ hi: Int) -> Int { Swift.min(Swift.max(i, lo), hi) }
        let (lo, hi) = step > 0 ? (0, n) : (-1, n - 1)
        let s = clamp(start < 0 ? start + n : start, lo, hi)
        let e = clamp(stop < 0 ? stop + n : stop, lo, hi)
        var count = 0, i = s
        while step > 0 ? i < e : i > e { count += 1; i += step }
        return count
    }

    func testSliceFollowsPythonSemantics() throws {
        let bigStop = Int(Int64.max), bigStart = Int(Int64.min)
        var checked = 0
        for n in [0, 1, 2, 5, 10] {
            for start in [bigStart, -12, -5, -1, 0, 1, 3, 9, 12, bigStop] {
                for stop in [bigStart, -12, -3, -1, 0, 2, 5, 11, bigStop] {
                    for step in [-3, -1, 1, 2, 4] {
                        let op = Op.slice(SliceOp(x: a, out: o, axis: lit(-1), start: .literal(Int64(start)), stop: .literal(Int64(stop)),
                                                  step: step))
                        let r = try infer(op, [a: T(.f16, 3, n)])[0]
                        XCTAssertEqual(r, T(.f16, 3, pythonSliceLength(n, start, stop, step)), "\(n)[\(start):\(stop):\(step)]")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 2250)
        assertFails(.slice(SliceOp(x: a, out: o, axis: lit(0), start: lit(0), stop: lit(1), step: 0)), [a: T(.f32, 4)], mentions: ["slice", "step"])
        assertFails(.slice(SliceOp(x: a, out: o, axis: lit(2), start: lit(0), stop: lit(1))), [a: T(.f32, 4, 4)], mentions: ["slice", "axis 2"])
        // The axis and bounds may be run-time scalars.
        assertType(.slice(SliceOp(x: a, out: o, axis: val(b), start: val(c), stop: val(d))), [a: T(.f32, 4, 9)], T(.f32, 4, 3),
                   scalars: [b: 1, c: 2, d: 5])
    }

    func testSliceSymbolic() throws {
        func slice(_ start: IntOrValue, _ stop: IntOrValue, step: Int = 1) -> Op {
            .slice(SliceOp(x: a, out: o, axis: lit(0), start: start, stop: stop, step: step))
        }
        let seq = T(.f32, [dyn(1, 32), .fixed(8)])
        // Exact bounds over a dynamic size: exact range of the count.
        assertType(slice(lit(0), lit(4)), [a: seq], T(.f32, [dyn(1, 4), .fixed(8)]))
        assertType(slice(lit(-1), .literal(.max)), [a: seq], T(.f32, 1, 8))
        assertType(slice(lit(1), .literal(.max), step: 2), [a: seq], T(.f32, [dyn(0, 16), .fixed(8)]))
        // Unknown bounds: at most the dim, and at most stop − start when both are non-negative.
        assertType(slice(val(b), val(c)), [a: T(.f32, 64, 8)], T(.f32, [dyn(0, 64), .fixed(8)]))
        XCTAssertEqual(try bounded(slice(val(b), val(c)), [a: T(.f32, 64, 8)], bounds: [b: .init(0, nil), c: .init(1, 32)])[0],
                       T(.f32, [dyn(0, 32), .fixed(8)]))
        // Unknown axis: every dim may shrink.
        assertType(.slice(SliceOp(x: a, out: o, axis: val(b), start: lit(0), stop: lit(2))), [a: T(.f32, 4, 9)],
                   T(.f32, [dyn(0, 4), dyn(0, 9)]))
    }

    func testConcatenateSplitStack() throws {
        let cat = Op.concatenate(ConcatenateOp(tensors: [a, b, c], out: o, axis: 1))
        assertType(cat, [a: T(.f32, 2, 1), b: T(.f32, 2, 3), c: T(.i32, 2, 0)], T(.f32, 2, 4))
        assertType(cat, [a: T(.bf16, 2, 1), b: T(.f16, 2, 3), c: T(.bf16, 2, 0)], T(.f32, 2, 4))
        assertFails(cat, [a: T(.f32, 2, 1), b: T(.f32, 3, 3), c: T(.f32, 2, 0)], mentions: ["concatenate", "[3, 3]", "axis 1"])
        assertFails(cat, [a: T(.f32, 2, 1), b: T(.f32, 2, 3, 1), c: T(.f32, 2, 0)], mentions: ["concatenate"])
        assertFails(.concatenate(ConcatenateOp(tensors: [], out: o)), [:], mentions: ["concatenate", "no tensors"])
        assertType(cat, [a: T(.f32, [dyn(1, 8), .fixed(1)]), b: T(.f32, [.fixed(4), dyn(1, 3)]), c: T(.f32, [dyn(2, 9), .fixed(2)])],
                   T(.f32, [.fixed(4), dyn(4, 6)]))
        // split: one chunk size (the last part may be shorter) or the part sizes.
        func split(_ sizes: [IntOrValue], _ outs: Int, axis: Int = 0) -> Op {
            .split(SplitOp(x: a, outs: Array([o, o2, o3][..<outs]), sizes: sizes, axis: axis))
        }
        XCTAssertEqual(try infer(split([lit(2)], 2), [a: T(.f32, 4, 3)]), [T(.f32, 2, 3), T(.f32, 2, 3)])
        XCTAssertEqual(try infer(split([lit(1), lit(2)], 2, axis: -1), [a: T(.f32, 4, 3)]), [T(.f32, 4, 1), T(.f32, 4, 2)])
        XCTAssertEqual(try infer(split([lit(5)], 1), [a: T(.f32, 0, 3)]), [T(.f32, 0, 3)])
        assertFails(split([lit(2)], 2), [a: T(.f32, 5, 3)], mentions: ["split", "3 parts", "2 outputs"])
        assertFails(split([lit(1), lit(1)], 2), [a: T(.f32, 3)], mentions: ["split", "add up"])
        assertFails(split([lit(0)], 2), [a: T(.f32, 3)], mentions: ["split", "positive"])
        XCTAssertEqual(try infer(split([lit(4)], 3), [a: T(.f32, [dyn(9, 12)])]), [T(.f32, 4), T(.f32, 4), T(.f32, [dyn(1, 4)])])
        XCTAssertEqual(try infer(split([val(b), val(c)], 2), [a: T(.f32, 6)]), [T(.f32, [dyn(0, nil)]), T(.f32, [dyn(0, nil)])])
        // stack: equal shapes, a new axis.
        let stack = Op.stack(StackOp(tensors: [a, b], out: o, axis: 0))
        assertType(stack, [a: T(.f32, 2, 3), b: T(.f32, 2, 3)], T(.f32, 2, 2, 3))
        assertFails(stack, [a: T(.f32, 2, 3), b: T(.f32, 3, 2)], mentions: ["stack", "differ"])
        assertFails(.stack(StackOp(tensors: [a], out: o, axis: 3)), [a: T(.f32, 2, 3)], mentions: ["stack", "axis 3"])
    }

    func testTileRepeatPadAndViews() throws {
        assertType(.tile(TileOp(x: a, out: o, reps: [lit(2)])), [a: T(.f32, 2, 3)], T(.f32, 2, 6))
        assertType(.tile(TileOp(x: a, out: o, reps: [lit(2), lit(1), lit(1)])), [a: T(.f32, 3)], T(.f32, 2, 1, 3))
        assertFails(.tile(TileOp(x: a, out: o, reps: [lit(-1)])), [a: T(.f32, 3)], mentions: ["tile"])
        assertType(.repeat(RepeatOp(x: a, out: o, repeats: lit(3), axis: -1)), [a: T(.f32, 2, 3)], T(.f32, 2, 9))
        assertFails(.repeat(RepeatOp(x: a, out: o, repeats: lit(-3))), [a: T(.f32, 2)], mentions: ["repeat"])
        assertFails(.repeat(RepeatOp(x: a, out: o, repeats: lit(3))), [a: T(.f32)], mentions: ["repeat", "rank 0"])
        assertType(.repeat(RepeatOp(x: a, out: o, repeats: lit(2))), [a: T(.f32, [dyn(1, 32)])], T(.f32, [dyn(2, 64)]))
        let pad = Op.pad(PadOp(x: a, out: o, padWidth: [lit(0), lit(1), lit(2), lit(3)], mode: "edge"))
        assertType(pad, [a: T(.f32, 2, 3)], T(.f32, 3, 8))
        assertFails(pad, [a: T(.f32, 3)], mentions: ["pad", "pair"])
        assertFails(.pad(PadOp(x: a, out: o, padWidth: [lit(-1), lit(0)], mode: "constant")), [a: T(.f32, 3)], mentions: ["pad", "negative"])
        assertFails(.pad(PadOp(x: a, out: o, padWidth: [lit(0), lit(0)], mode: "reflect")), [a: T(.f32, 3)], mentions: ["pad", "reflect"])
        assertFails(.flip(FlipOp(x: a, out: o, axes: [0, -2])), [a: T(.f32, 2, 3)], mentions: ["flip", "repeated"])
        assertFails(.roll(RollOp(x: a, out: o, shift: [lit(1)], axes: [0, 1])), [a: T(.f32, 2, 3)], mentions: ["roll", "shifts"])
        assertFails(.roll(RollOp(x: a, out: o, shift: [lit(1)], axes: [2])), [a: T(.f32, 2, 3)], mentions: ["roll", "axis 2"])
        assertFails(.asStrided(AsStridedOp(x: a, out: o, shape: [lit(2)], strides: [])), [a: T(.f32, 4)], mentions: ["as_strided"])
        assertFails(.asStrided(AsStridedOp(x: a, out: o, shape: [lit(3), lit(2)], strides: [lit(2), lit(1)], offset: 1)),
                    [a: T(.f32, 6)], mentions: ["as_strided", "1...6 of 6"])
        assertType(.asStrided(AsStridedOp(x: a, out: o, shape: [lit(3), lit(2)], strides: [lit(2), lit(1)])), [a: T(.f32, 6)], T(.f32, 3, 2))
        assertType(.asStrided(AsStridedOp(x: a, out: o, shape: [lit(3), lit(2)], strides: [lit(0), lit(1)], offset: 4)), [a: T(.f32, 6)],
                   T(.f32, 3, 2))
        assertFails(.tril(TrilOp(x: a, out: o)), [a: T(.f32, 3)], mentions: ["tril", "2 dims"])
    }

    // MARK: - Reductions

    func testReductions() throws {
        let x = T(.f32, 2, 3, 4)
        func sum(_ axes: [Int], _ keep: Bool = false) -> Op { .sum(SumOp(x: a, out: o, axes: axes, keepdims: keep)) }
        assertType(sum([]), [a: x], T(.f32))
        assertType(sum([], true), [a: x], T(.f32, 1, 1, 1))
        assertType(sum([-1, 0]), [a: x], T(.f32, 3))
        assertType(sum([-1, 0], true), [a: x], T(.f32, 1, 3, 1))
        assertFails(sum([1, -2]), [a: x], mentions: ["sum", "twice"])
        assertFails(sum([3]), [a: x], mentions: ["sum", "axis 3"])
        assertType(sum([0]), [a: T(.f32)], T(.f32))
        assertType(sum([-1], true), [a: T(.f32)], T(.f32))
        assertFails(sum([1]), [a: T(.f32)], mentions: ["sum", "rank-0"])
        // Integer accumulators: the declared integer type, else MLX's.
        for (input, result) in [(DType.bool, DType.i32), (.i8, .i32), (.i32, .i32), (.i64, .i64), (.u8, .u32), (.u64, .u64), (.bf16, .bf16)] {
            assertType(sum([0]), [a: T(input, 2)], T(result))
        }
        assertType(sum([0]), [a: T(.bool, 2), o: T(.i64)], T(.i64))
        assertType(sum([0]), [a: T(.f16, 2), o: T(.f32)], T(.f16))
        assertType(.mean(MeanOp(x: a, out: o, axes: [0])), [a: T(.bool, 2)], T(.f32))
        assertType(.max(MaxOp(x: a, out: o, axes: [0])), [a: T(.bool, 2, 3)], T(.bool, 3))
        assertFails(.max(MaxOp(x: a, out: o, axes: [0])), [a: T(.f32, 0, 3)], mentions: ["max", "size 0"])
        assertType(.max(MaxOp(x: a, out: o, axes: [0])), [a: T(.f32, 0, 0)], T(.f32, 0))
        assertType(.sum(SumOp(x: a, out: o, axes: [0])), [a: T(.f32, 0, 3)], T(.f32, 3))
        // Dynamic dims pass through.
        assertType(.mean(MeanOp(x: a, out: o, axes: [-1], keepdims: true)), [a: T(.f32, [dyn(1, 32), .fixed(64)])],
                   T(.f32, [dyn(1, 32), .fixed(1)]))
    }

    func testArgReductionsSortsAndScans() throws {
        let x = T(.f32, 2, 3)
        assertType(.argmax(ArgmaxOp(x: a, out: o, axis: -1)), [a: x], T(.u32, 2))
        assertType(.argmax(ArgmaxOp(x: a, out: o, axis: -1)), [a: x, o: T(.i64, 2)], T(.i64, 2))
        assertType(.argmax(ArgmaxOp(x: a, out: o, axis: 0, keepdims: true)), [a: x], T(.u32, 1, 3))
        assertType(.argmin(ArgminOp(x: a, out: o, axis: -1)), [a: T(.f32)], T(.u32))
        assertFails(.argmax(ArgmaxOp(x: a, out: o, axis: 2)), [a: x], mentions: ["argmax", "axis 2"])
        assertFails(.argmax(ArgmaxOp(x: a, out: o, axis: 1)), [a: T(.f32, 2, 0)], mentions: ["argmax", "empty"])
        assertType(.argsort(ArgsortOp(x: a, out: o, axis: 0)), [a: x, o: T(.i32, 2, 3)], T(.i32, 2, 3))
        assertType(.argsort(ArgsortOp(x: a, out: o, axis: 0)), [a: x, o: T(.f32, 2, 3)], T(.u32, 2, 3))
        assertType(.sort(SortOp(x: a, out: o, axis: -1)), [a: T(.i8, 4)], T(.i8, 4))
        assertFails(.partition(PartitionOp(x: a, out: o, kth: lit(3), axis: -1)), [a: x], mentions: ["partition", "kth 3"])
        assertType(.partition(PartitionOp(x: a, out: o, kth: lit(-3), axis: -1)), [a: x], x)
        assertType(.cumsum(CumsumOp(x: a, out: o, axis: -1)), [a: T(.bool, 4), o: T(.i64, 4)], T(.i64, 4))
        assertType(.cumsum(CumsumOp(x: a, out: o, axis: -1)), [a: T(.i8, 4)], T(.i8, 4))
        assertType(.cumsum(CumsumOp(x: a, out: o, axis: 0)), [a: T(.f32)], T(.f32))
    }

    // MARK: - Indexing

    func testTakeAndGathers() throws {
        let x = T(.f32, 4, 5, 6)
        assertType(.take(TakeOp(x: a, out: o, index: lit(2), axis: 1)), [a: x], T(.f32, 4, 6))
        assertType(.take(TakeOp(x: a, out: o, index: lit(-1), axis: -1)), [a: x], T(.f32, 4, 5))
        assertType(.take(TakeOp(x: a, out: o, index: val(b), axis: 1)), [a: x, b: T(.i64)], T(.f32, 4, 6))
        assertType(.take(TakeOp(x: a, out: o, index: val(b), axis: 1)), [a: x, b: T(.i64, 1)], T(.f32, 4, 1, 6))
        assertType(.take(TakeOp(x: a, out: o, index: val(b), axis: 0)), [a: T(.f32, 256, 64), b: T(.i64, [.fixed(1), dyn(1, 32)])],
                   T(.f32, [.fixed(1), dyn(1, 32), .fixed(64)]))
        assertFails(.take(TakeOp(x: a, out: o, index: lit(0), axis: 3)), [a: x], mentions: ["take", "axis 3"])
        assertFails(.take(TakeOp(x: a, out: o, index: lit(5), axis: 1)), [a: x], mentions: ["take", "index 5"])
        assertFails(.take(TakeOp(x: a, out: o, index: lit(-6), axis: 1)), [a: x], mentions: ["take", "index -6"])
        assertType(.take(TakeOp(x: a, out: o, index: lit(-5), axis: 1)), [a: x], T(.f32, 4, 6))
        let taa = Op.takeAlongAxis(TakeAlongAxisOp(x: a, indices: b, out: o, axis: -1))
        assertType(taa, [a: T(.f32, 1, 5), b: T(.u32, 3, 2)], T(.f32, 3, 2))
        assertFails(taa, [a: T(.f32, 2, 5), b: T(.u32, 3, 2)], mentions: ["take_along_axis", "outside axis"])
        assertFails(taa, [a: T(.f32, 2, 5), b: T(.u32, 2)], mentions: ["take_along_axis", "rank"])
        let gather = Op.gather(GatherOp(x: a, indices: [b], out: o, axes: [0], sliceSizes: [1, 5, 6]))
        assertType(gather, [a: x, b: T(.i32, 7)], T(.f32, 7, 1, 5, 6))
        assertFails(.gather(GatherOp(x: a, indices: [b], out: o, axes: [0], sliceSizes: [1, 6, 6])), [a: x, b: T(.i32, 7)],
                    mentions: ["gather", "fit"])
        assertFails(.gather(GatherOp(x: a, indices: [b, c], out: o, axes: [0, -3], sliceSizes: [1, 5, 6])),
                    [a: x, b: T(.i32, 7), c: T(.i32, 7)], mentions: ["gather", "repeated"])
        let scatter = Op.scatterAdd(ScatterAddOp(x: a, indices: b, updates: c, out: o, axis: 0))
        assertType(scatter, [a: T(.f32, 5, 1), b: T(.i32, 2, 3), c: T(.f32, 1, 1, 3)], T(.f32, 5, 3))
        assertFails(scatter, [a: T(.f32, 5, 1), b: T(.i32, 2, 3), c: T(.f32, 2, 1, 3)], mentions: ["scatter_add", "more dims"])
    }

    func testWritesReturnTheDestination() throws {
        let dst = T(.f32, 1, 2, 64, 16)
        let su = Op.sliceUpdate(SliceUpdateOp(dst: a, update: b, out: o, axis: lit(2), start: val(c), stop: val(d)))
        assertType(su, [a: dst, b: T(.f32, 1, 2, 5, 16)], dst, scalars: [c: 3, d: 8])
        assertFails(su, [a: dst, b: T(.f32, 1, 2, 5, 16)], scalars: [c: 3, d: 7], mentions: ["slice_update", "broadcast"])
        assertType(su, [a: dst, b: T(.f32, 1, 2, 5, 16)], dst, scalars: [c: 70, d: 80])  // an empty slice writes nothing
        assertType(su, [a: dst, b: T(.f32, 1, 2, 5, 16)], dst)
        assertFails(.sliceUpdate(SliceUpdateOp(dst: a, update: b, out: o, axis: lit(0), start: lit(0), stop: lit(1), step: -1)),
                    [a: dst, b: T(.f32, 1)], mentions: ["slice_update", "step"])
        let ic = Op.indexCopy(IndexCopyOp(dst: a, update: b, indices: c, out: o, axis: 2))
        assertType(ic, [a: dst, b: T(.f32, [.fixed(1), .fixed(2), dyn(1, 32), .fixed(16)]), c: T(.i64, [dyn(1, 32)])], dst)
        assertFails(ic, [a: dst, b: T(.f32, 1, 2, 4, 16), c: T(.i64, 5)], mentions: ["index_copy"])
        assertFails(ic, [a: dst, b: T(.f32, 1, 2, 5, 16), c: T(.i64, 5, 1)], mentions: ["index_copy", "1-D"])
        let ip = Op.indexPut(IndexPutOp(x: a, indices: [b, c], indexAxes: [0, 2], values: d, out: o))
        assertType(ip, [a: T(.f32, 3, 4, 5), b: T(.i64, 6), c: T(.i64, 6), d: T(.f32, 6, 4)], T(.f32, 3, 4, 5))
        assertFails(ip, [a: T(.f32, 3, 4, 5), b: T(.i64, 6), c: T(.i64, 6), d: T(.f32, 4, 6)], mentions: ["index_put", "[6, 4]"])
        assertType(ip, [a: T(.f32, 3, 4, 5), b: T(.bool, 3), c: T(.i64, 6), d: T(.f32, 4, 6)], T(.f32, 3, 4, 5))  // masks: data-dependent
        assertFails(.copyInto(CopyIntoOp(dst: a, src: b, out: o)), [a: T(.f32, 2, 3), b: T(.f32, 2)], mentions: ["copy_into"])
    }

    // MARK: - Linear algebra

    func testMatmul() throws {
        let mm = Op.matmul(MatmulOp(a: a, b: b, out: o))
        assertType(mm, [a: T(.f32, 2, 3), b: T(.f32, 3, 4)], T(.f32, 2, 4))
        assertType(mm, [a: T(.f32, 3), b: T(.f32, 3)], T(.f32))
        assertType(mm, [a: T(.f32, 2, 3), b: T(.f32, 3)], T(.f32, 2))
        assertType(mm, [a: T(.f32, 5, 1, 2, 3), b: T(.f32, 4, 3, 6)], T(.f32, 5, 4, 2, 6))
        assertType(mm, [a: T(.bf16, 2, 3), b: T(.f16, 3, 4)], T(.f32, 2, 4))
        assertFails(mm, [a: T(.f32, 2, 3), b: T(.f32, 4, 5)], mentions: ["matmul", "inner dims", "[2, 3]", "[4, 5]"])
        assertFails(mm, [a: T(.f32, 2, 2, 3), b: T(.f32, 3, 3, 4)], mentions: ["matmul", "batch"])
        assertFails(mm, [a: T(.f32), b: T(.f32, 3)], mentions: ["matmul", "at least one dim"])
        assertType(mm, [a: T(.f32, [.fixed(1), dyn(1, 32), .fixed(64)]), b: T(.f32, 64, 256)], T(.f32, [.fixed(1), dyn(1, 32), .fixed(256)]))
        assertFails(mm, [a: T(.f32, [dyn(1, 8), dyn(2, 4)]), b: T(.f32, 8, 2)], mentions: ["inner dims"])
        let addmm = Op.addmm(AddmmOp(mat1: a, mat2: b, out: o, bias: c))
        assertType(addmm, [a: T(.bf16, 2, 3), b: T(.bf16, 3, 4), c: T(.f32, 2, 1)], T(.f32, 2, 4))
        assertFails(addmm, [a: T(.f32, 2, 3), b: T(.f32, 3, 4), c: T(.f32, 3)], mentions: ["addmm", "bias"])
        assertType(.addmm(AddmmOp(mat1: a, mat2: b, out: o)), [a: T(.f32, 2, 3), b: T(.f32, 3, 4)], T(.f32, 2, 4))
        // gather_mm: index arrays broadcast to the batch; without them a plain matmul.
        let gmm = Op.gatherMm(GatherMmOp(a: a, b: b, out: o, rhsIndices: d))
        assertType(gmm, [a: T(.f32, 6, 1, 8), b: T(.f32, 4, 8, 16), d: T(.u32, 6)], T(.f32, 6, 1, 16))
        assertType(gmm, [a: T(.f32, 2, 3, 1, 8), b: T(.f32, 4, 8, 16), d: T(.u32, 1, 3)], T(.f32, 2, 3, 1, 16))
        assertFails(gmm, [a: T(.f32, 6, 1, 8), b: T(.f32, 4, 8, 16), d: T(.u32, 5)], mentions: ["gather_mm", "broadcast"])
        assertType(.gatherMm(GatherMmOp(a: a, b: b, out: o)), [a: T(.f32, 2, 3), b: T(.f32, 3)], T(.f32, 2))
    }

    func testConvolutionSizes() throws {
        func conv1d(_ stride: Int, _ padding: Int, _ dilation: Int, groups: Int = 1) -> Op {
            .conv1D(Conv1DOp(x: a, w: b, out: o, stride: stride, padding: padding, dilation: dilation, groups: groups))
        }
        // Whisper's front end: 3000 frames, kernel 3, padding 1, strides 1 then 2.
        assertType(conv1d(1, 1, 1), [a: T(.f32, 1, 3000, 80), b: T(.f32, 384, 3, 80)], T(.f32, 1, 3000, 384))
        assertType(conv1d(2, 1, 1), [a: T(.f32, 1, 3000, 384), b: T(.f32, 384, 3, 384)], T(.f32, 1, 1500, 384))
        assertType(conv1d(3, 0, 2), [a: T(.f32, 2, 11, 4), b: T(.f32, 6, 3, 4)], T(.f32, 2, 3, 6))
        assertType(conv1d(1, 0, 1, groups: 2), [a: T(.f32, 1, 5, 4), b: T(.f32, 6, 2, 2)], T(.f32, 1, 4, 6))
        assertFails(conv1d(1, 0, 1, groups: 2), [a: T(.f32, 1, 5, 4), b: T(.f32, 5, 2, 2)], mentions: ["conv1d", "group"])
        assertFails(conv1d(1, 0, 1), [a: T(.f32, 1, 5, 4), b: T(.f32, 6, 2, 3)], mentions: ["conv1d", "group"])
        assertFails(conv1d(1, 0, 4), [a: T(.f32, 1, 5, 4), b: T(.f32, 6, 3, 4)], mentions: ["conv1d", "larger"])
        assertFails(conv1d(0, 0, 1), [a: T(.f32, 1, 5, 4), b: T(.f32, 6, 3, 4)], mentions: ["conv1d", "stride"])
        assertFails(conv1d(1, 0, 1), [a: T(.f32, 5, 4), b: T(.f32, 6, 3, 4)], mentions: ["conv1d", "rank 3"])
        assertType(conv1d(2, 1, 1), [a: T(.f32, [.fixed(1), dyn(1, 100), .fixed(4)]), b: T(.f32, 6, 3, 4)],
                   T(.f32, [.fixed(1), dyn(1, 50), .fixed(6)]))
        assertType(.conv2D(Conv2DOp(x: a, w: b, out: o, strideH: 2, strideW: 3, paddingH: 1, paddingW: 0)),
                   [a: T(.bf16, 1, 7, 9, 3), b: T(.bf16, 8, 3, 3, 3)], T(.bf16, 1, 4, 3, 8))
        let ct = Op.convTranspose1D(ConvTranspose1DOp(x: a, w: b, out: o, stride: 3, padding: 2, dilation: 2, outputPadding: 1))
        // (4 − 1)·3 − 2·2 + 2·(3 − 1) + 1 + 1 = 11
        assertType(ct, [a: T(.f32, 1, 4, 2), b: T(.f32, 5, 3, 2)], T(.f32, 1, 11, 5))
        assertFails(.convTranspose1D(ConvTranspose1DOp(x: a, w: b, out: o, padding: 5)), [a: T(.f32, 1, 2, 2), b: T(.f32, 5, 3, 2)],
                    mentions: ["conv_transpose1d", "no output"])
    }

    func testQuantizedShapes() throws {
        // Affine 4-bit: 8 words hold 64 values. With transpose N is the rows of w; without, words·32/bits.
        func qmm(transpose: Bool, bits: Int = 4, mode: String = "affine") -> Op {
            .quantizedMatmul(QuantizedMatmulOp(x: a, w: b, scales: c, out: o, biases: d, groupSize: 32, bits: bits, mode: mode,
                                               transpose: transpose))
        }
        let seq = T(.bf16, [.fixed(1), dyn(1, 32), .fixed(64)])
        assertType(qmm(transpose: true), [a: seq, b: T(.u32, 256, 8), c: T(.bf16, 256, 2), d: T(.bf16, 256, 2)],
                   T(.bf16, [.fixed(1), dyn(1, 32), .fixed(256)]))
        assertType(qmm(transpose: false), [a: T(.f32, 3, 64), b: T(.u32, 64, 4), c: T(.f32, 64, 1), d: T(.f32, 64, 1)], T(.f32, 3, 32))
        assertType(qmm(transpose: true, bits: 8), [a: T(.f32, 3, 64), b: T(.u32, 10, 16), c: T(.f32, 10, 2), d: T(.f32, 10, 2)],
                   T(.f32, 3, 10))
        assertType(qmm(transpose: true, bits: 3), [a: T(.f32, 3, 64), b: T(.u32, 10, 6), c: T(.f32, 10, 2), d: T(.f32, 10, 2)],
                   T(.f32, 3, 10))
        assertFails(qmm(transpose: true), [a: T(.f32, 3, 32), b: T(.u32, 10, 8), c: T(.f32, 10, 2), d: T(.f32, 10, 2)],
                    mentions: ["quantized_matmul", "inner dims"])
        assertFails(qmm(transpose: true), [a: T(.f32, 3, 64), b: T(.u32, 10, 8), c: T(.f32, 10, 4), d: T(.f32, 10, 4)],
                    mentions: ["quantized_matmul", "scales"])
        assertFails(qmm(transpose: true, bits: 7), [a: T(.f32, 3, 64), b: T(.u32, 10, 8), c: T(.f32, 10, 2), d: T(.f32, 10, 2)],
                    mentions: ["7-bit"])
        assertFails(qmm(transpose: true, mode: "int4"), [a: T(.f32, 3, 64), b: T(.u32, 10, 8), c: T(.f32, 10, 2), d: T(.f32, 10, 2)],
                    mentions: ["int4"])
        // dequantize: K = words·32/code bits (8 for mxfp8, 4 for the fp4 modes); the dtype is given or the scales'.
        func deq(_ mode: String, bits: Int, biases: ValueID? = nil, dtype: DType? = nil, global: ValueID? = nil) -> Op {
            .dequantize(DequantizeOp(w: a, scales: b, out: o, biases: biases, groupSize: 32, bits: bits, mode: mode, globalScale: global,
                                     dtype: dtype))
        }
        assertType(deq("mxfp8", bits: 8), [a: T(.u32, 4, 8), b: T(.u8, 4, 1)], T(.u8, 4, 32))
        assertType(deq("mxfp4", bits: 4, dtype: .bf16), [a: T(.u32, 4, 8), b: T(.u8, 4, 2)], T(.bf16, 4, 64))
        assertType(deq("affine", bits: 2, biases: c), [a: T(.u32, 1, 2, 4), b: T(.f16, 1, 2, 2), c: T(.f16, 1, 2, 2)], T(.f16, 1, 2, 64))
        assertType(deq("nvfp4", bits: 4, dtype: .f32, global: d), [a: T(.u32, 4, 8), b: T(.u8, 4, 2), d: T(.f32)], T(.f32, 4, 64))
        assertFails(deq("affine", bits: 4), [a: T(.u32, 4, 8), b: T(.f32, 4, 2)], mentions: ["dequantize", "biases"])
        // gather_qmm: the experts' batch is indexed.
        let gq = Op.gatherQmm(GatherQmmOp(x: a, w: b, scales: c, out: o, mode: "affine", biases: d, lhsIndices: e, rhsIndices: f,
                                          groupSize: 32, bits: 4))
        assertType(gq, [a: T(.f32, 3, 1, 64), b: T(.u32, 4, 16, 8), c: T(.f32, 4, 16, 2), d: T(.f32, 4, 16, 2), e: T(.u32, 6), f: T(.u32, 6)],
                   T(.f32, 6, 1, 16))
        assertFails(gq, [a: T(.f32, 64), b: T(.u32, 4, 16, 8), c: T(.f32, 4, 16, 2), d: T(.f32, 4, 16, 2), e: T(.u32, 6), f: T(.u32, 6)],
                    mentions: ["gather_qmm", "matrices"])
        // ExecuTorch embeddings: packed bytes · 8/bits columns.
        let qe = Op.quantizedEmbedding(QuantizedEmbeddingOp(weight: a, scales: b, bits: 2, indices: c, dtype: .f16, out: o))
        assertType(qe, [a: T(.u8, 10, 8), b: T(.f32, 10), c: T(.i64, 3)], T(.f16, 3, 32))
        assertFails(qe, [a: T(.u8, 10, 8), b: T(.f32, 9), c: T(.i64, 3)], mentions: ["quantized_embedding", "scales"])
    }

    // MARK: - Attention and norms

    func testAttentionAndNorms() throws {
        let q = T(.bf16, [.fixed(1), .fixed(4), dyn(1, 32), .fixed(16)]), cache = T(.bf16, 1, 2, 64, 16)
        let sdpa = Op.sdpa(SdpaOp(q: a, k: b, v: c, out: o, scale: 0.25, mask: d))
        assertType(sdpa, [a: q, b: cache, c: cache, d: T(.f32, [dyn(1, 32), .fixed(64)])], q)
        assertType(.sdpa(SdpaOp(q: a, k: b, v: c, out: o, causal: true)), [a: T(.f32, 1, 4, 5, 16), b: T(.f32, 1, 2, 9, 16), c: T(.f32, 1, 2, 9, 8)],
                   T(.f32, 1, 4, 5, 8))
        assertFails(sdpa, [a: T(.f32, 1, 3, 5, 16), b: T(.f32, 1, 2, 9, 16), c: T(.f32, 1, 2, 9, 16)], mentions: ["sdpa", "agree"])
        assertFails(sdpa, [a: T(.f32, 1, 4, 5, 16), b: T(.f32, 1, 2, 9, 16), c: T(.f32, 1, 2, 9, 16), d: T(.f32, 5, 8)],
                    mentions: ["sdpa", "mask covers 8 keys, 9 needed"])
        assertFails(sdpa, [a: T(.f32, 4, 5, 16), b: T(.f32, 1, 2, 9, 16), c: T(.f32, 1, 2, 9, 16)], mentions: ["sdpa", "rank-4"])
        // llama::custom_sdpa: BSHD, the whole cache as k/v.
        let custom = Op.llamaCustomSdpa(LlamaCustomSdpaOp(q: a, k: b, v: c, startPos: val(e), out: o))
        let bshd = T(.f32, [.fixed(1), dyn(1, 32), .fixed(4), .fixed(16)])
        assertType(custom, [a: bshd, b: T(.f32, 1, 64, 2, 16), c: T(.f32, 1, 64, 2, 16)], bshd)
        assertFails(custom, [a: T(.f32, 1, 8, 4, 16), b: T(.f32, 1, 64, 2, 16), c: T(.f32, 1, 64, 2, 16)], scalars: [e: 60],
                    mentions: ["llama_custom_sdpa", "exceed"])
        let update = Op.llamaUpdateCache(LlamaUpdateCacheOp(value: a, cache: b, startPos: val(e), out: o))
        assertType(update, [a: T(.f32, 1, 5, 2, 16), b: T(.f32, 1, 64, 2, 16)], T(.f32, 1, 64, 2, 16), scalars: [e: 59])
        assertFails(update, [a: T(.f32, 1, 5, 2, 16), b: T(.f32, 1, 64, 2, 16)], scalars: [e: 60], mentions: ["llama_update_cache"])
        assertFails(update, [a: T(.f32, 1, 5, 3, 16), b: T(.f32, 1, 64, 2, 16)], mentions: ["llama_update_cache", "[B, S, H, D]"])
        // Norms and RoPE keep the input's type.
        assertType(.rmsNorm(RMSNormOp(x: a, weight: b, out: o)), [a: q, b: T(.bf16, 16)], q)
        assertType(.rmsNorm(RMSNormOp(x: a, weight: b, out: o)), [a: q], q)  // an unknown weight only skips the check
        assertFails(.rmsNorm(RMSNormOp(x: a, weight: b, out: o)), [a: q, b: T(.bf16, 8)], mentions: ["rms_norm", "8"])
        assertFails(.layerNorm(LayerNormOp(x: a, out: o)), [a: T(.f32)], mentions: ["layer_norm"])
        assertFails(.rope(RopeOp(x: a, out: o, dims: 32, offset: b)), [a: q, b: T(.i64)], mentions: ["rope", "dims 32"])
        assertFails(.rope(RopeOp(x: a, out: o, dims: 16, offset: b)), [a: T(.f32, 16), b: T(.i64)], mentions: ["rope", "rank"])
        assertFails(.softmax(SoftmaxOp(x: a, out: o, axis: 2)), [a: T(.f32, 2, 3)], mentions: ["softmax", "axis 2"])
        assertType(.softmax(SoftmaxOp(x: a, out: o, axis: 0)), [a: T(.f32)], T(.f32))
    }

    // MARK: - Scalars, control flow, opaque ops

    func testScalarOps() throws {
        func math(_ kind: String, _ args: [ValueID]) -> Op { .scalarMath(ScalarMathOp(kind: kind, args: args, out: o)) }
        let i = T(.i64), x = T(.f64), t = T(.bool)
        assertType(math("add", [a, b]), [a: i, b: i], i)
        assertType(math("add", [a, b]), [a: i, b: x], x)
        assertType(math("floordiv", [a, b]), [a: T(.i32, 1), b: i], i)
        assertType(math("mod", [a, b]), [a: x, b: x], x)
        assertType(math("sym_max", [a, b]), [a: i, b: i], i)
        assertType(math("truediv", [a, b]), [a: i, b: i], x)
        assertType(math("lt", [a, b]), [a: i, b: x], t)
        assertType(math("sym_not", [a]), [a: t], t)
        assertType(math("ceil", [a]), [a: x], i)
        assertType(math("sym_float", [a]), [a: i], x)
        assertType(math("neg", [a]), [a: x], x)
        assertType(math("numel", [a]), [a: T(.f32, 2, 3)], i)
        assertType(math("sym_ite", [a, b, c]), [a: t, b: i, c: T(.i64, 1)], T(.i64, 1), scalars: [a: 0])
        assertType(math("sym_ite", [a, b, c]), [a: t, b: i, c: T(.i64, 1)], i, scalars: [a: 1])
        assertType(math("sym_ite", [a, b, c]), [a: t, b: i, c: i], i)
        assertType(math("sym_ite", [a, b, c]), [a: t, b: i, c: T(.i64, 1)], nil)
        assertFails(math("neg", [a]), [a: t], mentions: ["neg", "bool"])
        assertFails(math("add", [a]), [a: i], mentions: ["add", "2 arguments"])
        assertFails(math("pow", [a, b]), [a: i, b: i], mentions: ["pow"])
        assertFails(math("add", [a, b]), [a: T(.i64, 2), b: i], mentions: ["scalars"])
        assertType(.symSize(SymSizeOp(a: a, dim: 1, out: o)), [a: T(.f32, [.fixed(1), dyn(1, 32)])], i)
        assertFails(.symSize(SymSizeOp(a: a, dim: 2, out: o)), [a: T(.f32, 2, 3)], mentions: ["sym_size"])
        assertFails(.itemInt(ItemIntOp(x: a, out: o)), [a: T(.i64, 2)], mentions: ["item_int", "one-element"])
        assertType(.item(ItemOp(x: a, out: o)), [a: T(.bf16, 1)], x)
        assertType(.addInt(AddIntOp(a: val(b), b: lit(1), out: o)), [:], i)  // needs no operand types
    }

    func testOpaqueAndUnknown() throws {
        // An operand of unknown type makes every result unknown.
        XCTAssertEqual(try infer(.add(AddOp(a: a, b: b, out: o)), [a: T(.f32, 2)]), [nil])
        XCTAssertEqual(try infer(.split(SplitOp(x: a, outs: [o, o2], sizes: [lit(1)])), [:]), [nil, nil])
        XCTAssertEqual(try infer(.delegateCall(DelegateCallOp(backendId: "X", inputs: [a], outs: [o])), [a: T(.f32, 2)]), [nil])
        // Metal kernels: declared output shapes and dtypes, if complete.
        func mk(_ flat: [IntOrValue], _ lengths: [Int], _ dtypes: [DType], _ outs: [ValueID]) -> Op {
            .metalKernel(MetalKernelOp(name: "k", source: "", inputs: [a], outputs: outs, grid: [], threadgroup: [],
                                         outputShapesFlat: flat, outputShapeLengths: lengths, outputDtypes: dtypes))
        }
        XCTAssertEqual(try infer(mk([lit(2), lit(3)], [], [.f16], [o]), [:]), [T(.f16, 2, 3)])
        XCTAssertEqual(try infer(mk([lit(2), lit(3)], [1], [.f16], [o]), [:]), [nil])
        XCTAssertEqual(try infer(mk([lit(2), lit(3)], [1, 1], [.f16], [o, o2]), [:]), [nil, nil])
        XCTAssertEqual(try infer(mk([val(b)], [1], [.f16], [o]), [:]), [T(.f16, [dyn(0, nil)])])
        XCTAssertEqual(try infer(.if(IfOp(cond: lit(1))), [:]), [])
        XCTAssertEqual(try infer(.scan(ScanOp(originals: [], sliced: [], outputs: [o], carry: [])), [:]), [nil])
    }

    func testBoundsArithmetic() {
        typealias B = ShapeRules.Bounds
        XCTAssertEqual(B(1, 32) + B.exactly(4), B(5, 36))
        XCTAssertEqual(B(1, 32) - B(0, 4), B(-3, 32))
        XCTAssertEqual(B(1, 32) * B.exactly(2), B(2, 64))
        XCTAssertEqual(B(-2, 3) * B(4, 5), B(-10, 15))
        XCTAssertEqual(B(1, nil) * B.exactly(0), B.exactly(0))
        XCTAssertEqual(B(1, nil) * B(-1, 1), B.unknown)
        XCTAssertEqual(B(-7, 9).floorDivided(by: .exactly(2)), B(-4, 4))
        XCTAssertEqual(B(-7, 9).floorDivided(by: .exactly(-2)), B(-5, 3))
        XCTAssertEqual(B.exactly(-7).floorDivided(by: .exactly(2)), B.exactly(-4))
        XCTAssertEqual(B(1, 9).floorDivided(by: B(1, 2)), B.unknown)
        XCTAssertEqual(B.exactly(-7).remainder(.exactly(3)), B.exactly(2))
        XCTAssertEqual(B.exactly(7).remainder(.exactly(-3)), B.exactly(-2))
        XCTAssertEqual(B(0, 2).remainder(.exactly(3)), B(0, 2))
        XCTAssertEqual(B(0, 20).remainder(.exactly(3)), B(0, 2))
        XCTAssertEqual(B.minimum(B(1, 10), B(3, nil)), B(1, 10))
        XCTAssertEqual(B.maximum(B(1, 10), B(3, nil)), B(3, nil))
        XCTAssertEqual(B(Int.max - 1, Int.max) + B.exactly(5), B(nil, nil))
        XCTAssertEqual(B(-3, 5).dim, Dim.dynamic(min: 0, max: 5))
        XCTAssertEqual(B(4, 4).dim, Dim.fixed(4))
        XCTAssertEqual(B(2, nil).dim, Dim.dynamic(min: 2, max: nil))
        XCTAssertNil(B(1, 3).intersection(B(4, 5)))
        XCTAssertEqual(B(1, 3).hull(B(5, nil)), B(1, nil))
    }

    // MARK: - ShapeInference

    func testAnnotateCarriesSymSizeBoundsIntoShapes() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : i64[1, ?1..32] "tokens"
        const %1 : f32[256, 64] = named("emb")
        const %2 : i64[] = literal(4.0)
        block main {
          %3 = sym_size(a: %0, dim: 1) : ?
          %4 = take(x: %1, index: %0, axis: 0) : ?
          %5 = reshape(x: %4, shape: [1, %3, %2, 16]) : ?
          %6 = transpose(x: %5, perm: [0, 2, 1, 3]) : ?
          %7 = add_int(a: %3, b: 1) : ?
          %8 = arange(start: 0, stop: %7, step: 1, scalar_type: i64) : ?
          %9 = full(shape: [%2, 2], v: 1.0, scalar_type: bf16) : ?
          %10 = item_int(x: %0) : ?
          %11 = full(shape: [%10], v: 1.0, scalar_type: bf16) : ?
        }
        outputs %6
        """)
        let warnings = ShapeInference.annotate(&graph)
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(graph.type(ValueID(3)), T(.i64))
        XCTAssertEqual(graph.type(ValueID(4)), T(.f32, [.fixed(1), dyn(1, 32), .fixed(64)]))
        XCTAssertEqual(graph.type(ValueID(5)), T(.f32, [.fixed(1), dyn(1, 32), .fixed(4), .fixed(16)]))
        XCTAssertEqual(graph.type(ValueID(6)), T(.f32, [.fixed(1), .fixed(4), dyn(1, 32), .fixed(16)]))
        XCTAssertEqual(graph.type(ValueID(8)), T(.i64, [dyn(2, 33)]))
        XCTAssertEqual(graph.type(ValueID(9)), T(.bf16, 4, 2))
        XCTAssertEqual(graph.type(ValueID(11)), T(.bf16, [dyn(0, nil)]))
        let inference = ShapeInference.infer(graph)
        XCTAssertEqual(inference.bounds[3], .init(1, 32))
        XCTAssertEqual(inference.bounds[7], .init(2, 33))
        XCTAssertNil(inference.bounds[10])
        // Annotating again changes nothing.
        let again = graph
        XCTAssertEqual(ShapeInference.annotate(&graph), [])
        XCTAssertEqual(graph, again)
    }

    func testAnnotateKeepsDeclaredTypesAndWarnsOnConflicts() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : f32[2, 3]
        input %1 : f32[3, 4]
        state %2 : f32[2, 4] = zeros
        block main {
          %3 = matmul(a: %0, b: %1) : f32[2, ?1..8]
          %4 = matmul(a: %0, b: %1) : f32[]
          %5 = matmul(a: %0, b: %1) : f32[2, 5]
          %6 = matmul(a: %0, b: %1) : i32[2, 4]
          %7 = add(a: %4, b: %0) : ?
          %8 = matmul(a: %1, b: %0) : ?
          %2 = sum(x: %2, axes: [0], keepdims: true) : f32[2, 4]
          %9 = add(a: %8, b: %1) : ?
        }
        outputs %3
        """)
        let warnings = ShapeInference.annotate(&graph)
        // Consistent declared types stay (even if less precise); conflicting ones stay too, with a warning.
        XCTAssertEqual(graph.type(ValueID(3)), T(.f32, [.fixed(2), dyn(1, 8)]))
        XCTAssertEqual(graph.type(ValueID(4)), T(.f32))
        XCTAssertEqual(graph.type(ValueID(5)), T(.f32, 2, 5))
        XCTAssertEqual(graph.type(ValueID(6)), T(.i32, 2, 4))
        // Inference goes on with the inferred type of a conflicting value: %4 is [2, 4], which does
        // not broadcast with %0. Unknown stays unknown.
        XCTAssertNil(graph.type(ValueID(7)))
        XCTAssertNil(graph.type(ValueID(8)))
        XCTAssertNil(graph.type(ValueID(9)))
        XCTAssertEqual(warnings.count, 6, warnings.joined(separator: "\n"))
        XCTAssertTrue(warnings[0].contains("%4") && warnings[0].contains("declared f32[]") && warnings[0].contains("inferred f32[2, 4]"))
        XCTAssertTrue(warnings[1].contains("%5"))
        XCTAssertTrue(warnings[2].contains("%6") && warnings[2].contains("i32"))
        XCTAssertTrue(warnings[3].contains("add") && warnings[3].contains("[2, 4]") && warnings[3].contains("[2, 3]"))
        XCTAssertTrue(warnings[4].contains("matmul") && warnings[4].contains("inner dims"))
        XCTAssertTrue(warnings[5].contains("%2") && warnings[5].contains("sum") && warnings[5].contains("f32[1, 4]"), warnings[5])
    }

    func testAnnotateJoinsIfBranches() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : f32[?1..8, 4]
        input %1 : i64[]
        block main {
          if(cond: %1, then_chain_idx: 1, else_chain_idx: 2)
          %4 = add(a: %2, b: %2) : ?
        }
        block then {
          %2 = repeat(x: %0, repeats: 2, axis: 0) : ?
          %3 = sum(x: %0, axes: [], keepdims: false) : ?
        }
        block else {
          %2 = slice(x: %0, axis: 0, start: 0, stop: 1, step: 1) : ?
          %3 = id_copy(x: %0) : ?
        }
        outputs %4
        """)
        let warnings = ShapeInference.annotate(&graph)
        XCTAssertEqual(graph.type(ValueID(2)), T(.f32, [dyn(1, 16), .fixed(4)]))
        XCTAssertEqual(graph.type(ValueID(4)), T(.f32, [dyn(1, 16), .fixed(4)]))
        XCTAssertNil(graph.type(ValueID(3)))
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("%3") && warnings[0].contains("written as"), warnings.joined())
    }

    func testAnnotateRunsTheInitBlockFirst() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : f32[2, 3]
        const %1 : f32[] = literal(-8.0)
        const %2 : f32[2, 3] = named("w")
        block main {
          %4 = multiply(a: %0, b: %3) : ?
        }
        block init init {
          %3 = multiply(a: %2, b: %1) : ?
        }
        outputs %4
        """)
        XCTAssertEqual(ShapeInference.annotate(&graph), [])
        XCTAssertEqual(graph.type(ValueID(3)), T(.f32, 2, 3))
        XCTAssertEqual(graph.type(ValueID(4)), T(.f32, 2, 3))
    }
}
