import XCTest
import MLXCIR
@testable import MLXCRuntime

private func T(_ xs: [Double], _ shape: [Int]? = nil, _ dtype: DType = .f32) -> HostTensor { RefGraph.tensor(xs, shape, dtype) }

private func unary(_ x: HostTensor, _ make: (ValueID, ValueID) -> Op) throws -> HostTensor {
    try RefGraph.run([x]) { ids, out in make(ids[0], out) }
}

private func binary(_ a: HostTensor, _ b: HostTensor, outType: TensorType? = nil,
                    _ make: (ValueID, ValueID, ValueID) -> Op) throws -> HostTensor {
    try RefGraph.run([a, b], outType: outType) { ids, out in make(ids[0], ids[1], out) }
}

/// Elementwise reference kernels against hand-worked values and NumPy/PyTorch results
/// (the expression that produced each literal is in the comment next to it).
final class ReferenceElementwiseTests: XCTestCase {
    // MARK: arithmetic and dtypes

    func testAddBroadcastsRowAgainstMatrix() throws {
        let r = try binary(T([1, 2, 3, 4, 5, 6], [2, 3]), T([10, 20, 30])) { .add(AddOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(r, [11, 22, 33, 14, 25, 36], shape: [2, 3], dtype: .f32)
    }

    func testBroadcastErrorNamesOpAndShapes() {
        assertRefError(["multiply", "[2, 3]", "[4]"]) {
            _ = try binary(T([1, 2, 3, 4, 5, 6], [2, 3]), T([1, 2, 3, 4])) { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }
        }
    }

    func testRankZeroFloatScalarKeepsBF16() throws {
        // A rank-0 f32 constant does not promote a bf16 tensor; the scalar is cast to bf16 first (MLX).
        var g = RefGraph()
        let x = g.input(T([1, 2.5, 3.0078125], nil, .bf16))
        let s = g.literal(0.1, .f32)
        let out = g.result()
        g.append(.add(AddOp(a: x, b: s, out: out)))
        // (torch.tensor([1, 2.5, 3.0078125], dtype=torch.bfloat16) + torch.tensor(0.1).bfloat16()).tolist()
        assertRefTensor(try g.run([out])[0], [1.1015625, 2.59375, 3.09375], dtype: .bf16)
    }

    func testRankZeroPythonFloatWithIntTensorGivesF32() throws {
        var g = RefGraph()
        let x = g.input(T([1, 2], nil, .i64))
        let s = g.literal(0.5, .f64)
        let out = g.result()
        g.append(.multiply(MultiplyOp(a: x, b: s, out: out)))
        assertRefTensor(try g.run([out])[0], [0.5, 1], dtype: .f32)
    }

    func testMixedTensorsPromote() throws {
        let r = try binary(T([1, 2], nil, .f16), T([0.5, 0.25], nil, .f32)) { .add(AddOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(r, [1.5, 2.25], dtype: .f32)
        let i = try binary(T([1, 2], nil, .i32), T([3, 4], nil, .i64)) { .subtract(SubtractOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(i, [-2, -2], dtype: .i64)
    }

    func testIntegerArithmeticWrapsLikeC() throws {
        let r = try binary(T([2147483647, -5], nil, .i32), T([1, 3], nil, .i32)) { .add(AddOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(r, [-2147483648, -2], dtype: .i32)
        let m = try binary(T([200], nil, .u8), T([2], nil, .u8)) { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(m, [144], dtype: .u8)  // 400 mod 256
    }

    func testDivideOfIntsIsF32AndFloatDivisionByZeroIsIEEE() throws {
        let r = try binary(T([7, -7, 1], nil, .i32), T([2, 2, 3], nil, .i32)) { .divide(DivideOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(r, [3.5, -3.5, Double(Float(1.0 / 3.0))], dtype: .f32)
        let z = try binary(T([1, -1, 0]), T([0, 0, 0])) { .divide(DivideOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(z, [.infinity, -.infinity, .nan], dtype: .f32)
    }

    func testFloorDivide() throws {
        // np.floor_divide([7, -7, 7, -7], [2, 2, -2, -2]) == [3, -4, -4, 3]
        let i = try binary(T([7, -7, 7, -7], nil, .i64), T([2, 2, -2, -2], nil, .i64)) { .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(i, [3, -4, -4, 3], dtype: .i64)
        let f = try binary(T([7.5, -7.5]), T([2, 2])) { .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(f, [3, -4], dtype: .f32)
        // MLX floor(divide(a, b)) in f32: 1f / 0.1f rounds to 10f, so 10 (NumPy's fmod-based // gives 9).
        let mlx = try binary(T([1]), T([0.1])) { .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(mlx, [10], dtype: .f32)
    }

    func testIntegerDivisionByZeroThrows() {
        assertRefError(["floor_divide", "division by zero"]) {
            _ = try binary(T([1], nil, .i32), T([0], nil, .i32)) { .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }
        }
        assertRefError(["remainder", "by zero"]) {
            _ = try binary(T([1], nil, .i32), T([0], nil, .i32)) { .remainder(RemainderOp(a: $0, b: $1, out: $2)) }
        }
    }

    func testRemainderHasTheDivisorsSign() throws {
        // np.remainder([7, -7, 7, -7], [3, 3, -3, -3]) == [1, 2, -2, -1]
        let i = try binary(T([7, -7, 7, -7], nil, .i32), T([3, 3, -3, -3], nil, .i32)) { .remainder(RemainderOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(i, [1, 2, -2, -1], dtype: .i32)
        // np.remainder([5.5, -5.5, 5.5, -5.5], [2, 2, -2, -2]) == [1.5, 0.5, -0.5, -1.5]
        let f = try binary(T([5.5, -5.5, 5.5, -5.5]), T([2, 2, -2, -2])) { .remainder(RemainderOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(f, [1.5, 0.5, -0.5, -1.5], dtype: .f32)
        let z = try binary(T([1]), T([0])) { .remainder(RemainderOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(z, [.nan])
    }

    func testPower() throws {
        // (np.float32([2, 4, 9]) ** np.float32([0.5, -1, 1.5])).tolist()
        let f = try binary(T([2, 4, 9]), T([0.5, -1, 1.5])) { .power(PowerOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(f, [1.4142135381698608, 0.25, 27], dtype: .f32)
        // Integer power is exact; a negative exponent gives 0 (MLX).
        let i = try binary(T([2, 3, -2, 2], nil, .i64), T([10, 3, 3, -1], nil, .i64)) { .power(PowerOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(i, [1024, 27, -8, 0], dtype: .i64)
    }

    func testMaximumMinimumPropagateNaN() throws {
        let a = T([1, .nan, 3, -0.5]), b = T([2, 0, .nan, -1])
        assertRefTensor(try binary(a, b) { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }, [2, .nan, .nan, -0.5])
        assertRefTensor(try binary(a, b) { .minimum(MinimumOp(a: $0, b: $1, out: $2)) }, [1, .nan, .nan, -1])
        let i = try binary(T([1, 5], nil, .i32), T([3, 2], nil, .i32)) { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(i, [3, 5], dtype: .i32)
    }

    func testAtan2AndLogAddExp() throws {
        // np.arctan2(np.float32([1, -1, 0]), np.float32([1, -2, -1])).tolist(); NumPy's f32 atan2 is 1 ulp
        // below the correctly rounded f32(pi/4) = 0.7853981852531433 that the reference gives.
        let t = try binary(T([1, -1, 0]), T([1, -2, -1])) { .atan2(Atan2Op(a: $0, b: $1, out: $2)) }
        assertRefTensor(t, [0.7853981256484985, -2.677945137023926, 3.1415927410125732], dtype: .f32, tol: 1.2e-7)
        // np.logaddexp([0, -inf, 1000, 2], [0, 1, 1000, -3]) in f64
        let l = try binary(T([0, -.infinity, 1000, 2], nil, .f64), T([0, 1, 1000, -3], nil, .f64)) { .logAddExp(LogAddExpOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(l, [0.6931471805599453, 1.0, 1000.6931471805599, 2.0067153484891183], dtype: .f64, tol: 1e-15)
        let inf = try binary(T([.infinity, -.infinity]), T([.infinity, -.infinity])) { .logAddExp(LogAddExpOp(a: $0, b: $1, out: $2)) }
        assertRefTensor(inf, [.infinity, -.infinity])
    }

    // MARK: unary math

    func testUnaryMathMatchesNumPy() throws {
        let x = T([-0.5, 0.25, 0.75])
        // [float(v) for v in f(np.float32([-0.5, 0.25, 0.75]))] (erf/sigmoid/silu/gelu via torch)
        let cases: [(String, (ValueID, ValueID) -> Op, [Double])] = [
            ("exp", { .exp(ExpOp(x: $0, out: $1)) }, [0.6065306663513184, 1.2840255498886108, 2.117000102996826]),
            ("expm1", { .expm1(Expm1Op(x: $0, out: $1)) }, [-0.39346933364868164, 0.2840254306793213, 1.1169999837875366]),
            ("sin", { .sin(SinOp(x: $0, out: $1)) }, [-0.4794255495071411, 0.24740396440029144, 0.681638777256012]),
            ("cos", { .cos(CosOp(x: $0, out: $1)) }, [0.8775825500488281, 0.9689124226570129, 0.7316888570785522]),
            ("tan", { .tan(TanOp(x: $0, out: $1)) }, [-0.5463024973869324, 0.25534191727638245, 0.9315964579582214]),
            ("arcsin", { .arcsin(ArcsinOp(x: $0, out: $1)) }, [-0.5235987901687622, 0.252680242061615, 0.8480621576309204]),
            ("arccos", { .arccos(ArccosOp(x: $0, out: $1)) }, [2.094395160675049, 1.3181161880493164, 0.7227342128753662]),
            ("arctan", { .arctan(ArctanOp(x: $0, out: $1)) }, [-0.46364760398864746, 0.244978666305542, 0.6435011029243469]),
            ("sinh", { .sinh(SinhOp(x: $0, out: $1)) }, [-0.5210952758789062, 0.25261232256889343, 0.8223167657852173]),
            ("cosh", { .cosh(CoshOp(x: $0, out: $1)) }, [1.1276260614395142, 1.031413197517395, 1.2946833372116089]),
            ("tanh", { .tanh(TanhOp(x: $0, out: $1)) }, [-0.46211719512939453, 0.24491865932941437, 0.6351490020751953]),
            ("arcsinh", { .arcsinh(ArcsinhOp(x: $0, out: $1)) }, [-0.4812118113040924, 0.24746645987033844, 0.6931471824645996]),
            ("arctanh", { .arctanh(ArctanhOp(x: $0, out: $1)) }, [-0.5493061542510986, 0.2554128170013428, 0.972955048084259]),
            ("erf", { .erf(ErfOp(x: $0, out: $1)) }, [-0.5204998850822449, 0.27632638812065125, 0.7111556529998779]),
            ("sigmoid", { .sigmoid(SigmoidOp(x: $0, out: $1)) }, [0.3775406777858734, 0.562176525592804, 0.6791787147521973]),
            ("silu", { .silu(SiluOp(x: $0, out: $1)) }, [-0.1887703388929367, 0.140544131398201, 0.509384036064148]),
            ("gelu", { .gelu(GeluOp(x: $0, out: $1, approximate: "none")) }, [-0.1542687714099884, 0.14967657625675201, 0.5800294876098633]),
            ("gelu tanh", { .gelu(GeluOp(x: $0, out: $1, approximate: "tanh")) }, [-0.1542859971523285, 0.14967535436153412, 0.5799605846405029]),
        ]
        for (name, make, expected) in cases {
            let r = try unary(x, make)
            XCTAssertEqual(r.dtype, .f32, name)
            for (a, b) in zip(r.storage, expected) {
                XCTAssertEqual(a, b, accuracy: 1.2e-7 * max(1, abs(b)), "\(name): \(r.storage) vs \(expected)")
            }
        }
        let y = T([0.25, 1.5, 4])
        // [float(v) for v in f(np.float32([0.25, 1.5, 4]))]
        let positive: [(String, (ValueID, ValueID) -> Op, [Double])] = [
            ("log", { .log(LogOp(x: $0, out: $1)) }, [-1.3862943649291992, 0.40546509623527527, 1.3862943649291992]),
            ("log2", { .log2(Log2Op(x: $0, out: $1)) }, [-2.0, 0.5849624872207642, 2.0]),
            ("log10", { .log10(Log10Op(x: $0, out: $1)) }, [-0.6020600199699402, 0.176091268658638, 0.6020600199699402]),
            ("log1p", { .log1p(Log1pOp(x: $0, out: $1)) }, [0.2231435626745224, 0.9162907600402832, 1.6094379425048828]),
            ("sqrt", { .sqrt(SqrtOp(x: $0, out: $1)) }, [0.5, 1.2247449159622192, 2.0]),
            ("rsqrt", { .rsqrt(RsqrtOp(x: $0, out: $1)) }, [2.0, 0.8164965510368347, 0.5]),
            ("reciprocal", { .reciprocal(ReciprocalOp(x: $0, out: $1)) }, [4.0, 0.6666666865348816, 0.25]),
        ]
        for (name, make, expected) in positive {
            let r = try unary(y, make)
            for (a, b) in zip(r.storage, expected) {
                XCTAssertEqual(a, b, accuracy: 1.2e-7 * max(1, abs(b)), "\(name): \(r.storage) vs \(expected)")
            }
        }
        // np.arccosh(np.float32([1.25, 2.5, 5]))
        assertRefTensor(try unary(T([1.25, 2.5, 5])) { .arccosh(ArccoshOp(x: $0, out: $1)) },
                        [0.6931471824645996, 1.566799283027649, 2.292431592941284], tol: 1.2e-7)
    }

    func testUnaryFloatOpsOnIntsGiveF32AndOnBF16StayBF16() throws {
        let r = try unary(T([0, 1], nil, .i32)) { .exp(ExpOp(x: $0, out: $1)) }
        assertRefTensor(r, [1, Double(Float(M_E))], dtype: .f32)
        let b = try unary(T([1], nil, .bf16)) { .exp(ExpOp(x: $0, out: $1)) }
        assertRefTensor(b, [2.71875], dtype: .bf16)  // torch.tensor([1.], dtype=torch.bfloat16).exp() == 2.71875
    }

    func testSigmoidAndSiluAreStableForLargeInputs() throws {
        let r = try unary(T([-1000, 1000], nil, .f64)) { .sigmoid(SigmoidOp(x: $0, out: $1)) }
        assertRefTensor(r, [0, 1])
        let s = try unary(T([-1000, 1000], nil, .f64)) { .silu(SiluOp(x: $0, out: $1)) }
        assertRefTensor(s, [-0.0, 1000])
    }

    func testRoundingFamily() throws {
        let x = T([0.5, 1.5, 2.5, -0.5, -1.5, 1.25, -1.7])
        assertRefTensor(try unary(x) { .round(RoundOp(x: $0, out: $1)) }, [0, 2, 2, -0.0, -2, 1, -2])
        assertRefTensor(try unary(x) { .floor(FloorOp(x: $0, out: $1)) }, [0, 1, 2, -1, -2, 1, -2])
        assertRefTensor(try unary(x) { .ceil(CeilOp(x: $0, out: $1)) }, [1, 2, 3, -0.0, -1, 2, -1])
        assertRefTensor(try unary(x) { .trunc(TruncOp(x: $0, out: $1)) }, [0, 1, 2, -0.0, -1, 1, -1])
        // np.round([1.25, 1.35, -2.45, 0.125], 1) and (…, 2), in f64
        let d = T([1.25, 1.35, -2.45, 0.125], nil, .f64)
        assertRefTensor(try unary(d) { .round(RoundOp(x: $0, out: $1, decimals: 1)) }, [1.2, 1.4, -2.4, 0.1], dtype: .f64)
        assertRefTensor(try unary(d) { .round(RoundOp(x: $0, out: $1, decimals: 2)) }, [1.25, 1.35, -2.45, 0.12], dtype: .f64)
        // np.round(np.int32([1234, 1250, 1350, -1250]), -2) == [1200, 1200, 1400, -1200]
        let i = try unary(T([1234, 1250, 1350, -1250], nil, .i32)) { .round(RoundOp(x: $0, out: $1, decimals: -2)) }
        assertRefTensor(i, [1200, 1200, 1400, -1200], dtype: .i32)
        let keep = try unary(T([7, -3], nil, .i64)) { .floor(FloorOp(x: $0, out: $1)) }
        assertRefTensor(keep, [7, -3], dtype: .i64)
    }

    func testSignAbsNegSquare() throws {
        let x = T([-2.5, 0, 3, .nan])
        assertRefTensor(try unary(x) { .sign(SignOp(x: $0, out: $1)) }, [-1, 0, 1, .nan])
        assertRefTensor(try unary(x) { .abs(AbsOp(x: $0, out: $1)) }, [2.5, 0, 3, .nan])
        assertRefTensor(try unary(x) { .neg(NegOp(x: $0, out: $1)) }, [2.5, -0.0, -3, .nan])
        assertRefTensor(try unary(x) { .square(SquareOp(x: $0, out: $1)) }, [6.25, 0, 9, .nan])
        assertRefTensor(try unary(T([-4, 0, 9], nil, .i32)) { .sign(SignOp(x: $0, out: $1)) }, [-1, 0, 1], dtype: .i32)
        assertRefTensor(try unary(T([1], nil, .u8)) { .neg(NegOp(x: $0, out: $1)) }, [255], dtype: .u8)
        assertRefTensor(try unary(T([65536], nil, .i32)) { .square(SquareOp(x: $0, out: $1)) }, [0], dtype: .i32)  // 2^32 wraps
        assertRefError(["neg", "bool"]) { _ = try unary(T([1], nil, .bool)) { .neg(NegOp(x: $0, out: $1)) } }
    }

    // MARK: comparisons and logic

    func testComparisons() throws {
        let a = T([1, 2, 3, .nan]), b = T([2, 2, 2, .nan])
        assertRefTensor(try binary(a, b) { .less(LessOp(a: $0, b: $1, out: $2)) }, [1, 0, 0, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .lessEqual(LessEqualOp(a: $0, b: $1, out: $2)) }, [1, 1, 0, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .greater(GreaterOp(a: $0, b: $1, out: $2)) }, [0, 0, 1, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .greaterEqual(GreaterEqualOp(a: $0, b: $1, out: $2)) }, [0, 1, 1, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .equal(EqualOp(a: $0, b: $1, out: $2)) }, [0, 1, 0, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .notEqual(NotEqualOp(a: $0, b: $1, out: $2)) }, [1, 0, 1, 1], dtype: .bool)
    }

    func testComparisonCastsTheScalarToTheTensorDType() throws {
        // bf16(0.1) == 0.10009765625; the scalar is cast to bf16 too, so x <= 0.1 holds.
        var g = RefGraph()
        let x = g.input(T([0.1, 0.2], nil, .bf16))
        let s = g.literal(0.1, .f64)
        let out = g.result()
        g.append(.lessEqual(LessEqualOp(a: x, b: s, out: out)))
        assertRefTensor(try g.run([out])[0], [1, 0], dtype: .bool)
    }

    func testLogicalOps() throws {
        let a = T([0, 1, 2, .nan]), b = T([1, 1, 0, 0], nil, .bool)
        assertRefTensor(try unary(a) { .logicalNot(LogicalNotOp(x: $0, out: $1)) }, [1, 0, 0, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .logicalAnd(LogicalAndOp(a: $0, b: $1, out: $2)) }, [0, 1, 0, 0], dtype: .bool)
        assertRefTensor(try binary(a, b) { .logicalOr(LogicalOrOp(a: $0, b: $1, out: $2)) }, [1, 1, 1, 1], dtype: .bool)
    }

    func testBitwiseOps() throws {
        let a = T([12, -1, 5], nil, .i32), b = T([10, 7, 3], nil, .i32)
        // np.bitwise_and/or/xor(np.int32([12, -1, 5]), np.int32([10, 7, 3]))
        assertRefTensor(try binary(a, b) { .bitwiseAnd(BitwiseAndOp(a: $0, b: $1, out: $2)) }, [8, 7, 1], dtype: .i32)
        assertRefTensor(try binary(a, b) { .bitwiseOr(BitwiseOrOp(a: $0, b: $1, out: $2)) }, [14, -1, 7], dtype: .i32)
        assertRefTensor(try binary(a, b) { .bitwiseXor(BitwiseXorOp(a: $0, b: $1, out: $2)) }, [6, -8, 6], dtype: .i32)
        assertRefTensor(try unary(a) { .bitwiseInvert(BitwiseInvertOp(x: $0, out: $1)) }, [-13, 0, -6], dtype: .i32)
        assertRefTensor(try unary(T([0, 15], nil, .u8)) { .bitwiseInvert(BitwiseInvertOp(x: $0, out: $1)) }, [255, 240], dtype: .u8)
        let p = T([1, 1, 0], nil, .bool), q = T([1, 0, 0], nil, .bool)
        assertRefTensor(try binary(p, q) { .bitwiseAnd(BitwiseAndOp(a: $0, b: $1, out: $2)) }, [1, 0, 0], dtype: .bool)
        assertRefTensor(try binary(p, q) { .bitwiseXor(BitwiseXorOp(a: $0, b: $1, out: $2)) }, [0, 1, 0], dtype: .bool)
        assertRefTensor(try unary(p) { .bitwiseInvert(BitwiseInvertOp(x: $0, out: $1)) }, [0, 0, 1], dtype: .bool)
        assertRefError(["bitwise_or", "f32"]) {
            _ = try binary(T([1]), T([1], nil, .i32)) { .bitwiseOr(BitwiseOrOp(a: $0, b: $1, out: $2)) }
        }
    }

    // MARK: selection

    func testWhereBroadcastsThreeWays() throws {
        var g = RefGraph()
        let c = g.input(T([1, 0], [2, 1], .bool))
        let x = g.input(T([1, 2, 3], [1, 3]))
        let y = g.literal(-1, .f32)
        let out = g.result()
        g.append(.`where`(WhereOp(condition: c, x: x, y: y, out: out)))
        assertRefTensor(try g.run([out])[0], [1, 2, 3, -1, -1, -1], shape: [2, 3], dtype: .f32)
    }

    func testClip() throws {
        var g = RefGraph()
        let x = g.input(T([-2, 0.5, 3, .nan]))
        let lo = g.literal(0, .f32), hi = g.input(T([1, 1, 2, 1]))
        let both = g.result(), onlyLo = g.result()
        g.append(.clip(ClipOp(x: x, out: both, aMin: lo, aMax: hi)))
        g.append(.clip(ClipOp(x: x, out: onlyLo, aMin: lo)))
        let r = try g.run([both, onlyLo])
        assertRefTensor(r[0], [0, 0.5, 2, .nan])
        assertRefTensor(r[1], [0, 0.5, 3, .nan])
        assertRefError(["clip"]) { _ = try unary(T([1])) { .clip(ClipOp(x: $0, out: $1)) } }
    }

    // MARK: conversion and creation

    func testAsType() throws {
        // A C cast: toward zero; NaN becomes 0 (saturating, never trapping).
        assertRefTensor(try unary(T([-1.7, 1.7, .nan, 2.5])) { .asType(AsTypeOp(x: $0, out: $1, scalarType: .i32)) },
                        [-1, 1, 0, 2], dtype: .i32)
        assertRefTensor(try unary(T([0, -0.0, 2, .nan])) { .asType(AsTypeOp(x: $0, out: $1, scalarType: .bool)) },
                        [0, 0, 1, 1], dtype: .bool)
        // torch.tensor(257).to(torch.bfloat16) == 256
        assertRefTensor(try unary(T([257], nil, .i64)) { .asType(AsTypeOp(x: $0, out: $1, scalarType: .bf16)) },
                        [256], dtype: .bf16)
        assertRefTensor(try unary(T([300], nil, .i32)) { .asType(AsTypeOp(x: $0, out: $1, scalarType: .u8)) }, [44], dtype: .u8)
    }

    func testIdCopyAndContiguous() throws {
        let x = T([1, 2, 3, 4], [2, 2], .f16)
        assertRefTensor(try unary(x) { .idCopy(IdCopyOp(x: $0, out: $1)) }, [1, 2, 3, 4], shape: [2, 2], dtype: .f16)
        assertRefTensor(try unary(x) { .contiguous(ContiguousOp(x: $0, out: $1)) }, [1, 2, 3, 4], shape: [2, 2], dtype: .f16)
    }

    func testFullAndFullLike() throws {
        var g = RefGraph()
        let n = g.input(T([3], [], .i64))
        let v = g.input(T([0.1], [], .f64))
        let a = g.result(), b = g.result(), c = g.result(), d = g.result()
        g.append(.full(FullOp(out: a, shape: [.literal(2), .value(n)], v: .literal(1.5), scalarType: .f32)))
        g.append(.full(FullOp(out: b, shape: [], v: .value(v), scalarType: .bf16)))
        g.append(.fullLike(FullLikeOp(x: a, out: c, v: .literal(-2.7))))
        g.append(.fullLike(FullLikeOp(x: a, out: d, v: .literal(-2.7), scalarType: .i32)))
        let r = try g.run([a, b, c, d])
        assertRefTensor(r[0], [1.5, 1.5, 1.5, 1.5, 1.5, 1.5], shape: [2, 3], dtype: .f32)
        assertRefTensor(r[1], [0.10009765625], shape: [], dtype: .bf16)
        assertRefTensor(r[2], [Double](repeating: Double(Float(-2.7)), count: 6), shape: [2, 3], dtype: .f32)
        assertRefTensor(r[3], [Double](repeating: -2, count: 6), shape: [2, 3], dtype: .i32)
        assertRefError(["full", "negative"]) {
            _ = try RefGraph.run([]) { _, out in .full(FullOp(out: out, shape: [.literal(-1)], v: .literal(0), scalarType: .f32)) }
        }
    }

    func testArange() throws {
        // No dtype: the declared result type (PyTorch's int64) …
        let declared = try RefGraph.run([], outType: TensorType(.i64, [.dynamic(min: 0, max: nil)])) { _, out in
            .arange(ARangeOp(out: out, start: .literal(0), stop: .literal(5), step: .literal(2)))
        }
        assertRefTensor(declared, [0, 2, 4], dtype: .i64)
        // … else MLX's int32.
        let bare = try RefGraph.run([]) { _, out in .arange(ARangeOp(out: out, start: .literal(5), stop: .literal(0), step: .literal(-2))) }
        assertRefTensor(bare, [5, 3, 1], dtype: .i32)
        let empty = try RefGraph.run([]) { _, out in
            .arange(ARangeOp(out: out, start: .literal(3), stop: .literal(1), step: .literal(1), scalarType: .f32))
        }
        assertRefTensor(empty, [], shape: [0], dtype: .f32)
        var g = RefGraph()
        let stop = g.input(T([4], [], .i64))
        let out = g.result()
        g.append(.arange(ARangeOp(out: out, start: .literal(1), stop: .value(stop), step: .literal(1), scalarType: .f32)))
        assertRefTensor(try g.run([out])[0], [1, 2, 3], dtype: .f32)
        assertRefError(["arange", "step"]) {
            _ = try RefGraph.run([]) { _, out in .arange(ARangeOp(out: out, start: .literal(0), stop: .literal(3), step: .literal(0))) }
        }
    }

    func testTri() throws {
        // np.tri(3, 4, 1) and np.tri(3, 4, -1)
        let up = try RefGraph.run([]) { _, out in .tri(TriOp(out: out, n: .literal(3), m: .literal(4), k: 1, scalarType: .f32)) }
        assertRefTensor(up, [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], shape: [3, 4], dtype: .f32)
        let down = try RefGraph.run([]) { _, out in .tri(TriOp(out: out, n: .literal(3), m: .literal(4), k: -1, scalarType: .bool)) }
        assertRefTensor(down, [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0], shape: [3, 4], dtype: .bool)
    }

    func testErrorsCarryTheNodeLocation() {
        assertRefError(["main node 0 add", "[2]", "[3]"]) {
            _ = try binary(T([1, 2]), T([1, 2, 3])) { .add(AddOp(a: $0, b: $1, out: $2)) }
        }
    }

    func testFileConstantWithoutAProgramIsAnError() {
        var g = RefGraph()
        let w = g.graph.addValue(TensorType(.f32, fixed: [2]), .constant(.constantBuffer(index: 1)), name: "w")
        let out = g.result()
        g.append(.idCopy(IdCopyOp(x: w, out: out)))
        assertRefError(["w", "program file"]) { _ = try g.run([out]) }
    }
}
