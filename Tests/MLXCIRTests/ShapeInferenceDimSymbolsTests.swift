import XCTest
@testable import MLXCIR

/// Shape inference knows which run-time dims are equal: a reshape whose run-time entry is the
/// `sym_size` of the very dim it reshapes (through gathers, norms, matmuls, transposes, slices,
/// broadcasts, sdpa, `arange(0, n)`) cancels it, so head counts come out fixed; a size tied to
/// another dim, or to dims that may differ, does not.
final class ShapeInferenceDimSymbolsTests: XCTestCase {
    func T(_ dtype: DType, _ shape: [Dim]) -> TensorType { TensorType(dtype, shape) }
    let t = Dim.dynamic(min: 1, max: 63)

    /// An HF attention block as the MLX export writes it: T from the token ids' sym_size.
    func testHeadCountsOfAnAttentionBlockAreFixed() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : i64[1, ?1..63] "input_ids"
        const %1 : f32[512, 64] = named("emb")
        const %2 : f32[64] = named("norm")
        const %3 : f32[64, 64] = named("wq")
        const %4 : f32[1, 2, 64, 16] = named("cache")
        block main {
          %5 = sym_size(a: %0, dim: 1) : ?
          %6 = take(x: %1, index: %0, axis: 0) : ?
          %7 = rms_norm(x: %6, weight: %2, eps: 0.00001) : ?
          %8 = addmm(mat1: %7, mat2: %3, bias: none, alpha: 1.0, beta: 1.0) : ?
          %9 = slice(x: %8, axis: 2, start: 0, stop: 32, step: 1) : ?
          %10 = reshape(x: %8, shape: [1, %5, -1, 16]) : ?
          %11 = reshape(x: %9, shape: [1, %5, -1, 16]) : ?
          %12 = transpose(x: %10, perm: [0, 2, 1, 3]) : ?
          %13 = sdpa(q: %12, k: %4, v: %4, scale: 0.25, mask: none, causal: true) : ?
          %14 = transpose(x: %13, perm: [0, 2, 1, 3]) : ?
          %15 = reshape(x: %14, shape: [1, %5, -1]) : ?
          %16 = full(shape: [], v: %5, scalar_type: i32) : ?
          %17 = reshape(x: %8, shape: [%16, -1]) : ?
        }
        outputs %11, %15, %17
        """)
        XCTAssertEqual(ShapeInference.annotate(&graph), [])
        XCTAssertEqual(graph.type(ValueID(10)), T(.f32, [.fixed(1), t, .fixed(4), .fixed(16)]))
        XCTAssertEqual(graph.type(ValueID(11)), T(.f32, [.fixed(1), t, .fixed(2), .fixed(16)]))
        XCTAssertEqual(graph.type(ValueID(15)), T(.f32, [.fixed(1), t, .fixed(64)]))
        XCTAssertEqual(graph.type(ValueID(17)), T(.f32, [t, .fixed(64)]))
    }

    /// A `take` whose axis is out of range, with its result typed in the text (so the symbols are
    /// tracked — it has a run-time dim — though the shape rule fails): an error naming the op, not a crash (fuzzing `ir`, issue 17).
    func testTakeOutsideItsAxesIsAnErrorNotACrash() throws {
        for axis in [2, 7, -3, -9] {
            var graph = try IRParser.parse("""
            graph @forward
            input %0 : i64[2, ?1..8] "ids"
            const %1 : f32[16, 8] = named("emb")
            block main {
              %2 = take(x: %1, index: %0, axis: \(axis)) : f32[2, ?1..8, 8]
            }
            outputs %2
            """)
            let errors = ShapeInference.annotate(&graph)
            XCTAssertFalse(errors.isEmpty, "axis \(axis)")
        }
    }

    /// Positions from arange(0, T), broadcast against inv_freq: [1, T, 8] → [T, -1] has 8 columns.
    func testArangeOfASymSizeCarriesItsSymbol() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : i64[1, ?1..63] "input_ids"
        const %1 : f32[8] = named("inv_freq")
        block main {
          %2 = sym_size(a: %0, dim: 1) : ?
          %3 = arange(start: 0, stop: %2, step: 1, scalar_type: i64) : ?
          %4 = expand_dims(x: %3, axis: 0) : ?
          %5 = expand_dims(x: %4, axis: 2) : ?
          %6 = as_type(x: %5, scalar_type: f32) : ?
          %7 = multiply(a: %6, b: %1) : ?
          %8 = concatenate(tensors: [%7, %7], axis: -1) : ?
          %9 = reshape(x: %8, shape: [%2, -1]) : ?
        }
        outputs %9
        """)
        XCTAssertEqual(ShapeInference.annotate(&graph), [])
        XCTAssertEqual(graph.type(ValueID(9)), T(.f32, [t, .fixed(16)]))
    }

    /// Sizes of other dims, or of dims that may differ, leave the -1 to bounds.
    func testUnrelatedOrAmbiguousSizesDoNotCancel() throws {
        var graph = try IRParser.parse("""
        graph @forward
        input %0 : f32[1, ?1..63, 64] "x"
        input %1 : f32[1, ?1..63, 64] "y"
        block main {
          %2 = sym_size(a: %1, dim: 1) : ?
          %3 = reshape(x: %0, shape: [1, %2, -1, 16]) : ?
          %4 = add(a: %0, b: %1) : ?
          %5 = sym_size(a: %0, dim: 1) : ?
          %6 = reshape(x: %4, shape: [1, %5, -1, 16]) : ?
          %7 = slice(x: %0, axis: 1, start: 0, stop: 5, step: 1) : ?
          %8 = reshape(x: %7, shape: [1, %5, -1, 16]) : ?
          %9 = reshape(x: %0, shape: [1, %5, -1, 16]) : ?
        }
        outputs %3, %6, %8, %9
        """)
        _ = ShapeInference.annotate(&graph)
        for v in [3, 6, 8] {
            XCTAssertNil(graph.type(ValueID(v))?.shape[2].fixedValue, "%\(v): \(String(describing: graph.type(ValueID(v))))")
        }
        XCTAssertEqual(graph.type(ValueID(9)), T(.f32, [.fixed(1), t, .fixed(4), .fixed(16)]))
    }
}
