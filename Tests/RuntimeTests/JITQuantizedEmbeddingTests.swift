import Foundation
import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The `quantized_embedding` kernel (ExecuTorch's `embedding_byte` / `embedding_4bit` /
/// `embedding_2bit`, left on the host by `--qembedding 8w|4w` exports) against the reference
/// executor's definition, on random tables: 8/4/2-bit codes (i8 and u8 bytes), one scale per row
/// ([V] and [V, 1]) and per group, zero points (float and integer) or none, f32/bf16/f16 scales and
/// results, i64 and i32 indices, repeated tokens and the table's first and last rows. The codes minus
/// the zero point are exact and the product is rounded once, so f32 is held to 1e-7 × max |expected|
/// (bit-exact in practice) and bf16/f16 to one result ulp (`ExportOpKernelChecks`). An index outside
/// the table leaves the call to the reference, which names it.
final class JITQuantizedEmbeddingTests: XCTestCase {
    typealias Random = JITKernelTests.Random

    struct Case {
        var bits = 8, byte = DType.i8, groups = 1, rowScales = false, zeros: DType? = nil
        var params = DType.f32, out: DType? = nil, index = DType.i64
    }

    func check(_ c: Case, seed: UInt64) throws {
        var r = Random(seed)
        let vocab = 33, dim = 64, packed = dim * c.bits / 8
        var g = RefGraph()
        let codes = r.ints([vocab, packed], c.byte == .u8 ? 0 : -128, c.byte == .u8 ? 255 : 127, c.byte)
        let w = ExportOpKernelChecks.constant(&g, codes)
        let scaleShape = c.rowScales ? [vocab] : [vocab, c.groups]
        let s = ExportOpKernelChecks.constant(&g, r.tensor(scaleShape, 0.001, 0.05, c.params))
        let z = c.zeros.map { d in
            ExportOpKernelChecks.constant(&g, HostTensor(dtype: d, shape: scaleShape, storage: r.ints(scaleShape, -8, 8).storage))
        }
        var ids = r.ints([2, 9], 0, vocab - 1, c.index)
        ids.storage[0] = 0
        ids.storage[1] = Double(vocab - 1)
        ids.storage[2] = ids.storage[3]
        let idx = g.input(ids)
        let out = g.result()
        g.append(.quantizedEmbedding(QuantizedEmbeddingOp(weight: w, scales: s, zeroPoints: z, quantMin: c.bits == 8 ? -128 : -(1 << (c.bits - 1)),
                                                          quantMax: (1 << (c.bits - 1)) - 1, bits: c.bits, indices: idx, dtype: c.out, out: out)))
        try ExportOpKernelChecks.check(g, [out], f32Tolerance: 1e-7, kernels: ["quantized_embedding_w\(c.bits)_"], "\(c)")
    }

    func testRowsDequantizedPerToken() throws {
        var seed: UInt64 = 90
        let cases: [Case] = [
            Case(),                                                  // embedding_byte as `--qembedding 8w` writes it: [V, 1] f32
            Case(rowScales: true),                                   // [V]
            Case(groups: 4, zeros: .f32),                            // per group with float zero points
            Case(groups: 2, zeros: .i64, index: .i32),
            Case(out: .bf16),                                        // embedding_byte.dtype to bf16
            Case(params: .bf16),                                     // bf16 scales: bf16 rows
            Case(params: .f16, index: .i32),
            Case(bits: 4, byte: .u8, groups: 2, params: .bf16),      // embedding_4bit: even column in the high nibble
            Case(bits: 4, byte: .i8, groups: 1, zeros: .f32),
            Case(bits: 2, byte: .u8, groups: 4, out: .bf16),
        ]
        for c in cases {
            seed += 1
            try check(c, seed: seed)
        }
    }

    func testIndexOutsideTheTableIsLeftToTheReference() throws {
        var r = Random(5)
        var g = RefGraph()
        let w = ExportOpKernelChecks.constant(&g, r.ints([8, 16], -128, 127, .i8))
        let s = ExportOpKernelChecks.constant(&g, r.tensor([8, 1], 0.01, 0.02, .f32))
        let idx = g.input(HostTensor(dtype: .i64, shape: [1, 2], storage: [1, 8]))
        let out = g.result()
        g.append(.quantizedEmbedding(QuantizedEmbeddingOp(weight: w, scales: s, quantMin: -128, quantMax: 127, bits: 8, indices: idx, out: out)))
        var graph = g.graph
        graph.outputs = [out]
        let jit = try JITProgram(graph: graph, pte: JITKernelTests.pte)
        XCTAssertEqual(jit.remarks, [])
        XCTAssertThrowsError(try jit.run(g.feeds)) { XCTAssertTrue("\($0)".contains("8"), "\($0)") }
    }
}
