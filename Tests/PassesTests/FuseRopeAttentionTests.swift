import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-rope-attention, text in → text out: the MLX attention layer (either order of the ropes and
/// of the cache writes, a mask computed between the writes and the sdpa), and the cases it must
/// leave alone: a rotated q or k with another reader, a cache read between its write and the sdpa,
/// ropes with different offsets or attributes, writes with different indices, caches that are not
/// state, an sdpa reading the caches in the other order.
final class FuseRopeAttentionTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, 4, ?1..8, 16] "q"
    input %1 : f32[1, 2, ?1..8, 16] "k"
    input %2 : f32[1, 2, ?1..8, 16] "v"
    input %3 : i64[] "pos"
    input %4 : i64[?1..8] "positions"
    input %5 : f32[?1..8, 32] "mask"
    state %6 : f32[1, 2, 32, 16] = zeros "k_cache"
    state %7 : f32[1, 2, 32, 16] = zeros "v_cache"
    input %8 : i64[] "pos2"
    input %9 : i64[?1..8] "positions2"
    input %10 : f32[1, 2, 32, 16] "not_state"

    """

    func rope(_ out: Int, _ x: Int, offset: Int = 3, traditional: Bool = true) -> String {
        "  %\(out) = rope(x: %\(x), dims: 16, offset: %\(offset), freqs: none, traditional: \(traditional), base: 10000.0, scale: 1.0) : ?\n"
    }

    func write(_ cache: Int, _ update: Int, indices: Int = 4) -> String {
        "  %\(cache) = index_copy(dst: %\(cache), update: %\(update), indices: %\(indices), axis: 2) : f32[1, 2, 32, 16]\n"
    }

    func sdpa(_ out: Int, q: Int, k: Int = 6, v: Int = 7, mask: String = "%5") -> String {
        "  %\(out) = sdpa(q: %\(q), k: %\(k), v: %\(v), scale: 0.25, mask: \(mask), causal: false) : ?\n"
    }

    /// The standard layer: rope q, rope k, write k, write v, sdpa.
    var layer: String { rope(11, 0) + rope(12, 1) + write(6, 12) + write(7, 2) + sdpa(13, q: 11) }

    let fusedLayer = """
    %13, %6, %7 = rope_attention(q: %0, k: %1, v: %2, k_cache: %6, v_cache: %7, indices: %4, offset: %3, rope_dims: 16, freqs: none, \
    traditional: true, base: 10000.0, rope_scale: 1.0, scale: 0.25, mask: %5, causal: false, \
    cos_table: none, sin_table: none, table_stop: none) : (?, f32[1, 2, 32, 16], f32[1, 2, 32, 16])
    """

    func fused(_ body: String, outputs: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        var g = try IRParser.parse(header + "block main {\n" + body + "}\noutputs \(outputs)\n")
        let changes = try FuseRopeAttention().run(&g)
        try Verifier.verify(g)
        let text = IRPrinter.print(g, origins: false)
        let nodes = text.components(separatedBy: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(try IRParser.parse(text), g, file: file, line: line)
        return (nodes.joined(separator: "\n"), changes)
    }

    /// The pass leaves `body` exactly as it was.
    func assertUnchanged(_ body: String, outputs: String = "%13", _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (text, changes) = try fused(body, outputs: outputs, file: file, line: line)
        XCTAssertEqual(changes, 0, why, file: file, line: line)
        let want = body.components(separatedBy: "\n").filter { !$0.isEmpty }.map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(text, want.joined(separator: "\n"), why, file: file, line: line)
    }

    func testAttentionLayerBecomesOneOpAtTheSdpa() throws {
        let (text, changes) = try fused(layer + "  %14 = transpose(x: %13, perm: [0, 2, 1, 3]) : ?\n", outputs: "%14")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, fusedLayer + "\n%14 = transpose(x: %13, perm: [0, 2, 1, 3]) : ?")
    }

    func testRopesAndWritesInEitherOrderWithTheMaskMadeInBetween() throws {
        // v written first, k rotated after q's write position, the mask computed after the writes.
        let body = write(7, 2) + rope(12, 1) + rope(11, 0) + write(6, 12)
            + "  %14 = add(a: %5, b: %5) : ?\n" + sdpa(13, q: 11, mask: "%14")
        let (text, changes) = try fused(body, outputs: "%13")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%14 = add(a: %5, b: %5) : ?\n" + fusedLayer.replacingOccurrences(of: "mask: %5", with: "mask: %14"))
    }

    func testTwoLayersSharingOffsetAndIndicesFuseEach() throws {
        let second = """
          %14 = rope(x: %13, dims: 16, offset: %3, freqs: none, traditional: true, base: 10000.0, scale: 1.0) : ?
          %15 = rope(x: %1, dims: 16, offset: %3, freqs: none, traditional: true, base: 10000.0, scale: 1.0) : ?
        """ + "\n"
        // The second layer reuses the same caches: it must see the first layer's writes (it does:
        // the first fused op sits before it).
        let (text, changes) = try fused(layer + second + write(6, 15) + write(7, 2) + sdpa(16, q: 14), outputs: "%16")
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text.components(separatedBy: "\n").count, 2)
        XCTAssertTrue(text.hasPrefix(fusedLayer))
    }

    /// The bench's XNNPACK export writes the rotated k as [H, T, D] and the cache write restores
    /// [1, H, T, D]: reshapes that end in k's own shape are absorbed; ones that do not, or with
    /// another reader, leave the layer alone.
    func testRotatedKeyReshapedAwayAndBackIsFused() throws {
        let views = "  %14 = reshape(x: %12, shape: [2, -1, 16]) : f32[2, ?1..8, 16]\n  %15 = reshape(x: %14, shape: [1, 2, -1, 16]) : f32[1, 2, ?1..8, 16]\n"
        let body = rope(11, 0) + rope(12, 1) + views + write(6, 15) + write(7, 2) + sdpa(13, q: 11)
        let (text, changes) = try fused(body, outputs: "%13")
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, fusedLayer)
        let elsewhere = views.replacingOccurrences(of: "shape: [1, 2, -1, 16]) : f32[1, 2, ?1..8, 16]", with: "shape: [1, -1, 2, 16]) : f32[1, ?1..8, 2, 16]")
        try assertUnchanged(rope(11, 0) + rope(12, 1) + elsewhere + "  %6 = index_copy(dst: %6, update: %15, indices: %4, axis: 1) : f32[1, 2, 32, 16]\n"
                            + write(7, 2) + sdpa(13, q: 11), "the reshapes end in another shape (and the write is along axis 1)")
        try assertUnchanged(body, outputs: "%13, %14", "the view in between is also an output")
    }

    func testRotatedQueryWithAnotherReaderIsLeftAlone() throws {
        try assertUnchanged(layer, outputs: "%13, %11", "q's rotation is also an output")
    }

    func testRotatedKeyWithAnotherReaderIsLeftAlone() throws {
        try assertUnchanged(layer + "  %14 = add(a: %12, b: %12) : ?\n", outputs: "%13, %14", "k's rotation has another reader")
    }

    func testCacheReadBetweenWriteAndSdpaIsLeftAlone() throws {
        let body = rope(11, 0) + rope(12, 1) + write(6, 12) + "  %14 = add(a: %6, b: %6) : ?\n" + write(7, 2) + sdpa(13, q: 11)
        try assertUnchanged(body, outputs: "%13, %14", "a node reads the k cache between its write and the sdpa")
        let vBody = rope(11, 0) + rope(12, 1) + write(7, 2) + "  %14 = add(a: %7, b: %7) : ?\n" + write(6, 12) + sdpa(13, q: 11)
        try assertUnchanged(vBody, outputs: "%13, %14", "a node reads the v cache between its write and the sdpa")
    }

    func testDifferentRopeOffsetsOrAttributesAreLeftAlone() throws {
        try assertUnchanged(rope(11, 0) + rope(12, 1, offset: 8) + write(6, 12) + write(7, 2) + sdpa(13, q: 11), "different offsets")
        try assertUnchanged(rope(11, 0) + rope(12, 1, traditional: false) + write(6, 12) + write(7, 2) + sdpa(13, q: 11),
                            "traditional for q only")
    }

    func testWritesWithDifferentIndicesAreLeftAlone() throws {
        try assertUnchanged(rope(11, 0) + rope(12, 1) + write(6, 12) + write(7, 2, indices: 9) + sdpa(13, q: 11), "different indices")
    }

    func testSdpaNotReadingTheWrittenStateIsLeftAlone() throws {
        try assertUnchanged(rope(11, 0) + rope(12, 1) + write(6, 12) + write(7, 2) + sdpa(13, q: 11, k: 7, v: 6),
                            "k and v caches swapped")
        try assertUnchanged(rope(11, 0) + rope(12, 1) + write(6, 12) + sdpa(13, q: 11, v: 10), "v is not a written cache")
        try assertUnchanged(rope(11, 0) + rope(12, 1) + sdpa(13, q: 11), outputs: "%13, %12", "no cache writes at all")
    }

    func testUnfusedFormIsThePatternItReplaced() throws {
        var g = try IRParser.parse(header + "block main {\n" + layer + "}\noutputs %13\n")
        let before = g.blocks[0].nodes.map(\.op)
        _ = try FuseRopeAttention().run(&g)
        // Its temporaries stand for the rotated q and k (%11, %12).
        let unfused = FusedOps.unfused(g.blocks[0].nodes[0].op) { i in ValueID(11 + i) }
        XCTAssertEqual(unfused, before)
    }
}
