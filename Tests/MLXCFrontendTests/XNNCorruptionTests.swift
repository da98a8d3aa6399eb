import Foundation
import XCTest
@testable import MLXCFrontend
import MLXCIR

/// Corrupt XNNPACK payloads: truncated, bytes flipped, and targeted edits (unknown node tag, undefined
/// value id, bad magic, constant out of range). Each must give one error naming the node or value, its
/// index and the field — never a crash.
final class XNNCorruptionTests: XCTestCase {
    var fixture: Fixtures.Fixture { Fixtures.all.first { $0.name == "llama_xnnpack_fp32" }! }

    /// (file bytes, [(payload file offset, payload size)]) of every XNNPACK delegate.
    func payloads() throws -> ([UInt8], [(Int, Int)]) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture.model)))
        let pte = try PTEFile(file: MappedFile(bytes: bytes))
        let ranges = try pte.program.executionPlans[0].delegates.map { d -> (Int, Int) in
            let p = try pte.delegatePayload(d, "test")
            return (pte.fileOffset(of: p), p.count)
        }
        return (bytes, ranges)
    }

    /// Summarizes and imports; returns the error text, or nil when the variant reads.
    func run(_ bytes: [UInt8]) -> String? {
        do {
            let pte = try PTEFile(file: MappedFile(bytes: bytes, name: "variant"))
            _ = try ProgramSummary(pte)
            let graph = try Importer.importMethod(pte).graph
            try Verifier.verify(graph)
            return nil
        } catch {
            return String(describing: error)
        }
    }

    func testFlippedAndTruncatedPayloadsFailCleanly() throws {
        let (bytes, ranges) = try payloads()
        var rng = CorruptionTests.SplitMix(state: 13)
        var errors = 0
        for (start, size) in ranges.prefix(6) {
            for _ in 0..<60 {
                var b = bytes
                let at = start + Int.random(in: 0..<size, using: &rng)
                b[at] = UInt8.random(in: 0...255, using: &rng)
                if let e = run(b) { XCTAssertFalse(e.isEmpty); errors += 1 }
            }
            // A payload cut short: the delegate's segment keeps its size, the tail becomes zeros.
            for cut in stride(from: 0, to: size, by: max(size / 16, 1)) {
                var b = bytes
                for i in (start + cut)..<(start + size) { b[i] = 0 }
                if let e = run(b) { XCTAssertFalse(e.isEmpty); errors += 1 }
            }
        }
        XCTAssertGreaterThan(errors, 50)
    }

    /// Positions inside one payload's XNNGraph, found through the reader's own tables. The table reads
    /// the copy's memory after this returns, so its view owns the copy (AddressSanitizer: with the
    /// unowned `view` it read freed memory).
    func graphTable(_ bytes: [UInt8], _ range: (Int, Int)) throws -> (FBTable, Int) {
        let file = try MappedFile(bytes: bytes)
        let view = try file.ownedView.slice(range.0, range.1, "payload")
        let p = try XNNPayload(view, space: "test", fileOffset: range.0)
        let fb = FlatBuffer(try view.slice(p.flatbufferOffset, p.flatbufferSize, "XNNGraph"), fileOffset: range.0 + p.flatbufferOffset)
        return (try fb.root("XNNGraph"), range.0 + p.flatbufferOffset)
    }

    func testUnknownNodeTagNamesTheNode() throws {
        var (bytes, ranges) = try payloads()
        let (g, base) = try graphTable(bytes, ranges[1])
        let node = try XCTUnwrap(g.vector(1, "xnodes", elementSize: 4)).table(0, "XNode")
        bytes[base + node.positionOf(0)] = 200
        let e = try XCTUnwrap(run(bytes))
        XCTAssertTrue(e.contains("xnodes[0]") && e.contains("unknown XNodeUnion tag 200") && e.contains("delegates[1]"), e)
    }

    func testUndefinedValueIDNamesTheField() throws {
        var (bytes, ranges) = try payloads()
        let (g, base) = try graphTable(bytes, ranges[1])
        let nodes = try XCTUnwrap(g.vector(1, "xnodes", elementSize: 4))
        // The first two-input node: overwrite its input1_id.
        for i in 0..<nodes.count {
            let x = try nodes.table(i, "XNode")
            guard try x.scalar(0, "t", default: UInt8(0)) == 1 || x.scalar(0, "t", default: UInt8(0)) == 15 else { continue }
            let n = try XCTUnwrap(x.table(1, "u", "_XNNNode2x1"))
            guard n.has(0) else { continue }   // id 0 is the default, so not stored
            let at = base + n.positionOf(0)
            bytes[at] = 0x0F; bytes[at + 1] = 0x27; bytes[at + 2] = 0; bytes[at + 3] = 0   // 9999
            let e = try XCTUnwrap(run(bytes))
            XCTAssertTrue(e.contains("xnodes[\(i)]") && e.contains("input1_id") && e.contains("value id 9999 is not defined"), e)
            return
        }
        XCTFail("no two-input node")
    }

    func testBadMagicAndHeaderOffsets() throws {
        let (bytes, ranges) = try payloads()
        var b = bytes
        b[ranges[0].0 + 5] = UInt8(ascii: "Z")
        XCTAssertTrue(run(b)?.contains("expected \"XH00\"") ?? false, run(b) ?? "read")
        b = bytes
        b[ranges[0].0 + 17] = 0x7F   // flatbuffer size far past the payload
        XCTAssertTrue(run(b)?.contains("flatbuffer [") ?? false, run(b) ?? "read")
        b = bytes
        b[ranges[0].0 + 29] = 0x01   // constant data size past the payload
        XCTAssertTrue(run(b)?.contains("constant data [") ?? false, run(b) ?? "read")
    }
}
