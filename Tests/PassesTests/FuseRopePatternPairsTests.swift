import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-rope-pattern on etLLM's Meta-style RoPE (`rope.py` apply_rotary_emb / apply_rotary_emb_to_k),
/// text in → text out: x [1, T, H, D] reshaped to pairs [1, T, H, h, 2], the lanes as slice + squeeze
/// (unbind as exported) or take, tables `reshape(slice(cos, p, p + T), [1, T, 1, h])`, the result
/// stacked (or expand_dims + concatenate) and flattened → one rope_table of x with its rows moved
/// to axis 2 and back; x [1, H, T, D] with bare [T, h] tables → rope_table of x itself. And what it
/// leaves alone: swapped lanes, a per-head table view, a pairs tensor with another reader.
final class FuseRopePatternPairsTests: XCTestCase {
    let header = """
    graph @f
    input %0 : f32[1, ?1..8, 4, 16] "q"
    input %1 : i64[] "start"
    input %2 : i64[] "stop"
    const %3 : f32[64, 8] = buffer(0) "cos"
    const %4 : f32[64, 8] = buffer(1) "sin"
    input %5 : f32[1, ?1..8, 2, 16] "k"
    input %6 : f32[1, 4, ?1..8, 16] "q_bhtd"

    """

    /// The table views %10 (cos), %11 (sin): [1, T, 1, 8] as reshape_for_broadcast makes them; %8, %9
    /// the bare slices [T, 8].
    let views = """
      %7 = sym_size(a: %0, dim: 1) : i64[]
      %8 = slice(x: %3, axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 8]
      %9 = slice(x: %4, axis: 0, start: %1, stop: %2, step: 1) : f32[?1..8, 8]
      %10 = reshape(x: %8, shape: [1, %7, 1, 8]) : f32[1, ?1..8, 1, 8]
      %11 = reshape(x: %9, shape: [1, %7, 1, 8]) : f32[1, ?1..8, 1, 8]

    """

    enum Lanes { case sliceSqueeze, take, swapped }
    enum Join { case concatenate, stack }

    /// The rotation of x = %\(x) ([1, T, heads, 16] or, `bhtd`, [1, heads, T, 16]) with tables c, s,
    /// its values numbered from `base` (the pairs tensor is %\(base)); → the text and the flattened result.
    func rotation(x: Int, heads: Int, base: Int, c: Int = 10, s: Int = 11, lanes: Lanes = .sliceSqueeze, join: Join = .concatenate,
                  bhtd: Bool = false) -> (text: String, out: Int) {
        var next = base
        func id() -> Int { defer { next += 1 }; return next }
        let lead = bhtd ? "1, \(heads), ?1..8" : "1, ?1..8, \(heads)"
        let shape = bhtd ? "1, \(heads), -1" : "1, %7, \(heads)"
        let h = "f32[\(lead), 8]"
        let pairs = id()
        var t = "  %\(pairs) = reshape(x: %\(x), shape: [\(shape), -1, 2]) : f32[\(lead), 8, 2]\n"
        let (l0, l1) = lanes == .swapped ? (1, 0) : (0, 1)
        let x1: Int, x2: Int
        switch lanes {
        case .take:
            (x1, x2) = (id(), id())
            t += "  %\(x1) = take(x: %\(pairs), index: \(l0), axis: 4) : \(h)\n  %\(x2) = take(x: %\(pairs), index: \(l1), axis: 4) : \(h)\n"
        case .sliceSqueeze, .swapped:
            let (a, b) = (id(), id())
            (x1, x2) = (id(), id())
            t += """
              %\(a) = slice(x: %\(pairs), axis: 4, start: \(l0), stop: \(l0 + 1), step: 1) : f32[\(lead), 8, 1]
              %\(b) = slice(x: %\(pairs), axis: 4, start: \(l1), stop: \(l1 + 1), step: 1) : f32[\(lead), 8, 1]
              %\(x1) = squeeze(x: %\(a), dims: [4]) : \(h)
              %\(x2) = squeeze(x: %\(b), dims: [4]) : \(h)

            """
        }
        let (p0, p1, re, p2, p3, im) = (id(), id(), id(), id(), id(), id())
        t += """
          %\(p0) = multiply(a: %\(x1), b: %\(c)) : \(h)
          %\(p1) = multiply(a: %\(x2), b: %\(s)) : \(h)
          %\(re) = subtract(a: %\(p0), b: %\(p1)) : \(h)
          %\(p2) = multiply(a: %\(x1), b: %\(s)) : \(h)
          %\(p3) = multiply(a: %\(x2), b: %\(c)) : \(h)
          %\(im) = add(a: %\(p2), b: %\(p3)) : \(h)

        """
        let joined: Int
        switch join {
        case .concatenate:
            let (ea, eb) = (id(), id())
            joined = id()
            t += """
              %\(ea) = expand_dims(x: %\(re), axis: 4) : f32[\(lead), 8, 1]
              %\(eb) = expand_dims(x: %\(im), axis: 4) : f32[\(lead), 8, 1]
              %\(joined) = concatenate(tensors: [%\(ea), %\(eb)], axis: 4) : f32[\(lead), 8, 2]

            """
        case .stack:
            joined = id()
            t += "  %\(joined) = stack(tensors: [%\(re), %\(im)], axis: -1) : f32[\(lead), 8, 2]\n"
        }
        let out = id()
        t += "  %\(out) = reshape(x: %\(joined), shape: [\(shape), 16]) : f32[\(lead), 16]\n"
        return (t, out)
    }

