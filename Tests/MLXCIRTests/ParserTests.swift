import Foundation
import XCTest
@testable import MLXCIR

/// `IRParser`: reads what `IRPrinter` writes (hand-written snippets, a hand-built graph that
/// exercises every construct), names line and column in its errors, and never traps.
final class ParserTests: XCTestCase {
    private func v(_ i: Int) -> ValueID { ValueID(i) }

    private func op(_ name: String, _ fields: [String: Attribute]) throws -> Op {
        try Op(name: name, fields: fields)
    }

    // MARK: hand-written text

    func testParsesSnippet() throws {
        let text = """
        graph @forward
        input %0 : i64[1, ?1..31] "tokens"
        input %1 : i64[1] "pos"
        const %2 : f32[256, 64] = named("cbc7/tok_embeddings.weight")
        state %3 : f32[1, 2, 64, 16] = zeros "layers.0.attention.k_cache"
        const %4 : f32[] = literal(0.5)
        const %5 : i64[4] = buffer(3) "idx"
        state %6 : f32[2] = mutable(1)
        value %7 : ?
        block main {
          %8 = take(x: %2, index: %0, axis: 0) : f32[1, ?1..31, 64]  # chain 0 instruction 3
          %9 = item_int(x: %1) : i64[]
          %3 = slice_update(dst: %3, update: %8, axis: 2, start: %9, stop: 40, step: 1) : f32[1, 2, 64, 16]
          %10, %11 = split(x: %8, sizes: [1, %9], axis: 2) : (f32[1, ?1..31, 1], ?)  # split it
        }
        outputs %10, %3
        """
        let g = try IRParser.parse(text)
        XCTAssertEqual(g.name, "forward")
        XCTAssertEqual(g.values.count, 12)
        XCTAssertEqual(g.inputs, [v(0), v(1)])
        XCTAssertEqual(g.outputs, [v(10), v(3)])
        XCTAssertEqual(g[v(0)], ValueInfo(type: TensorType(.i64, [.fixed(1), .dynamic(min: 1, max: 31)]), kind: .input(position: 0), name: "tokens"))
        XCTAssertEqual(g[v(1)].kind, .input(position: 1))
        XCTAssertEqual(g[v(2)].kind, .constant(.namedData(key: "cbc7/tok_embeddings.weight")))
        XCTAssertNil(g[v(2)].name)
        XCTAssertEqual(g[v(3)], ValueInfo(type: TensorType(.f32, fixed: [1, 2, 64, 16]), kind: .state(initial: nil), name: "layers.0.attention.k_cache"))
        XCTAssertEqual(g[v(4)].kind, .constant(.literal([0.5])))
        XCTAssertEqual(g[v(4)].type, TensorType(.f32, []))
        XCTAssertEqual(g[v(5)].kind, .constant(.constantBuffer(index: 3)))
        XCTAssertEqual(g[v(6)].kind, .state(initial: .mutableData(index: 1)))
        XCTAssertEqual(g[v(7)], ValueInfo(type: nil, kind: .computed))
        XCTAssertEqual(g[v(8)], ValueInfo(type: TensorType(.f32, [.fixed(1), .dynamic(min: 1, max: 31), .fixed(64)]), kind: .computed))
        XCTAssertNil(g[v(11)].type)
        XCTAssertEqual(g.blocks.count, 1)
        XCTAssertNil(g.initBlock)
        let nodes = g.mainBlock.nodes
        XCTAssertEqual(nodes.count, 4)
        XCTAssertEqual(nodes[0].op, try op("take", ["x": .value(v(2)), "index": .value(v(0)), "axis": .int(0), "out": .value(v(8))]))
        XCTAssertEqual(nodes[0].origin, "chain 0 instruction 3")
        XCTAssertNil(nodes[1].origin)
        XCTAssertEqual(nodes[2].op.results, [v(3)])
        XCTAssertEqual(nodes[2].op.operands, [v(3), v(8), v(9)])
        XCTAssertEqual(nodes[3].op, try op("split", ["x": .value(v(8)), "outs": .values([v(10), v(11)]),
                                                     "sizes": .intOrValues([.literal(1), .value(v(9))]), "axis": .int(2)]))
        XCTAssertEqual(nodes[3].origin, "split it")
        XCTAssertNoThrow(try Verifier.verify(g))
    }

