import Foundation
import XCTest
@testable import MLXCFrontend
import MLXCIR

/// Truncates and mutates every fixture thousands of ways. Each variant must end in a clean read
/// or a thrown error that says what and where — never a crash or a hang.
final class CorruptionTests: XCTestCase {
    /// Deterministic PRNG (SplitMix64) so failures reproduce.
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

    struct Tally {
        var reads = 0
        var errors = 0
        var slowest: (Double, String) = (0, "")
        var readLabels: [String] = []
        var total: Int { reads + errors }
    }

    /// Runs the whole front end on one variant: decode, summarize, import, verify, print.
    func exercise(_ bytes: [UInt8], _ externalData: [PTDFile], _ label: String, _ tally: inout Tally) {
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            let pte = try PTEFile(file: MappedFile(bytes: bytes, name: label), externalData: externalData)
            let summary = try ProgramSummary(pte)
            for method in summary.methods where method.instructions.reduce(0, +) > 0 {
                let graph = try Importer.importMethod(pte, method: method.name).graph
                try Verifier.verify(graph)
                _ = IRPrinter.print(graph)
            }
            tally.reads += 1
            tally.readLabels.append(label)
        } catch let error as FormatError {
            XCTAssertFalse(error.context.isEmpty, "\(label): \(error)")
            XCTAssertTrue(error.description.contains("at byte"), "\(label): \(error)")
            tally.errors += 1
        } catch {
            XCTAssertFalse(String(describing: error).isEmpty, label)
            tally.errors += 1
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if seconds > tally.slowest.0 { tally.slowest = (seconds, label) }
    }

