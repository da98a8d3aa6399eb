import Foundation
import XCTest
import MLXCFrontend
import MLXCIR

/// Every method of every fixture imports, prints, and reads back as the same graph: the printed IR
/// is a faithful (and stable) serialization of what the importers build.
final class IRRoundTripTests: XCTestCase {
    private static let fixtures: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// (fixture name, model path, external data paths), sorted by name.
    private func models() throws -> [(name: String, model: String, data: [String])] {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: Self.fixtures.path).sorted()
        return names.compactMap { name in
            let dir = Self.fixtures.appendingPathComponent(name)
            let model = dir.appendingPathComponent("model.pte").path
            guard fm.fileExists(atPath: model) else { return nil }
            let ptd = dir.appendingPathComponent("model.ptd").path
            return (name, model, fm.fileExists(atPath: ptd) ? [ptd] : [])
        }
    }

    private func stripOrigins(_ graph: Graph) -> Graph {
        var g = graph
        for b in g.blocks.indices { for n in g.blocks[b].nodes.indices { g.blocks[b].nodes[n].origin = nil } }
        return g
    }

    func testEveryFixtureMethodRoundTrips() throws {
        let fixtures = try models()
        XCTAssertGreaterThanOrEqual(fixtures.count, 20, "fixtures missing under \(Self.fixtures.path)")
        var methods = 0
        for fixture in fixtures {
            let pte = try PTEFile(path: fixture.model, externalData: fixture.data)
            for plan in pte.program.executionPlans where plan.chains.contains(where: { !$0.instructions.isEmpty }) {
                let label = "\(fixture.name):\(plan.name)"
                let imported = try Importer.importMethod(pte, method: plan.name).graph
                methods += 1
                for origins in [true, false] {
                    let text = IRPrinter.print(imported, origins: origins)
                    let parsed: Graph
                    do {
                        parsed = try IRParser.parse(text)
                    } catch {
                        XCTFail("\(label) (origins: \(origins)): \(error)")
                        continue
                    }
                    let expected = origins ? imported : stripOrigins(imported)
                    if parsed != expected {
                        XCTFail("\(label) (origins: \(origins)): parsed graph differs: \(firstDifference(expected, parsed))")
                    }
                    XCTAssertEqual(IRPrinter.print(parsed, origins: origins), text, "\(label): reprinting changed the text")
                    XCTAssertNoThrow(try Verifier.verify(parsed), label)
                }
            }
        }
        XCTAssertGreaterThanOrEqual(methods, fixtures.count)
    }

    /// Edits of real printed graphs (real ops, so `Op(name:fields:)` errors too) parse or throw
    /// `IRError`; never trap.
    func testFuzzedFixtureTextNeverTraps() throws {
        var texts: [String] = []
        for fixture in try models() where ["llama_plain", "moe_mlx_4bit", "gemma_sliding_mlx_bf16"].contains(fixture.name) {
            let pte = try PTEFile(path: fixture.model, externalData: fixture.data)
            texts.append(IRPrinter.print(try Importer.importMethod(pte).graph))
        }
        XCTAssertFalse(texts.isEmpty)
        var state: UInt64 = 0x9E37_79B9
        func random(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(max(n, 1)))
        }
        let pieces = ["%", "%1", ",", "(", ")", "[", "]", ":", "=", "\"", "none", "-1", "1.5", "f32", "out: %3", "outs: [%1]", "\n", "}\n"]
        var rejected = 0
        for iteration in 0..<300 {
            var bytes = Array(texts[iteration % texts.count].utf8)
            for _ in 0...random(3) {
                let at = random(bytes.count)
                switch random(4) {
                case 0: if at < bytes.count { bytes.remove(at: at) }
                case 1: bytes.insert(contentsOf: Array(pieces[random(pieces.count)].utf8), at: at)
                case 2: bytes.removeSubrange(at..<min(bytes.count, at + 1 + random(30)))
                default: if at < bytes.count { bytes[at] = UInt8(truncatingIfNeeded: random(128)) }
                }
            }
            do {
                let g = try IRParser.parse(String(decoding: bytes, as: UTF8.self))
                _ = IRPrinter.print(g)
                _ = try? Verifier.verify(g)
            } catch is IRError {
                rejected += 1
            } catch {
                XCTFail("iteration \(iteration): expected IRError, got \(error)")
            }
        }
        XCTAssertGreaterThan(rejected, 50)
    }

    /// A short description of where two graphs first differ, for failure messages.
    private func firstDifference(_ a: Graph, _ b: Graph) -> String {
        if a.name != b.name { return "name \(a.name) vs \(b.name)" }
        if a.values.count != b.values.count { return "\(a.values.count) vs \(b.values.count) values" }
        for i in a.values.indices where a.values[i] != b.values[i] { return "%\(i): \(a.values[i]) vs \(b.values[i])" }
        if a.inputs != b.inputs { return "inputs \(a.inputs) vs \(b.inputs)" }
        if a.outputs != b.outputs { return "outputs \(a.outputs) vs \(b.outputs)" }
        if a.initBlock != b.initBlock { return "init block \(String(describing: a.initBlock)) vs \(String(describing: b.initBlock))" }
        if a.blocks.count != b.blocks.count { return "\(a.blocks.count) vs \(b.blocks.count) blocks" }
        for (x, y) in zip(a.blocks, b.blocks) where x != y {
            if x.name != y.name || x.nodes.count != y.nodes.count { return "block \(x.name) (\(x.nodes.count) nodes) vs \(y.name) (\(y.nodes.count) nodes)" }
            for (n, (p, q)) in zip(x.nodes, y.nodes).enumerated() where p != q { return "block \(x.name) node \(n): \(p) vs \(q)" }
        }
        return "?"
    }
}