    func testAttributeLiterals() throws {
        let text = #"""
        graph @"kernels & co"
        input %0 : f32[4]
        input %1 : i32[]
        block main {
          %2, %3 = metal_kernel(name: "k\"1\"", source: "a\\b\n\tc\u{1}é", inputs: [%0, %1], grid: [4, %1, 1], threadgroup: [1, 1, 1], header: none, input_names: ["x", "n"], output_names: [], ensure_row_contiguous: false, atomic_outputs: true, output_shapes_flat: [%1, 2], output_shape_lengths: [1, 1], output_dtypes: [f32, bf16], template_arg_names: [], template_arg_kinds: [], template_arg_values: [], init_value: -inf) : (f32[?0..], bf16[2])
          %4 = full(shape: [2, 3], v: 1e-05, scalar_type: bool) : bool[2, 3]
          %5 = full(shape: [%1], v: %1, scalar_type: f32) : f32[?0..]
          %6 = as_type(x: %4, scalar_type: qu4x2) : qu4x2[2, 3]
          %7 = rope(x: %0, dims: 4, offset: %1, freqs: none, traditional: true, base: 10000, scale: 1.5e+20) : f32[4]
        }
        outputs
        """#
        let g = try IRParser.parse(text)
        XCTAssertEqual(g.name, "kernels & co")
        XCTAssertEqual(g.outputs, [])
        let nodes = g.mainBlock.nodes
        let kernel = Dictionary(uniqueKeysWithValues: nodes[0].op.fields.map { ($0.name, $0.value) })
        XCTAssertEqual(kernel["name"], .string("k\"1\""))
        XCTAssertEqual(kernel["source"], .string("a\\b\n\tc\u{1}é"))
        XCTAssertEqual(kernel["outputs"], .values([v(2), v(3)]))
        XCTAssertEqual(kernel["grid"], .intOrValues([.literal(4), .value(v(1)), .literal(1)]))
        XCTAssertEqual(kernel["header"], Attribute.none)
        XCTAssertEqual(kernel["input_names"], .strings(["x", "n"]))
        XCTAssertEqual(kernel["ensure_row_contiguous"], .bool(false))
        XCTAssertEqual(kernel["atomic_outputs"], .bool(true))
        XCTAssertEqual(kernel["output_shapes_flat"], .intOrValues([.value(v(1)), .literal(2)]))
        XCTAssertEqual(kernel["output_dtypes"], .dtypes([.f32, .bf16]))
        XCTAssertEqual(kernel["init_value"], .float(-.infinity))
        XCTAssertEqual(g[v(2)].type, TensorType(.f32, [.dynamic(min: 0, max: nil)]))
        XCTAssertEqual(g[v(3)].type, TensorType(.bf16, fixed: [2]))
        let full = Dictionary(uniqueKeysWithValues: nodes[1].op.fields.map { ($0.name, $0.value) })
        XCTAssertEqual(full["v"], .floatOrValue(.literal(1e-05)))
        XCTAssertEqual(full["scalar_type"], .dtype(.bool))
        let full2 = Dictionary(uniqueKeysWithValues: nodes[2].op.fields.map { ($0.name, $0.value) })
        XCTAssertEqual(full2["v"], .floatOrValue(.value(v(1))))
        XCTAssertEqual(full2["shape"], .intOrValues([.value(v(1))]))
        let rope = Dictionary(uniqueKeysWithValues: nodes[4].op.fields.map { ($0.name, $0.value) })
        XCTAssertEqual(rope["base"], .float(10000))
        XCTAssertEqual(rope["scale"], .float(1.5e20))
        XCTAssertEqual(rope["freqs"], Attribute.none)
        // And it prints back to something that parses to the same graph.
        XCTAssertEqual(try IRParser.parse(IRPrinter.print(g)), g)
    }

    func testBlocksInitAndControlFlow() throws {
        let text = """
        graph @forward
        input %0 : bool[]
        state %1 : f32[2] = zeros
        const %2 : f32[2] = literal(1.0, -2.5)
        block main {
          if(cond: %0, then_chain_idx: 2, else_chain_idx: 3)
          %3 = add(a: %1, b: %2) : f32[2]
        }
        block init init {
          %1 = add(a: %2, b: %2) : f32[2]
        }
        block mlx0.chain2 {
          %4 = add(a: %2, b: %2) : f32[2]
        }
        block "else branch" {
          %4 = multiply(a: %2, b: %2) : f32[2]
        }
        outputs %3, %4
        """
        let g = try IRParser.parse(text)
        XCTAssertEqual(g.blocks.map(\.name), ["main", "init", "mlx0.chain2", "else branch"])
        XCTAssertEqual(g.initBlock, 1)
        XCTAssertEqual(g.blocks[0].nodes[0].op.referencedBlocks, [2, 3])
        XCTAssertEqual(g[v(1)].kind, .state(initial: nil))
        XCTAssertEqual(g[v(2)].kind, .constant(.literal([1, -2.5])))
        XCTAssertEqual(g[v(4)].kind, .computed)
        XCTAssertNoThrow(try Verifier.verify(g))
        XCTAssertEqual(IRPrinter.print(g), text + "\n")
    }

    func testInputPositionsAndOrder() throws {
        // Default: graph.inputs is the input lines in order, positions their place there.
        var g = try IRParser.parse("graph @f\ninput %1 : f32[]\ninput %0 : f32[] # position 7\nblock main {\n}\noutputs\n")
        XCTAssertEqual(g.inputs, [v(1), v(0)])
        XCTAssertEqual(g[v(1)].kind, .input(position: 0))
        XCTAssertEqual(g[v(0)].kind, .input(position: 7))
        // An explicit `inputs` line wins.
        g = try IRParser.parse("graph @f\ninput %0 : f32[]\ninput %1 : f32[]\ninputs %1, %0\nblock main {\n}\noutputs %0\n")
        XCTAssertEqual(g.inputs, [v(1), v(0)])
        XCTAssertEqual(g[v(0)].kind, .input(position: 1))
        XCTAssertEqual(g[v(1)].kind, .input(position: 0))
        XCTAssertEqual(try IRParser.parse(IRPrinter.print(g)), g)
        // Blank lines, comment lines, CRLF line ends and no block at all are fine.
        g = try IRParser.parse("# a reproducer\r\n\r\ngraph @f\r\n  input %0 : f32[]  \r\noutputs %0\r\n")
        XCTAssertEqual(g.blocks, [Block(name: "main")])
        XCTAssertEqual(g.outputs, [v(0)])
    }

    // MARK: a hand-built graph with every construct

    /// Exercises every declaration, source, type form, attribute kind, result form and the
    /// printer's escapes (names and origins that need quoting, `inputs` out of order).
    func richGraph() throws -> Graph {
        var g = Graph(name: "odd name\twith tab")
        let a = g.addValue(TensorType(.f32, [.fixed(2), .dynamic(min: 1, max: 64)]), .input(position: 1), name: "a \"quoted\"\n")
        let b = g.addValue(TensorType(.i32, []), .input(position: 0))
        let w = g.addValue(TensorType(.bf16, fixed: [64, 4]), .constant(.namedData(key: "w/é\u{7}")), name: "w")
        let lit = g.addValue(TensorType(.f64, []), .constant(.literal([-.infinity, 1e-300, 123456789012345678, 0.1, -0])))
        let buf = g.addValue(TensorType(.u8, fixed: [3]), .constant(.constantBuffer(index: 2)))
        let cache = g.addValue(TensorType(.f32, fixed: [2, 64]), .state(initial: .mutableData(index: 0)), name: "cache")
        let cache2 = g.addValue(nil, .state(initial: .literal([])), name: "")
        let loose = g.addValue(TensorType(.f8e4m3fnuz, [.dynamic(min: 0, max: nil)]), .computed, name: "loose")
        let unnamed = g.addValue(nil, .computed)
        let t = g.addValue(TensorType(.f32, fixed: [4, 64]), .computed, name: "named result")
        let s0 = g.addValue(TensorType(.i64, []), .computed)
        let s1 = g.addValue(nil, .computed)
        let k0 = g.addValue(TensorType(.f32, fixed: [2]), .computed)
        let k1 = g.addValue(TensorType(.f32, fixed: [2]), .computed)
        g.inputs = [b, a]
        g.blocks.append(Block(name: "then"))
        g.blocks.append(Block(name: ""))
        g.blocks.append(Block(name: "init"))
        g.initBlock = 3
        g.append(try op("transpose", ["x": .value(w), "out": .value(t), "perm": .ints([1, 0])]), origin: "instruction 0 of chain 0")
        g.append(try op("sym_size", ["a": .value(a), "dim": .int(1), "out": .value(s0)]), origin: "\"quoted\" origin")
        g.append(try op("index_copy", ["dst": .value(cache), "update": .value(a), "indices": .value(s0), "out": .value(cache), "axis": .int(1)]), origin: "")
        g.append(try op("split", ["x": .value(t), "outs": .values([k0, k1]), "sizes": .intOrValues([.literal(2), .value(s0)]), "axis": .int(0)]))
        g.append(try op("if", ["cond": .value(b), "then_chain_idx": .int(1), "else_chain_idx": .int(2)]), origin: "two\nlines")
        g.append(try op("delegate_call", ["backend_id": .string("XnnpackBackend"), "delegate_index": .int(0), "payload_size": .int(384),
                                          "inputs": .values([a, lit, buf]), "outs": .values([])]), origin: "  spaced  ")
        g.append(try op("reshape", ["x": .value(k0), "out": .value(unnamed), "shape": .intOrValues([.value(s0), .literal(-1)])]), block: 1)
        g.append(try op("item_int", ["x": .value(b), "out": .value(s1)]), block: 2)
        g.append(try op("full", ["out": .value(cache2), "shape": .ints([]), "v": .float(2.5), "scalar_type": .dtype(.f32)]), block: 3)
        _ = loose
        g.outputs = [unnamed, cache, k1, unnamed]
        return g
    }

    func testRichGraphRoundTrips() throws {
        let g = try richGraph()
        XCTAssertNoThrow(try Verifier.verify(g))
        for origins in [true, false] {
            let text = IRPrinter.print(g, origins: origins)
            let parsed = try IRParser.parse(text)
            var expected = g
            if !origins { for b in expected.blocks.indices { for n in expected.blocks[b].nodes.indices { expected.blocks[b].nodes[n].origin = nil } } }
            XCTAssertEqual(parsed, expected, text)
            XCTAssertEqual(IRPrinter.print(parsed, origins: origins), text)
        }
        let text = IRPrinter.print(g)
        XCTAssertTrue(text.hasPrefix("graph @\"odd name\\twith tab\"\n"), text)
        XCTAssertTrue(text.contains("\ninputs %1, %0\n"), text)
        XCTAssertTrue(text.contains("\nvalue %9 : f32[4, 64] \"named result\"\n"), text)
        XCTAssertTrue(text.contains("\nblock \"\" {\n"), text)
        XCTAssertTrue(text.contains("\nblock init init {\n"), text)
        XCTAssertTrue(text.contains("# \"two\\nlines\"\n"), text)
        XCTAssertTrue(text.contains("# \"\\\"quoted\\\" origin\"\n"), text)
    }

    // MARK: errors

    private func assertError(_ text: String, _ location: String, _ words: String..., file: StaticString = #filePath, line: UInt = #line) {
        do {
            let g = try IRParser.parse(text)
            XCTFail("expected an error, parsed \(g)", file: file, line: line)
        } catch let error as IRError {
            XCTAssertTrue(error.message.hasPrefix(location + ": "), "\"\(error.message)\" should start with \(location)", file: file, line: line)
            for word in words {
                XCTAssertTrue(error.message.contains(word), "\"\(error.message)\" should mention \(word)", file: file, line: line)
            }
        } catch {
            XCTFail("expected IRError, got \(error)", file: file, line: line)
        }
    }

    func testErrorsNameLineAndColumn() {
        let head = "graph @f\ninput %0 : f32[2]\nblock main {\n"
        // Header and top level.
        assertError("", "line 1, col 1", "graph")
        assertError("graf @f\n", "line 1, col 1", "expected 'graph @name'", "'graf'")
        assertError("graph f\n", "line 1, col 7", "expected '@'")
        assertError("graph @f\nconst %0 : f32[] = buffer(1)\nconst %0 : f32[] = buffer(2)\n", "line 3, col 7", "%0 is already declared at line 2")
        assertError("graph @f\nvalue %0 : f33[2]\n", "line 2, col 12", "unknown dtype 'f33'")
        assertError("graph @f\nvalue %0 : f32[2, ?3]\n", "line 2, col 21", "expected '..'", "found ']'")
        assertError("graph @f\nvalue %0 : f32[2 3]\n", "line 2, col 18", "expected ',' or ']' in the shape")
        assertError("graph @f\nconst %0 : f32[] = bufer(1)\n", "line 2, col 20", "expected buffer(N)", "'bufer'")
        assertError("graph @f\nconst %0 : f32[] = zeros\n", "line 2, col 20", "expected buffer(N)")
        assertError("graph @f\nconst %0 : f32[] = named(\"a\\qb\")\n", "line 2, col 28", "unknown escape '\\q'")
        assertError("graph @f\nconst %0 : f32[] = named(\"ab)\n", "line 2, col 26", "unterminated string")
        assertError("graph @f\nstate %0 : f32[] = zeros name\n", "line 2, col 26", "unexpected 'name'")
        assertError("graph @f\nvalue %1 : f32[]\n", "line 2, col 1", "%0 is never declared")
        assertError("graph @f\nvalue %99999999999 : f32[]\n", "line 2, col 7", "out of range")
        assertError("graph @f\nfrobnicate %0\n", "line 2, col 1", "expected a declaration", "'frobnicate'")
        assertError("graph @f\noutputs %0\n", "line 2, col 9", "%0 is not declared")
        assertError("graph @f\noutputs %0 %1\n", "line 2, col 12", "unexpected '%1'")
        assertError("graph @f\noutputs\noutputs\n", "line 3, col 1", "duplicate 'outputs'")
        assertError("graph @f\ngraph @g\n", "line 2, col 1", "second 'graph'")
        // Blocks and ops.
        assertError(head + "  %1 = add(a: %0 b: %0) : f32[2]\n}\n", "line 4, col 18", "expected ',' or ')' after field 'a'", "'b'")
        assertError(head + "  %1 = add(a: %0, b: %0\n}\n", "line 4, col 24", "expected ')' after field list")
        assertError(head + "  %1 = ad(a: %0, b: %0) : f32[2]\n}\n", "line 4, col 8", "unknown op 'ad'")
        assertError(head + "  %1 = add(a: %0, b: %0, c: 1) : f32[2]\n}\n", "line 4, col 26", "unknown field 'c'")
        assertError(head + "  %1 = add(a: %0, b: 1.5) : f32[2]\n}\n", "line 4, col 19", "add.b", "expected value")
        assertError(head + "  %1 = add(a: %0, a: %0) : f32[2]\n}\n", "line 4, col 19", "duplicate field 'a'")
        assertError(head + "  %1 = add(a: %0, b: %0)\n}\n", "line 4, col 25", "expected ':'")
        assertError(head + "  %1 = add(a: %0, b: %0) : (f32[2], f32[2])\n}\n", "line 4, col 44", "1 result but 2 types")
        assertError(head + "  %1 = add(a: %0, b: %0, out: %1) : f32[2]\n}\n", "line 4, col 26", "remove the field 'out'")
        assertError(head + "  add(a: %0, b: %0, out: %1)\n}\n", "line 4, col 3", "has results", "%1 = add")
        assertError(head + "  %1 = add(a: %0, b: %5) : f32[2]\n}\n", "line 4, col 22", "%5 is not declared")
        assertError(head + "  %1, %2 = add(a: %0, b: %0) : (f32[2], f32[2])\n}\n", "line 4, col 12", "'add' does not take 2 results")
        assertError(head + "  %1 = add(a: %0, b: %0) : f32[3]\n  %1 = add(a: %0, b: %0) : f32[2]\n}\n", "line 5, col 3", "%1 has type f32[3]")
        assertError(head + "  %1 = add(a: %0, b: [1, \"x\"]) : f32[2]\n}\n", "line 4, col 22", "cannot mix int, string")
        assertError(head + "  %1 = add(a: %0, b: %0) : f32[2] extra\n}\n", "line 4, col 35", "unexpected 'extra'")
        assertError(head + "  %1 = add(a: %0, b: %0) : f32[2]\n", "line 3, col 1", "block main is not closed")
        assertError(head + "  input %1 : f32[2]\n}\n", "line 4, col 3", "cannot appear inside a block")
        assertError(head + "}\nblock a init {\n}\nblock b init {\n}\n", "line 7, col 9", "second init block")
        assertError(head + "  %1 = add(a: %0, b: 12ab) : f32[2]\n}\n", "line 4, col 22", "invalid number '12ab'")
        assertError(head + "  %1 = add(a: %0, b: 99999999999999999999) : f32[2]\n}\n", "line 4, col 22", "out of range")
        assertError(head + "  %1 = add(a: %0, b: %0) : f32[2]  # \"unterminated\n}\n", "line 4, col 38", "unterminated string")
        assertError("graph @f\ninput %0 : f32[]\ninput %1 : f32[]\ninputs %1\n", "line 2, col 1", "not on the 'inputs' line")
    }

    // MARK: fuzzing

    /// SplitMix64, so failures reproduce.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Random edits of printed graphs: each must parse or throw `IRError`, and whatever parses must
    /// print and verify (or fail verification) without trapping.
    func testFuzzedTextNeverTraps() throws {
        let seeds = [IRPrinter.print(try richGraph()), IRPrinter.print(try richGraph(), origins: false)]
        let pieces = ["%", "%0", "%99999999999999999999", ",", "(", ")", "[", "]", "{", "}", ":", "=", "#", "\"", "\\", "\\u{",
                      "?", "..", "-", "1e", "inf", "nan", "none", "f32", "out", "outs: [%3]", "init", "\n", " ", "\t", "é", "\u{0}",
                      "block x {\n", "}\n", "outputs %0\n", "inputs %0\n", "# position 99\n", "9223372036854775807", "-9223372036854775809"]
        var rng = SplitMix(state: 0x1234_5678)
        var parsed = 0, rejected = 0
        // MLXC_PARSER_FUZZ=N runs N iterations instead (a longer soak).
        let iterations = ProcessInfo.processInfo.environment["MLXC_PARSER_FUZZ"].flatMap { Int($0) } ?? 4000
        for iteration in 0..<iterations {
            var bytes = Array(seeds[iteration % seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0: if !bytes.isEmpty { bytes.remove(at: at) }
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                case 2: bytes.insert(contentsOf: Array(pieces.randomElement(using: &rng)!.utf8), at: at)
                case 3: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...40, using: &rng)))
                case 4: if !bytes.isEmpty { bytes[at] = UInt8(ascii: ["0", "9", "%", "\"", ",", " ", "a"].randomElement(using: &rng)!) }
                case 5: // duplicate a random slice
                    let end = min(bytes.count, at + Int.random(in: 1...80, using: &rng))
                    bytes.insert(contentsOf: Array(bytes[at..<end]), at: at)
                default: bytes = Array(bytes.prefix(at))
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                let g = try IRParser.parse(text)
                parsed += 1
                _ = IRPrinter.print(g)
                _ = try? Verifier.verify(g)
            } catch is IRError {
                rejected += 1
            } catch {
                XCTFail("iteration \(iteration): expected IRError, got \(error)\n\(text)")
            }
        }
        XCTAssertGreaterThan(rejected, 1000)
        XCTAssertGreaterThan(parsed, 10)
    }
}
