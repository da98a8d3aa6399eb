import XCTest
import MLXCIR
@testable import MLXCRuntime

private func T(_ xs: [Double], _ shape: [Int]? = nil, _ dtype: DType = .f32) -> HostTensor { RefGraph.tensor(xs, shape, dtype) }

private func int(_ n: Int64) -> HostTensor { .scalar(Double(n), .i64) }
private func float(_ x: Double) -> HostTensor { .scalar(x, .f64) }
private func bool(_ b: Bool) -> HostTensor { .scalar(b ? 1 : 0, .bool) }

/// `scalar_math kind` on `args` (graph inputs), returning the rank-0 result.
private func math(_ kind: String, _ args: HostTensor...) throws -> HostTensor {
    try RefGraph.run(args) { ids, out in .scalarMath(ScalarMathOp(kind: kind, args: ids, out: out)) }
}

/// Scalar (SymInt / SymFloat) reference kernels: Python semantics, rank-0 i64 / f64 / bool results.
final class ReferenceScalarTests: XCTestCase {
    func testIntArithmeticOnLiteralsAndValues() throws {
        var g = RefGraph()
        let n = g.input(int(7))
        let add = g.result(), sub = g.result(), mul = g.result()
        g.append(.addInt(AddIntOp(a: .value(n), b: .literal(5), out: add)))
        g.append(.subtractInt(SubtractIntOp(a: .literal(2), b: .value(n), out: sub)))
        g.append(.multiplyInt(MultiplyIntOp(a: .value(n), b: .value(n), out: mul)))
        let r = try g.run([add, sub, mul])
        assertRefTensor(r[0], [12], shape: [], dtype: .i64)
        assertRefTensor(r[1], [-5], shape: [], dtype: .i64)
        assertRefTensor(r[2], [49], shape: [], dtype: .i64)
        assertRefError(["add_int", "overflow"]) {
            _ = try RefGraph.run([]) { _, out in .addInt(AddIntOp(a: .literal(.max), b: .literal(1), out: out)) }
        }
    }

    func testFloorDivideAndModFollowPython() throws {
        // Python: -7 // 2 == -4, 7 // -2 == -4, -7 % 2 == 1, 7 % -2 == -1
        let cases: [(Int64, Int64, Double, Double)] = [(-7, 2, -4, 1), (7, -2, -4, -1), (7, 2, 3, 1), (-8, 2, -4, 0)]
        for (a, b, q, m) in cases {
            let fd = try RefGraph.run([]) { _, out in .floorDivideInt(FloorDivideIntOp(a: .literal(a), b: .literal(b), out: out)) }
            assertRefTensor(fd, [q], shape: [], dtype: .i64)
            let md = try RefGraph.run([]) { _, out in .modInt(ModIntOp(a: .literal(a), b: .literal(b), out: out)) }
            assertRefTensor(md, [m], shape: [], dtype: .i64)
        }
        assertRefError(["floor_divide_int", "zero"]) {
            _ = try RefGraph.run([]) { _, out in .floorDivideInt(FloorDivideIntOp(a: .literal(1), b: .literal(0), out: out)) }
        }
        assertRefError(["mod_int", "zero"]) {
            _ = try RefGraph.run([]) { _, out in .modInt(ModIntOp(a: .literal(1), b: .literal(0), out: out)) }
        }
    }

    func testSymSize() throws {
        let x = T([Double](repeating: 0, count: 24), [2, 3, 4])
        assertRefTensor(try RefGraph.run([x]) { ids, out in .symSize(SymSizeOp(a: ids[0], dim: 1, out: out)) }, [3], shape: [], dtype: .i64)
        assertRefTensor(try RefGraph.run([x]) { ids, out in .symSize(SymSizeOp(a: ids[0], dim: -1, out: out)) }, [4], shape: [], dtype: .i64)
        assertRefError(["sym_size", "dim 3", "[2, 3, 4]"]) {
            _ = try RefGraph.run([x]) { ids, out in .symSize(SymSizeOp(a: ids[0], dim: 3, out: out)) }
        }
    }

    func testItemIntAndItem() throws {
        assertRefTensor(try RefGraph.run([T([5], [1, 1], .i32)]) { ids, out in .itemInt(ItemIntOp(x: ids[0], out: out)) }, [5], shape: [], dtype: .i64)
        // A float truncates toward zero (C cast), NaN gives 0 rather than trapping.
        assertRefTensor(try RefGraph.run([T([-2.9])]) { ids, out in .itemInt(ItemIntOp(x: ids[0], out: out)) }, [-2], shape: [], dtype: .i64)
        assertRefTensor(try RefGraph.run([T([.nan])]) { ids, out in .itemInt(ItemIntOp(x: ids[0], out: out)) }, [0], shape: [], dtype: .i64)
        assertRefTensor(try RefGraph.run([T([0.1], [], .bf16)]) { ids, out in .item(ItemOp(x: ids[0], out: out)) },
                        [0.10009765625], shape: [], dtype: .f64)
        assertRefError(["item_int", "[2]"]) {
            _ = try RefGraph.run([T([1, 2], nil, .i64)]) { ids, out in .itemInt(ItemIntOp(x: ids[0], out: out)) }
        }
    }

