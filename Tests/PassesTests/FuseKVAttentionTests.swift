import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-kv-attention, text in → text out: attention over a KV cache whose q and k are not rotated
/// (Whisper's decoder self-attention as export_whisper writes it, after canonical-kv-attention) becomes one
/// rope_attention with rope_dims 0; what it must leave alone: a rotated q or k (fuse-rope-attention's), a
/// cache read between its write and the sdpa, writes with different indices, a cache not written, and attention over computed k/v (an encoder, cross-attention).
final class FuseKVAttentionTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 4, 1, 16] "q"
    input %1 : f32[1, 4, 1, 16] "k"
    input %2 : f32[1, 4, 1, 16] "v"
    input %3 : i64[1] "positions"
    input %4 : bool[1, 64] "keep"
    state %5 : f32[1, 4, 64, 16] = zeros "k_cache"
    state %6 : f32[1, 4, 64, 16] = zeros "v_cache"
    input %7 : i64[1] "positions2"
    input %8 : f32[1, 4, 50, 16] "cross_k"
    input %9 : f32[1, 4, 50, 16] "cross_v"
    input %10 : i64[] "pos"

    """

    func write(_ cache: Int, _ update: Int, indices: Int = 3) -> String {
        "  %\(cache) = index_copy(dst: %\(cache), update: %\(update), indices: %\(indices), axis: 2) : f32[1, 4, 64, 16]\n"
    }

    func sdpa(_ out: Int, q: Int = 0, k: Int = 5, v: Int = 6, mask: String = "%4") -> String {
        "  %\(out) = sdpa(q: %\(q), k: %\(k), v: %\(v), scale: 0.25, mask: \(mask), causal: false) : ?\n"
    }

    var layer: String { write(5, 1) + write(6, 2) + sdpa(11) }

    func fusedLayer(offset: Int) -> String {
        "%11, %5, %6 = rope_attention(q: %0, k: %1, v: %2, k_cache: %5, v_cache: %6, indices: %3, offset: %\(offset), rope_dims: 0, "
            + "freqs: none, traditional: false, base: 10000.0, rope_scale: 1.0, scale: 0.25, mask: %4, causal: false, "
            + "cos_table: none, sin_table: none, table_stop: none) : (?, f32[1, 4, 64, 16], f32[1, 4, 64, 16])"
    }

    func fused(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int, graph: Graph) {
        var g = try IRParser.parse(header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        let changes = try FuseKVAttention().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        let nodes = text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(try IRParser.parse(text), g, file: file, line: line)
        return (nodes.joined(separator: "\n"), changes, g)
    }

    func assertUnchanged(_ body: String, outputs: String = "%11", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (text, changes, _) = try fused(body, outputs: outputs, file: file, line: line)
        XCTAssertEqual(changes, 0, why, file: file, line: line)
        let want = body.components(separatedBy: "\n").filter { !$0.isEmpty }.map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(text, want.joined(separator: "\n"), why, file: file, line: line)
    }

    func testDecoderSelfAttentionBecomesOneOpWithoutRope() throws {
        let (text, changes, g) = try fused(layer + "  %12 = transpose(x: %11, perm: [0, 2, 1, 3]) : ?\n", outputs: "%12")
        XCTAssertEqual(changes, 1)
        // The offset is a new i64 scalar constant 0 (read only by a rotation, which there is none of).
        let offset = g.values.count - 1
        guard case .constant(.literal(let xs)) = g[ValueID(offset)].kind else { return XCTFail("offset is not a literal") }
        XCTAssertEqual(xs, [0])
        XCTAssertEqual(text, fusedLayer(offset: offset) + "\n%12 = transpose(x: %11, perm: [0, 2, 1, 3]) : ?")
    }

    func testWritesInEitherOrderAndTheCrossAttentionAfterIsLeftAlone() throws {
        // v written first; the layer's cross-attention (over given K/V, no cache) follows and stays an sdpa.
        let body = write(6, 2) + write(5, 1) + sdpa(11) + sdpa(12, q: 11, k: 8, v: 9, mask: "none")
        let (text, changes, g) = try fused(body, outputs: "%12")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, fusedLayer(offset: g.values.count - 1) + "\n"
                       + "%12 = sdpa(q: %11, k: %8, v: %9, scale: 0.25, mask: none, causal: false) : ?")
    }

    func testTwoLayersShareOneOffsetConstant() throws {
        let body = layer + write(5, 11) + write(6, 11) + sdpa(12, q: 11)
        let (_, changes, g) = try fused(body, outputs: "%12")
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(g.values.filter { if case .constant = $0.kind { return true } else { return false } }.count, 1)
    }

    func testRotatedQOrKIsLeftToFuseRopeAttention() throws {
        let rope = "  %11 = rope(x: %0, dims: 16, offset: %10, freqs: none, traditional: false, base: 10000.0, scale: 1.0) : ?\n"
        try assertUnchanged(rope + write(5, 1) + write(6, 2) + sdpa(12, q: 11), outputs: "%12", "q is rotated")
        let ropeK = "  %11 = rope(x: %1, dims: 16, offset: %10, freqs: none, traditional: false, base: 10000.0, scale: 1.0) : ?\n"
        try assertUnchanged(ropeK + write(5, 11) + write(6, 2) + sdpa(12), outputs: "%12", "k is rotated")
    }

    func testCacheReadBetweenWriteAndSdpaBlocks() throws {
        try assertUnchanged(write(5, 1) + "  %11 = add(a: %5, b: %5) : ?\n" + write(6, 2) + sdpa(12),
                            outputs: "%12, %11", "the add reads the new k rows before the fused op would write them")
    }

    /// optimum's cross-attention caches, rewritten whole at the same rows on every call from the encoder's states —
    /// rows as a constant (XNNPACK: a folded `arange(50)`) or as the `arange` op (portable) — are not incremental: the
    /// writes stay steps of their own (cross-call reuse skips them) and the attention a plain sdpa over the caches.
    /// Rows that do not cover the cache (a prefix, from 1, another step) are an incremental write: fused.
    func testCacheRewrittenWholeEveryCallIsLeftAWriteAndAnSdpa() throws {
        let cross = """
        state %12 : f32[1, 4, 50, 16] = zeros "cross_k_cache"
        state %13 : f32[1, 4, 50, 16] = zeros "cross_v_cache"
        const %14 : i64[50] = buffer(0) "rows"

        """
        func body(_ rows: String) -> String {
            rows + "  %12 = index_copy(dst: %12, update: %8, indices: %15, axis: 2) : f32[1, 4, 50, 16]\n"
                + "  %13 = index_copy(dst: %13, update: %9, indices: %15, axis: 2) : f32[1, 4, 50, 16]\n"
                + "  %11 = sdpa(q: %0, k: %12, v: %13, scale: 0.25, mask: none, causal: false) : ?\n"
        }
        func run(_ rows: String) throws -> (Int, String) {
            var g = try IRParser.parse(header + cross + "block main {\n" + body(rows) + "}\noutputs %11\n")
            let changes = try FuseKVAttention().run(&g)
            try Verifier.verify(g)
            return (changes, IRPrinter.print(g, origins: false))
        }
        let whole = ["  %15 = arange(start: 0, stop: 50, step: 1, scalar_type: i64) : i64[50]\n",
                     "  %15 = arange(start: 0, stop: 50, step: 1, scalar_type: none) : i64[50]\n",
                     "  %15 = id_copy(x: %14) : i64[50]\n"]
        for rows in whole {
            let (changes, text) = try run(rows)
            if rows.contains("id_copy") {
                XCTAssertEqual(changes, 1, "rows computed from a constant by an op this pass does not read: incremental, fused")
            } else {
                XCTAssertEqual(changes, 0, rows)
                XCTAssertTrue(text.contains("sdpa(q: %0, k: %12, v: %13"), text)
                XCTAssertEqual(text.components(separatedBy: "index_copy(").count - 1, 2, text)
            }
        }
        // The constant itself (XNNPACK's folded arange), by name instead of through a node.
        var g = try IRParser.parse(header + cross + "block main {\n" + body("").replacingOccurrences(of: "indices: %15", with: "indices: %14")
                                   + "}\noutputs %11\n")
        XCTAssertEqual(try FuseKVAttention().run(&g), 0, "constant rows covering the cache")
        for partial in ["  %15 = arange(start: 0, stop: 49, step: 1, scalar_type: i64) : i64[49]\n",
                        "  %15 = arange(start: 1, stop: 51, step: 1, scalar_type: i64) : i64[50]\n",
                        "  %15 = arange(start: 0, stop: 100, step: 2, scalar_type: i64) : i64[50]\n"] {
            XCTAssertEqual(try run(partial).0, 1, "not the cache's rows 0..<50 in order: an incremental write, fused: \(partial)")
        }
    }

    func testDifferentIndicesOrNotStateOrSwappedCachesBlock() throws {
        try assertUnchanged(write(5, 1) + write(6, 2, indices: 7) + sdpa(11), "k and v written at different positions")
        try assertUnchanged(write(5, 1) + sdpa(11), "the v cache is not written before the sdpa")
        try assertUnchanged(sdpa(11, k: 8, v: 9, mask: "none"), "cross-attention: no cache write to fold in")
    }
}
