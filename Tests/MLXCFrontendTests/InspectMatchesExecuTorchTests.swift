import XCTest
@testable import MLXCFrontend
import MLXCIR

/// `mlxc inspect`'s numbers must equal what ExecuTorch's own deserializer reports for the same file
/// (each fixture's `meta.json` → `reference`, written by tools/python/pte_reference.py).
final class InspectMatchesExecuTorchTests: XCTestCase {
    func testEveryFixtureMatchesTheExecuTorchDeserializer() throws {
        let fixtures = Fixtures.all
        XCTAssertGreaterThanOrEqual(fixtures.count, 10, "fixtures missing under \(Fixtures.root.path)")
        for fixture in fixtures {
            let pte = try PTEFile(path: fixture.model, externalData: fixture.externalData)
            let summary = try ProgramSummary(pte)
            guard let reference = fixture.meta["reference"] as? [String: Any] else {
                XCTFail("\(fixture.name): meta.json has no reference"); continue
            }
            try compare(fixture.name, summary, pte, reference)
        }
        // Guard against a test that silently compares nothing.
        XCTAssertGreaterThanOrEqual(comparedMLXDelegates, 8)
        XCTAssertGreaterThanOrEqual(comparedOperatorTables, 4)
    }

    var comparedMLXDelegates = 0
    var comparedOperatorTables = 0

    func compare(_ name: String, _ s: ProgramSummary, _ pte: PTEFile, _ r: [String: Any]) throws {
        XCTAssertEqual(s.fileBytes, r["file_size"] as? Int, name)
        XCTAssertEqual(s.segments.count, r["num_segments"] as? Int, name)
        XCTAssertEqual(s.segments.map { Int($0[1]) }, r["segment_sizes"] as? [Int], name)
        XCTAssertEqual(s.namedData, r["num_named_data"] as? Int, name)
        XCTAssertEqual(s.mutableDataSegments, r["num_mutable_data_segments"] as? Int, name)
        if let header = r["extended_header"] as? [String: Any] {
            XCTAssertEqual(s.programBytes, header["program_size"] as? Int, name)
            XCTAssertEqual(s.segmentBase, header["segment_base_offset"] as? Int, name)
        }
        guard let methods = r["methods"] as? [String: Any] else { return XCTFail("\(name): no methods") }
        XCTAssertEqual(Set(s.methods.map(\.name)), Set(methods.keys), name)
        for m in s.methods {
            guard let rm = methods[m.name] as? [String: Any] else { continue }
            let where_ = "\(name) method \(m.name)"
            XCTAssertEqual(m.values, rm["num_values"] as? Int, where_)
            XCTAssertEqual(m.instructions, rm["instructions_per_chain"] as? [Int], where_)
            XCTAssertEqual(m.operators, (rm["operators"] as? [String: Int]) ?? [:], where_)
            if !m.operators.isEmpty { comparedOperatorTables += 1 }
            let inputs = (rm["inputs"] as? [[String: Any]]) ?? []
            XCTAssertEqual(m.inputs.map(\.value), inputs.compactMap { $0["index"] as? Int }, where_)
            for (mine, theirs) in zip(m.inputs + m.outputs, inputs + ((rm["outputs"] as? [[String: Any]]) ?? [])) {
                XCTAssertEqual(mine.value, theirs["index"] as? Int, where_)
                if let dtype = theirs["dtype"] as? String {
                    XCTAssertEqual(mine.dtype?.uppercased(), dtype.replacingOccurrences(of: "_", with: ""), where_)
                    XCTAssertEqual(mine.sizes, theirs["sizes"] as? [Int], where_)
                }
            }
            let delegates = (rm["delegates"] as? [[String: Any]]) ?? []
            XCTAssertEqual(m.delegates.count, delegates.count, where_)
            for (d, rd) in zip(m.delegates, delegates) {
                XCTAssertEqual(d.id, rd["id"] as? String, where_)
                XCTAssertEqual(d.payloadBytes, rd["payload_size"] as? Int, where_)
                XCTAssertEqual(d.calls, rd["num_calls"] as? Int, where_)
                if let mlx = rd["mlx"] as? [String: Any] {
                    comparedMLXDelegates += 1
                    XCTAssertEqual(d.mlxMainChainNodes, mlx["main_chain_nodes"] as? [String: Int], "\(where_) MLX main chain")
                    XCTAssertEqual(d.mlxAllNodes, mlx["all_chains_nodes"] as? [String: Int], "\(where_) MLX all chains")
                    XCTAssertEqual(d.mlxInstructions, mlx["instructions_per_chain"] as? [Int], where_)
                    XCTAssertEqual(d.mlxConstants, mlx["num_constant_tensors"] as? Int, where_)
                } else {
                    XCTAssertNil(d.mlxAllNodes, where_)
                }
            }
        }
    }

    /// Every MLX instruction of every chain becomes exactly one IR node, and the imported graph verifies.
    func testImportKeepsEveryInstruction() throws {
        for fixture in Fixtures.all {
            let pte = try PTEFile(path: fixture.model, externalData: fixture.externalData)
            let summary = try ProgramSummary(pte)
            for method in summary.methods where method.instructions.reduce(0, +) > 0 {
                let graph = try Importer.importMethod(pte, method: method.name).graph
                try Verifier.verify(graph)
                // Branch merges (copies that join an `if`'s two definitions of a slot) are the importer's own.
                let nodes = graph.blocks.reduce(0) { $0 + $1.nodes.filter { !($0.origin ?? "").contains("(merge of slot") }.count }
                let mlxInstructions = method.delegates.compactMap(\.mlxInstructions).joined().reduce(0, +)
                if method.operators.isEmpty, method.delegates.allSatisfy({ $0.id == MLXPayload.backendID }) {
                    XCTAssertEqual(nodes, mlxInstructions, "\(fixture.name): IR nodes vs MLX instructions")
                } else {
                    XCTAssertGreaterThanOrEqual(nodes, method.operators.values.reduce(0, +) - (method.operators["aten::copy_"] ?? 0) / 2,
                                                fixture.name)
                }
                XCTAssertEqual(graph.inputs.count, method.inputs.count, fixture.name)
                XCTAssertEqual(graph.outputs.count, method.outputs.count, fixture.name)
            }
        }
    }
}
