import XCTest
import MLXCIR
import IRTestSupport
@testable import MLXCPasses

/// canonical-kv-attention, text in → text out: the KV-cache writes and attention reads ExecuTorch's
/// custom-cache exports spell with slices — MLX `kv_cache_update` (flat and ring buffer),
/// `custom_sdpa` over `slice(cache, 0, L)`, `llama::update_cache` / `llama::custom_sdpa` on
/// [B, S, H, D] caches — become `index_copy` at `arange` positions and `sdpa` over the whole cache
/// with a keep mask; and what it must leave alone.
final class CanonicalKVAttentionTests: XCTestCase {
    /// x's token count T is the q, k and v rows (reshape targets name it); u has a T of its own.
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 64] "x"
    input %1 : f32[1, ?1..8, 32] "kx"
    input %2 : f32[1, ?1..8, 32] "vx"
    input %3 : i64[?1..8] "positions"
    state %4 : f32[1, 2, 32, 16] = zeros "k_cache"
    state %5 : f32[1, 2, 32, 16] = zeros "v_cache"
    input %6 : f32[1, 2, ?1..8, 16] "u"

    """

    /// q [1, 4, T, 16], k and v [1, 2, T, 16], start = positions[0] (%15).
    let projections = """
      %10 = sym_size(a: %0, dim: 1) : i64[]
      %11 = reshape(x: %0, shape: [1, %10, 4, 16]) : f32[1, ?1..8, 4, 16]
      %12 = transpose(x: %11, perm: [0, 2, 1, 3]) : f32[1, 4, ?1..8, 16]
      %13 = reshape(x: %1, shape: [1, %10, 2, 16]) : f32[1, ?1..8, 2, 16]
      %14 = transpose(x: %13, perm: [0, 2, 1, 3]) : f32[1, 2, ?1..8, 16]
      %16 = reshape(x: %2, shape: [1, %10, 2, 16]) : f32[1, ?1..8, 2, 16]
      %17 = transpose(x: %16, perm: [0, 2, 1, 3]) : f32[1, 2, ?1..8, 16]
      %18 = take(x: %3, index: 0, axis: 0) : i64[]
      %15 = item_int(x: %18) : i64[]

    """

    func write(_ cache: Int, _ update: Int, size: Int, stop: Int) -> String {
        """
          %\(size) = sym_size(a: %\(update), dim: 2) : i64[]
          %\(stop) = add_int(a: %15, b: %\(size)) : i64[]
          %\(cache) = slice_update(dst: %\(cache), update: %\(update), axis: 2, start: %15, stop: %\(stop), step: 1) : f32[1, 2, 32, 16]

        """
    }

    /// custom_sdpa's read of both caches up to L = start + q's rows.
    func read(q: Int = 12, mask: String = "none", causal: Bool = true) -> String {
        """
          %30 = sym_size(a: %\(q), dim: 2) : i64[]
          %31 = add_int(a: %15, b: %30) : i64[]
          %32 = slice(x: %4, axis: 2, start: 0, stop: %31, step: 1) : f32[1, 2, ?0..32, 16]
          %33 = slice(x: %5, axis: 2, start: 0, stop: %31, step: 1) : f32[1, 2, ?0..32, 16]
          %34 = sdpa(q: %\(q), k: %32, v: %33, scale: 0.25, mask: \(mask), causal: \(causal)) : f32[1, 4, ?1..8, 16]

        """
    }

    func program(_ body: String) -> String { densified(header + "block main {\n" + body + "}\noutputs %34\n") }

    func rewritten(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> (text: String, changes: Int) {
        try runPass(CanonicalKVAttention(), on: program(body), file: file, line: line)
    }

    func assertUnchanged(_ body: String, _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertPassLeavesUnchanged(CanonicalKVAttention(), on: program(body), why, file: file, line: line)
    }

    func testFlatWritesShareOnePositionVectorAndTheCausalReadBecomesAMask() throws {
        let (text, changes) = try rewritten(projections + write(4, 14, size: 20, stop: 21) + write(5, 17, size: 22, stop: 23) + read())
        XCTAssertEqual(changes, 3)
        XCTAssertEqual(text, projections.trimmedLines + """

        %35 = add_int(a: %15, b: %10) : i64[]
        %36 = arange(start: %15, stop: %35, step: 1, scalar_type: i64) : i64[?1..8]
        %4 = index_copy(dst: %4, update: %14, indices: %36, axis: 2) : f32[1, 2, 32, 16]
        %5 = index_copy(dst: %5, update: %17, indices: %36, axis: 2) : f32[1, 2, 32, 16]
        %37 = arange(start: 0, stop: 32, step: 1, scalar_type: i64) : i64[32]
        %38 = reshape(x: %36, shape: [-1, 1]) : i64[?1..8, 1]
        %39 = less_equal(a: %37, b: %38) : bool[?1..8, 32]
        %34 = sdpa(q: %12, k: %4, v: %5, scale: 0.25, mask: %39, causal: false) : f32[1, 4, ?1..8, 16]
        """)
    }

    func testWritesOfUnprovenEqualLengthsKeepTheirOwnPositions() throws {
        // v's rows come from its own input (reshape with -1): no proof they are k's T.
        let body = projections + "  %24 = reshape(x: %2, shape: [1, -1, 2, 16]) : f32[1, ?1..8, 2, 16]\n"
            + "  %25 = transpose(x: %24, perm: [0, 2, 1, 3]) : f32[1, 2, ?1..8, 16]\n"
            + write(4, 14, size: 20, stop: 21) + write(5, 25, size: 22, stop: 23) + read()
        let (text, _) = try rewritten(body)
        XCTAssertEqual(text.components(separatedBy: "\n").filter { $0.contains("= arange(start: %15") }.count, 2, text)
    }

    func testRingBufferPiecesBecomeOneWriteAtPositionsModSlots() throws {
        let body = projections + """
          %20 = mod_int(a: %15, b: 32) : i64[]
          %21 = sym_size(a: %14, dim: 2) : i64[]
          %22 = subtract_int(a: 32, b: %20) : i64[]
          %23 = slice(x: %14, axis: 2, start: 0, stop: %22, step: 1) : f32[1, 2, ?0..8, 16]
          %24 = sym_size(a: %23, dim: 2) : i64[]
          %25 = slice(x: %14, axis: 2, start: %24, stop: %21, step: 1) : f32[1, 2, ?0..8, 16]
          %26 = add_int(a: %20, b: %24) : i64[]
          %27 = subtract_int(a: %21, b: %24) : i64[]
          %4 = slice_update(dst: %4, update: %23, axis: 2, start: %20, stop: %26, step: 1) : f32[1, 2, 32, 16]
          %4 = slice_update(dst: %4, update: %25, axis: 2, start: 0, stop: %27, step: 1) : f32[1, 2, 32, 16]
          %28 = subtract_int(a: 32, b: %10) : i64[]
          %29 = add_int(a: %28, b: %10) : i64[]
          %32 = slice(x: %4, axis: 2, start: 0, stop: %29, step: 1) : f32[1, 2, ?0..32, 16]
          %33 = slice(x: %5, axis: 2, start: 0, stop: %29, step: 1) : f32[1, 2, ?0..32, 16]
          %34 = sdpa(q: %12, k: %32, v: %33, scale: 0.25, mask: %6, causal: false) : f32[1, 4, ?1..8, 16]

        """
        let (text, changes) = try rewritten(body)
        XCTAssertEqual(changes, 2)
        let kept = projections.trimmedLines.components(separatedBy: "\n").filter { !$0.hasPrefix("%16 ") && !$0.hasPrefix("%17 ") }   // v is unread
        XCTAssertEqual(text, kept.joined(separator: "\n") + """

        %20 = mod_int(a: %15, b: 32) : i64[]
        %35 = add_int(a: %20, b: %10) : i64[]
        %36 = arange(start: %20, stop: %35, step: 1, scalar_type: i64) : i64[?1..8]
        %38 = remainder(a: %36, b: %37) : i64[?1..8]
        %4 = index_copy(dst: %4, update: %14, indices: %38, axis: 2) : f32[1, 2, 32, 16]
        %34 = sdpa(q: %12, k: %4, v: %5, scale: 0.25, mask: %6, causal: false) : f32[1, 4, ?1..8, 16]
        """)
    }

    func testLlamaCustomOpsOnBSHDCachesAreRelaidAndRewritten() throws {
        let text = densified("""
        graph @f
        input %0 : f32[1, ?1..8, 64] "x"
        input %1 : f32[1, ?1..8, 32] "kx"
        input %2 : f32[1, ?1..8, 32] "vx"
        input %3 : i64[1] "input_pos"
        state %4 : f32[1, 32, 2, 16] = zeros "k_cache"
        state %5 : f32[1, 32, 2, 16] = zeros "v_cache"
        block main {
          %6 = take(x: %3, index: 0, axis: 0) : i64[]
          %7 = item_int(x: %6) : i64[]
          %9 = sym_size(a: %0, dim: 1) : i64[]
          %10 = reshape(x: %0, shape: [1, %9, 4, 16]) : f32[1, ?1..8, 4, 16]
          %11 = reshape(x: %1, shape: [1, %9, 2, 16]) : f32[1, ?1..8, 2, 16]
          %12 = reshape(x: %2, shape: [1, %9, 2, 16]) : f32[1, ?1..8, 2, 16]
          %4 = llama_update_cache(value: %11, cache: %4, start_pos: %7) : f32[1, 32, 2, 16]
          %5 = llama_update_cache(value: %12, cache: %5, start_pos: %7) : f32[1, 32, 2, 16]
          %8 = llama_custom_sdpa(q: %10, k: %4, v: %5, start_pos: %7, attn_mask: none, dropout_p: 0.0, is_causal: true, scale: 0.25) : f32[1, ?1..8, 4, 16]
        }
        outputs %8
        """)
        var g = try IRParser.parse(text)
        XCTAssertEqual(try CanonicalKVAttention().run(&g), 3)
        try Verifier.verify(g)
        XCTAssertEqual(g[ValueID(4)].type, TensorType(.f32, fixed: [1, 2, 32, 16]), "the cache is relaid [B, H, S, D]")
        XCTAssertEqual(g.opHistogram["index_copy"], 2)
        XCTAssertEqual(g.opHistogram["sdpa"], 1)
        XCTAssertNil(g.opHistogram["llama_custom_sdpa"])
        // One position vector serves both writes (and the mask: the read starts at the same %7).
        XCTAssertEqual(g.opHistogram["arange"], 2)
    }

    /// etLLM's ring layers: writes at the program's cell indices [1, T], attention with its own mask
    /// over every cell; the mask must have one column per cell, else nothing changes.
    func testLlamaRingWritesAndMaskedReadAreRewritten() throws {
        func ring(maskColumns: Int) -> String {
            densified("""
            graph @f
            input %0 : f32[1, ?1..8, 64] "x"
            input %1 : f32[1, ?1..8, 32] "kx"
            input %2 : f32[1, ?1..8, 32] "vx"
            input %3 : i64[1, ?1..8] "cells"
            input %13 : f32[?1..8, \(maskColumns)] "mask"
            state %4 : f32[1, 16, 2, 16] = zeros "k_cache"
            state %5 : f32[1, 16, 2, 16] = zeros "v_cache"
            block main {
              %9 = sym_size(a: %0, dim: 1) : i64[]
              %10 = reshape(x: %0, shape: [1, %9, 4, 16]) : f32[1, ?1..8, 4, 16]
              %11 = reshape(x: %1, shape: [1, %9, 2, 16]) : f32[1, ?1..8, 2, 16]
              %12 = reshape(x: %2, shape: [1, %9, 2, 16]) : f32[1, ?1..8, 2, 16]
              %4 = llama_update_cache_with_indices(value: %11, cache: %4, start_pos: 0, indices: %3) : f32[1, 16, 2, 16]
              %5 = llama_update_cache_with_indices(value: %12, cache: %5, start_pos: 0, indices: %3) : f32[1, 16, 2, 16]
              %8 = llama_custom_sdpa(q: %10, k: %4, v: %5, start_pos: 0, attn_mask: %13, dropout_p: 0.0, is_causal: false, scale: 0.25) : f32[1, ?1..8, 4, 16]
            }
            outputs %8
            """)
        }
        var g = try IRParser.parse(ring(maskColumns: 16))
        XCTAssertEqual(try CanonicalKVAttention().run(&g), 3)
        try Verifier.verify(g)
        XCTAssertEqual(g[ValueID(4)].type, TensorType(.f32, fixed: [1, 2, 16, 16]), "the ring is relaid [B, H, S, D]")
        let nodes = IRPrinter.print(g, origins: false).trimmedLines
        XCTAssertEqual(g.opHistogram["index_copy"], 2)
        XCTAssertEqual(g.opHistogram["reshape"], 4, "one flattening of the cell indices serves k and v")
        XCTAssertTrue(nodes.contains("sdpa(q: %"), nodes)
        XCTAssertTrue(nodes.contains("mask: %13, causal: false"), "the program's own mask: \(nodes)")
        XCTAssertNil(g.opHistogram["llama_custom_sdpa"])
        XCTAssertNil(g.opHistogram["arange"], "no positions are made up: the writes use the program's cells")
        try assertPassLeavesUnchanged(CanonicalKVAttention(), on: ring(maskColumns: 8), "a mask over fewer columns than the ring has cells")
    }

    func testLeavesAlone() throws {
        try assertUnchanged(projections + """
          %20 = add_int(a: %15, b: 1) : i64[]
          %4 = slice_update(dst: %4, update: %14, axis: 2, start: %15, stop: %20, step: 1) : f32[1, 2, 32, 16]
          %34 = id_copy(x: %4) : f32[1, 2, 32, 16]

        """, "a write of T rows that stops at start + 1, and a cache no sdpa reads")
        try assertUnchanged(projections + read(mask: "%6", causal: false), "a masked read of a slice that may be shorter than the cache")
        let written = read().replacingOccurrences(of: "  %34 = sdpa", with: """
          %20 = add_int(a: %15, b: 1) : i64[]
          %4 = slice_update(dst: %4, update: %14, axis: 2, start: %15, stop: %20, step: 1) : f32[1, 2, 32, 16]
          %34 = sdpa
        """)
        try assertUnchanged(projections + written, "the cache written between its slice and the sdpa")
    }
}

extension String {
    /// The lines of an IR body as `runPass` prints them (trimmed, no blank lines).
    var trimmedLines: String {
        components(separatedBy: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "\n")
    }
}
