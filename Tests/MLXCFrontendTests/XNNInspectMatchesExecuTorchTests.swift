import XCTest
@testable import MLXCFrontend

/// `mlxc inspect`'s XNNPACK summaries must equal what ExecuTorch's own deserialization reports
/// (`XNNHeader.from_bytes` + flatc with the wheel's schema.fbs): each XNNPACK fixture's
/// `xnnpack_reference.json`, written by tools/python/xnn_reference.py.
final class XNNInspectMatchesExecuTorchTests: XCTestCase {
    func testEveryXNNPACKDelegateMatchesExecuTorch() throws {
        var compared = 0
        for fixture in Fixtures.all + Fixtures.zoo {
            let path = fixture.directory.appendingPathComponent("xnnpack_reference.json").path
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let pte = try PTEFile(path: fixture.model)
            let summary = try ProgramSummary(pte)
            for method in summary.methods {
                let theirs = try XCTUnwrap(reference[method.name] as? [Any], "\(fixture.name) \(method.name)")
                XCTAssertEqual(method.delegates.count, theirs.count, fixture.name)
                for (d, r) in zip(method.delegates, theirs) {
                    let where_ = "\(fixture.name) \(method.name) delegate \(d.index)"
                    guard let r = r as? [String: Any] else { XCTAssertNil(d.xnnNodes, where_); continue }
                    XCTAssertEqual(d.xnnNodes, r["nodes"] as? [String: Int], where_)
                    XCTAssertEqual(d.xnnValues, r["values"] as? [String: Int], where_)
                    XCTAssertEqual(d.xnnInputIDs, r["input_ids"] as? [Int], where_)
                    XCTAssertEqual(d.xnnOutputIDs, r["output_ids"] as? [Int], where_)
                    XCTAssertEqual(d.xnnConstants, r["num_constant_data"] as? Int, where_)
                    // The header and the parts ExecuTorch's histogram does not cover.
                    let payload = try XNNPayload(try pte.delegatePayload(pte.program.executionPlans.first { $0.name == method.name }!.delegates[d.index], where_),
                                                 space: where_, fileOffset: 0)
                    XCTAssertEqual(payload.flatbufferOffset, r["flatbuffer_offset"] as? Int, where_)
                    XCTAssertEqual(payload.flatbufferSize, r["flatbuffer_size"] as? Int, where_)
                    XCTAssertEqual(payload.constantDataOffset, r["constant_data_offset"] as? Int, where_)
                    XCTAssertEqual(payload.constantDataSize, r["constant_data_size"] as? Int, where_)
                    XCTAssertEqual(payload.graph.version, r["version"] as? String, where_)
                    XCTAssertEqual(payload.graph.numExterns, r["num_externs"] as? Int, where_)
                    let quant = payload.graph.values.compactMap(\.quant).reduce(into: [String: Int]()) { $0[$1.name, default: 0] += 1 }
                    XCTAssertEqual(quant, r["quant_params"] as? [String: Int], where_)
                    let dtypes = payload.graph.values.reduce(into: [String: Int]()) { $0[$1.datatype.name, default: 0] += 1 }
                    XCTAssertEqual(dtypes, r["datatypes"] as? [String: Int], where_)
                    XCTAssertEqual(payload.graph.constantData.filter { $0.namedKey != nil }.count, r["num_named_constants"] as? Int, where_)
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 20, "XNNPACK fixtures with xnnpack_reference.json missing")
    }
}