    func program(_ body: String, _ outputs: String, inputs: String = "") -> String {
        header + inputs + "block main {\n" + body + "}\noutputs \(outputs)\n"
    }

    func testEtLLMRotationOfQAndKBecomesRopeTablesAcrossTheirRows() throws {
        let q = rotation(x: 0, heads: 4, base: 12), k = rotation(x: 5, heads: 2, base: q.out + 1)
        let (text, changes) = try runPass(FuseRopePattern(), on: program(views + q.text + k.text, "%\(q.out), %\(k.out)"))
        XCTAssertEqual(changes, 2)
        XCTAssertEqual(text, """
        %42 = transpose(x: %0, perm: [0, 2, 1, 3]) : f32[1, 4, ?1..8, 16]
        %43 = rope_table(x: %42, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]
        %26 = transpose(x: %43, perm: [0, 2, 1, 3]) : f32[1, ?1..8, 4, 16]
        %44 = transpose(x: %5, perm: [0, 2, 1, 3]) : f32[1, 2, ?1..8, 16]
        %45 = rope_table(x: %44, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 2, ?1..8, 16]
        %41 = transpose(x: %45, perm: [0, 2, 1, 3]) : f32[1, ?1..8, 2, 16]
        """)
    }

    func testLanesAsTakesAndAStack() throws {
        let q = rotation(x: 0, heads: 4, base: 12, lanes: .take, join: .stack)
        let (text, changes) = try runPass(FuseRopePattern(), on: program(views + q.text, "%\(q.out)"))
        XCTAssertEqual(changes, 1)
        XCTAssertTrue(text.contains("rope_table(x: %\(q.out + 1), cos: %3, sin: %4, start: %1, stop: %2, traditional: true)"), text)
        XCTAssertFalse(text.contains("take") || text.contains("stack") || text.contains("multiply"), text)
    }

    /// x flat [1, T, H·D] (the export merged view(B, T, H, D) into the pairs reshape): the rope reads that view.
    func testFlatXIsViewedAsHeadsFirst() throws {
        let q = rotation(x: 12, heads: 4, base: 13)
        let (text, changes) = try runPass(FuseRopePattern(), on: program(views + q.text, "%\(q.out)", inputs: "input %12 : f32[1, ?1..8, 64] \"q_flat\"\n"))
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, """
        %7 = sym_size(a: %0, dim: 1) : i64[]
        %\(q.out + 1) = reshape(x: %12, shape: [1, %7, 4, 16]) : f32[1, ?1..8, 4, 16]
        %\(q.out + 2) = transpose(x: %\(q.out + 1), perm: [0, 2, 1, 3]) : f32[1, 4, ?1..8, 16]
        %\(q.out + 3) = rope_table(x: %\(q.out + 2), cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]
        %\(q.out) = transpose(x: %\(q.out + 3), perm: [0, 2, 1, 3]) : f32[1, ?1..8, 4, 16]
        """)
    }

    /// Rows already at axis −2 ([1, H, T, D]) with bare [T, h] slices: the rope reads x itself.
    func testRowsAtTheSecondLastAxisNeedNoTranspose() throws {
        let q = rotation(x: 6, heads: 4, base: 12, c: 8, s: 9, join: .stack, bhtd: true)
        let (text, changes) = try runPass(FuseRopePattern(), on: program(views + q.text, "%\(q.out)"))
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text, "%\(q.out) = rope_table(x: %6, cos: %3, sin: %4, start: %1, stop: %2, traditional: true) : f32[1, 4, ?1..8, 16]")
    }

    func testLeavesAloneWhatIsNotThisRotation() throws {
        func unchanged(_ views: String, _ q: (text: String, out: Int), outputs: String? = nil, _ why: String) throws {
            try assertPassLeavesUnchanged(FuseRopePattern(), on: program(views + q.text, outputs ?? "%\(q.out)"), why)
        }
        try unchanged(views, rotation(x: 0, heads: 4, base: 12, lanes: .swapped), "x1 is the odd lane: a rotation the other way")
        let headRows = views.replacingOccurrences(of: "[1, %7, 1, 8]) : f32[1, ?1..8, 1, 8]", with: "[1, 1, %7, 8]) : f32[1, 1, ?1..8, 8]")
        try unchanged(headRows, rotation(x: 0, heads: 4, base: 12), "the view's rows run along x's head axis")
        let q = rotation(x: 0, heads: 4, base: 12)
        try unchanged(views, q, outputs: "%\(q.out), %12", "the pairs tensor is also an output")
        try unchanged(views, rotation(x: 0, heads: 4, base: 12, c: 8, s: 9), "bare [T, h] tables against [1, T, H, h] lanes pair rows with heads")
    }
}