    func load(_ fixture: Fixtures.Fixture) throws -> ([UInt8], [PTDFile], Int) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture.model)))
        let ptds = try fixture.externalData.map { try PTDFile(path: $0) }
        let programSize = Int(try PTEFile(file: MappedFile(bytes: bytes)).header?.programSize ?? UInt64(bytes.count))
        return (bytes, ptds, programSize)
    }

    func testTruncatedFixturesFailCleanly() throws {
        var tally = Tally()
        for fixture in Fixtures.all {
            let (bytes, ptds, programSize) = try load(fixture)
            // Every length through the headers and root tables, then points across the flatbuffer and segments.
            var lengths = Set(0..<min(bytes.count, 96))
            for k in 0..<48 { lengths.insert(programSize * k / 48) }
            for k in 0..<24 { lengths.insert(bytes.count * k / 24) }
            lengths.insert(bytes.count - 1)
            let hasHeader = programSize != bytes.count
            for n in lengths.sorted() where n < bytes.count {
                let before = tally.reads
                exercise(Array(bytes[..<n]), ptds, "\(fixture.name) truncated to \(n)", &tally)
                // Only a file without the eh00 header (nothing records its length) may lose trailing
                // padding and still read; every other truncation must be reported.
                if tally.reads > before {
                    XCTAssertFalse(hasHeader, "\(fixture.name) truncated to \(n) read without error")
                    XCTAssertTrue(bytes[n...].allSatisfy { $0 == 0 }, "\(fixture.name) lost non-zero bytes and still read")
                }
            }
        }
        XCTAssertGreaterThan(tally.total, 2000)
        XCTAssertLessThan(tally.reads, 5, "truncated programs read without error: \(tally.readLabels)")
        XCTAssertLessThan(tally.slowest.0, 2, "slowest variant: \(tally.slowest.1)")
    }

    func testMutatedFixturesReadOrFailCleanly() throws {
        var rng = SplitMix(state: 0x6D6C_7863)
        var tally = Tally()
        for fixture in Fixtures.all {
            let (bytes, ptds, programSize) = try load(fixture)
            for variant in 0..<160 {
                var mutated = bytes
                let edits = 1 + Int(rng.next() % 4)
                var label = "\(fixture.name) variant \(variant):"
                for _ in 0..<edits {
                    // Mostly inside the program flatbuffer (tables, vtables, offsets), sometimes in segments.
                    let region = rng.next() % 10 < 8 ? programSize : bytes.count
                    let at = Int(rng.next() % UInt64(max(region, 1)))
                    let value: UInt8
                    switch rng.next() % 4 {
                    case 0: value = mutated[at] ^ UInt8(1 << (rng.next() % 8))
                    case 1: value = 0xFF
                    case 2: value = 0
                    default: value = UInt8(truncatingIfNeeded: rng.next())
                    }
                    mutated[at] = value
                    label += " [\(at)]=\(value)"
                }
                exercise(mutated, ptds, label, &tally)
            }
        }
        XCTAssertGreaterThan(tally.total, 2000)
        XCTAssertGreaterThan(tally.errors, tally.total / 10, "mutations should mostly be caught")
        XCTAssertLessThan(tally.slowest.0, 2, "slowest variant: \(tally.slowest.1)")
    }

    /// Mutations aimed at the MLX payloads (header, flatbuffer, node tables) of MLX-delegated fixtures.
    func testMutatedMLXPayloadsReadOrFailCleanly() throws {
        var rng = SplitMix(state: 0x4D4C_5830)
        var tally = Tally()
        for fixture in Fixtures.all where fixture.name.contains("mlx") {
            let (bytes, ptds, _) = try load(fixture)
            let pte = try PTEFile(file: MappedFile(bytes: bytes), externalData: ptds)
            guard let plan = pte.program.executionPlans.first(where: { !$0.delegates.isEmpty }),
                  let delegate = plan.delegates.first else { continue }
            let payload = try pte.delegatePayload(delegate, "delegate 0")
            let start = pte.fileOffset(of: payload)
            for variant in 0..<120 {
                var mutated = bytes
                let at = start + (variant < 24 ? variant : Int(rng.next() % UInt64(payload.count)))
                mutated[at] = variant < 24 ? mutated[at] &+ 1 : UInt8(truncatingIfNeeded: rng.next())
                exercise(mutated, ptds, "\(fixture.name) payload byte \(at - start) = \(mutated[at])", &tally)
            }
        }
        XCTAssertGreaterThan(tally.total, 1000)
        XCTAssertGreaterThan(tally.errors, 0)
    }

    func testUnknownUnionTagsAndDTypesAreNamed() throws {
        guard let fixture = Fixtures.all.first(where: { $0.name == "llama_mlx_fp32" }) else { return XCTFail("fixture missing") }
        let (bytes, ptds, _) = try load(fixture)
        let pte = try PTEFile(file: MappedFile(bytes: bytes), externalData: ptds)
        let payload = try pte.delegatePayload(pte.program.executionPlans[0].delegates[0], "delegate 0")
        let mlx = try MLXPayload(payload, space: "", fileOffset: pte.fileOffset(of: payload))
        // The union tag byte of the first instruction's node: rewrite it to an unknown type.
        let first = mlx.graph.instructionChains[0].instructions[0]
        let instruction = try mlx.flatbuffer.table(at: first.position, "Instruction")
        let tagPosition = mlx.flatbuffer.fileOffset + (try XCTUnwrap(try instruction.fieldPosition(0, size: 1, "op_type")))
        var mutated = bytes
        mutated[tagPosition] = 250
        let broken = try PTEFile(file: MappedFile(bytes: mutated), externalData: ptds)
        XCTAssertThrowsError(try ProgramSummary(broken)) { error in
            XCTAssertTrue("\(error)".contains("unknown MLX node type tag 250"), "\(error)")
            XCTAssertTrue("\(error)".contains("at byte"), "\(error)")
        }
        // Wrong magic.
        var wrongMagic = bytes
        wrongMagic[4] = UInt8(ascii: "X")
        XCTAssertThrowsError(try PTEFile(file: MappedFile(bytes: wrongMagic))) { error in
            XCTAssertEqual("\(error)", "file identifier at byte 4: expected \"ET12\", found 0x58543132: not an ExecuTorch program")
        }
    }
}
