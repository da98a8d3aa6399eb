import XCTest
import MLXCIR
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
}

/// `text` with a dead `sym_size` filler for every value number it leaves out (the parser wants
/// values numbered densely; the layers above number them by role).
fileprivate func densified(_ text: String) -> String {
    let numbers = text.components(separatedBy: "\n").compactMap { line -> [Int]? in
        let t = line.trimmingCharacters(in: .whitespaces)
        guard let eq = t.range(of: " = ") ?? t.range(of: " : ") else { return nil }
        let head = t[..<eq.lowerBound]
        return head.components(separatedBy: CharacterSet(charactersIn: " ,")).compactMap { $0.hasPrefix("%") ? Int($0.dropFirst()) : nil }
    }.flatMap { $0 }
    let have = Set(numbers)
    guard let top = have.max() else { return text }
    let fillers = (0..<top).filter { !have.contains($0) }.map { "  %\($0) = sym_size(a: %0, dim: 0) : i64[]\n" }.joined()
    return text.replacingOccurrences(of: "block main {\n", with: "block main {\n" + fillers)
}

extension String {
    /// The lines of an IR body as `runPass` prints them (trimmed, no blank lines).
    var trimmedLines: String {
        components(separatedBy: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "\n")
    }
}
