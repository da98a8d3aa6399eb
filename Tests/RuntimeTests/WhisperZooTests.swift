import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// Whisper's programs as ExecuTorch's scripts write them (tools/zoo/whisper_entries.py: export_whisper's encoder,
/// cross_kv and decoder programs in fp32, bf16 and fp32 with 4-bit linears; optimum-executorch's asr task, one
/// program with methods encoder / text_decoder), committed with eager PyTorch's calls under Fixtures/zoo/whisper_*:
/// a fixed mel → the encoder → the cross-KV program → the decoder fed Whisper's prompt and then eager's greedy tokens,
/// one call each (the decoder's KV cache carried between calls). Every call runs on the compiled engine (default
/// pipeline) and every output matches eager within the repo's tolerance (fp32 and 4-bit weights 1e-4 × max |expected|,
/// bf16 2.5e-2); the decoder's argmax after each call is eager's greedy token (a step whose eager top-2 margin is
/// within the tolerance is a tie); no op on the reference executor, no call falling back, and one rope_attention per
/// decoder layer (self-attention fused with its KV-cache writes; two in optimum's portable program, whose cross K/V
/// live in a cache too). The check: WhisperProgramsHarness.swift.
final class WhisperZooTests: XCTestCase {
    static let root = ZooTests.root

    struct Entry: Decodable { var name: String; var dtype: String; var command: String; var layers: Int; var decoder_rope_attention: Int }

    static var entries: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/whisper_reference.json").path) }
    }

    func testWhisperFixturesArePresent() {
        XCTAssertGreaterThanOrEqual(Self.entries.count, 3, "whisper zoo fixtures missing under \(Self.root.path)")
    }

    func testEveryProgramMatchesEagerFullyFused() throws {
        for name in Self.entries {
            let dir = Self.root.appendingPathComponent(name)
            let entry = try JSONDecoder().decode(Entry.self, from: Data(contentsOf: dir.appendingPathComponent("entry.json")))
            try assertWhisperProgramsMatchEager(dir, name: name, tolerance: entry.dtype == "bf16" ? 2.5e-2 : 1e-4,
                                                decoderAttentionKernels: entry.decoder_rope_attention)
        }
    }
}