    func testScalarMathComparisonsAndDivision() throws {
        assertRefTensor(try math("truediv", int(7), int(2)), [3.5], shape: [], dtype: .f64)
        assertRefTensor(try math("truediv", float(1), int(0)), [.infinity], shape: [], dtype: .f64)
        assertRefTensor(try math("eq", int(3), float(3)), [1], shape: [], dtype: .bool)
        assertRefTensor(try math("gt", int(3), int(4)), [0], shape: [], dtype: .bool)
        assertRefTensor(try math("ge", int(4), int(4)), [1], shape: [], dtype: .bool)
        assertRefTensor(try math("lt", float(-0.5), int(0)), [1], shape: [], dtype: .bool)
        assertRefTensor(try math("le", float(.nan), float(.nan)), [0], shape: [], dtype: .bool)
    }

    func testScalarMathRoundingAndConversions() throws {
        assertRefTensor(try math("neg", int(5)), [-5], shape: [], dtype: .i64)
        assertRefTensor(try math("neg", float(2.5)), [-2.5], shape: [], dtype: .f64)
        // Python: math.ceil(-2.5) == -2, round(2.5) == 2, round(3.5) == 4, math.trunc(-2.7) == -2
        assertRefTensor(try math("ceil", float(-2.5)), [-2], shape: [], dtype: .i64)
        assertRefTensor(try math("round", float(2.5)), [2], shape: [], dtype: .i64)
        assertRefTensor(try math("round", float(3.5)), [4], shape: [], dtype: .i64)
        assertRefTensor(try math("round", float(-2.5)), [-2], shape: [], dtype: .i64)
        assertRefTensor(try math("trunc", float(-2.7)), [-2], shape: [], dtype: .i64)
        assertRefTensor(try math("sym_float", int(3)), [3], shape: [], dtype: .f64)
        assertRefTensor(try math("sym_int", float(-3.9)), [-3], shape: [], dtype: .i64)
        assertRefTensor(try math("sym_not", bool(true)), [0], shape: [], dtype: .bool)
    }

    func testScalarMathSelectionAndArithmetic() throws {
        assertRefTensor(try math("sym_max", int(3), int(8)), [8], shape: [], dtype: .i64)
        assertRefTensor(try math("sym_min", int(3), int(8)), [3], shape: [], dtype: .i64)
        assertRefTensor(try math("sym_max", float(0.5), int(0)), [0.5], shape: [], dtype: .f64)
        assertRefTensor(try math("sym_ite", bool(true), int(1), int(2)), [1], shape: [], dtype: .i64)
        assertRefTensor(try math("sym_ite", bool(false), int(1), float(2.5)), [2.5], shape: [], dtype: .f64)
        assertRefTensor(try math("numel", T([Double](repeating: 0, count: 6), [2, 3])), [6], shape: [], dtype: .i64)
        assertRefTensor(try math("add", int(2), float(0.5)), [2.5], shape: [], dtype: .f64)
        assertRefTensor(try math("add", int(2), int(3)), [5], shape: [], dtype: .i64)
        assertRefTensor(try math("sub", int(2), int(3)), [-1], shape: [], dtype: .i64)
        assertRefTensor(try math("mul", float(1.5), int(4)), [6], shape: [], dtype: .f64)
        // Python: -7.5 // 2 == -4.0, 7.5 % -2 == -0.5, -7 // 2 == -4, -7 % 3 == 2
        assertRefTensor(try math("floordiv", float(-7.5), int(2)), [-4], shape: [], dtype: .f64)
        assertRefTensor(try math("mod", float(7.5), int(-2)), [-0.5], shape: [], dtype: .f64)
        assertRefTensor(try math("floordiv", int(-7), int(2)), [-4], shape: [], dtype: .i64)
        assertRefTensor(try math("mod", int(-7), int(3)), [2], shape: [], dtype: .i64)
        assertRefError(["scalar_math floordiv", "zero"]) { _ = try math("floordiv", int(1), int(0)) }
        assertRefError(["scalar_math", "frobnicate"]) { _ = try math("frobnicate", int(1)) }
        assertRefError(["scalar_math add", "takes 2"]) { _ = try math("add", int(1)) }
    }
}
