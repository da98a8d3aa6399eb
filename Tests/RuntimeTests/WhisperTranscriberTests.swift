import Foundation
import XCTest
@testable import MLXCRuntime

/// Whisper decoding on the programs ExecuTorch's `export_whisper` writes (a tiny seeded random checkpoint,
/// Tests/Fixtures/speech/whisper_tiny_mlx_fp32, built by tools/speech/make-whisper-fixture) against
/// transformers' own `generate` with the same options: every segment's token ids equal, start and end
/// times equal, the detected language equal. Cases: language given or detected, transcribe or translate,
/// timestamps on or off, the LibriVox clip repeated to 36 s for sequential long-form decoding, and that with
/// a no-speech threshold between its two windows' no-speech probabilities (the second dropped as silence).
/// The programs run compiled (the whole default pipeline); features come from mlxc's own front end.
/// The same checkpoint exported by optimum-executorch (`--task automatic-speech-recognition --recipe xnnpack`: one
/// model.pte, methods encoder and text_decoder, the decoder projecting the cross K/V itself) is held to the same
/// reference (Tests/Fixtures/speech/whisper_tiny_xnnpack_fp32, also built by make-whisper-fixture).
final class WhisperTranscriberTests: XCTestCase {
    static let folder = WAVReaderTests.fixtures.appendingPathComponent("whisper_tiny_mlx_fp32").path
    static let optimumFolder = WAVReaderTests.fixtures.appendingPathComponent("whisper_tiny_xnnpack_fp32").path

    static func load(_ folder: String = folder) throws -> WhisperTranscriber {
        let files = try WhisperFiles(folder: folder)
        return try WhisperTranscriber(files: files) { path, method in
            let loaded = try ProgramLoader.load(path, method: method, engine: .jit, mlxcVersion: "test")
            return (loaded.executor, loaded.graph)
        }
    }

    func testGreedyTokensMatchTransformersGenerate() throws {
        try checkAgainstTransformersGenerate(try Self.load())
    }

    func testOptimumXNNPACKProgramMatchesTransformersGenerate() throws {
        let transcriber = try Self.load(Self.optimumFolder)
        XCTAssertNil(transcriber.programs.crossKVProgram)
        XCTAssertEqual(transcriber.programs.layers, 2)
        // The XNNPACK payload leaves its attention temporaries untyped; fuse-attention-pattern reads inferred types, so
        // the encoder's 1500 × 1500 self-attention is one sdpa (no score matrix in memory) and the decoder's
        // cross-attention too.
        let encoder = try XCTUnwrap(transcriber.programs.encoder as? JITProgram)
        let decoder = try XCTUnwrap(transcriber.programs.decoder as? JITProgram)
        XCTAssertTrue(encoder.kernelNames.contains { $0.hasPrefix("sdpa") }, "\(encoder.kernelNames)")
        XCTAssertFalse(encoder.kernelNames.contains { $0.hasPrefix("softmax") }, "\(encoder.kernelNames)")
        XCTAssertFalse(decoder.kernelNames.contains { $0.hasPrefix("softmax") }, "\(decoder.kernelNames)")
        // Self-attention fused with its cache writes; the cross-attention an sdpa over caches its own write step
        // rewrites whole (left so on purpose: reuse skips the write) — neither remarked as attention left unfused.
        XCTAssertEqual(decoder.fusionStats.fusions.ropeAttention, 2)
        XCTAssertTrue(decoder.kernelNames.contains { $0.hasPrefix("sdpa") }, "\(decoder.kernelNames)")
        XCTAssertEqual(encoder.fusionRemarks.filter { $0.contains("sdpa") }, [])
        XCTAssertEqual(decoder.fusionRemarks.filter { $0.contains("sdpa") }, [])
        // The decoder projects the cross-attention K/V from the held encoder states on every call as traced; with
        // the states unchanged within a window those steps are skipped (CrossCallReuse), and the tokens still match.
        XCTAssertGreaterThan(decoder.reusableStepCount, 0)
        try checkAgainstTransformersGenerate(transcriber)
        XCTAssertGreaterThan(decoder.reusedStepRuns, 0)
    }

    func checkAgainstTransformersGenerate(_ transcriber: WhisperTranscriber) throws {
        let clip = try WAVReader.read(path: WAVReaderTests.fixtures.appendingPathComponent("librivox-0880.wav").path)
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.folder).appendingPathComponent("reference.json"))
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(reference["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 6)
        for c in cases {
            let name = c["name"] as! String
            var options = WhisperTranscriber.Options()
            options.language = c["language"] as? String
            options.task = WhisperTranscriber.Task(rawValue: c["task"] as! String)!
            options.timestamps = c["timestamps"] as! Bool
            options.maxNewTokens = c["max_new_tokens"] as? Int
            options.noSpeechThreshold = c["no_speech_threshold"] as? Double
            if let t = c["logprob_threshold"] as? Double { options.logProbThreshold = t }
            let samples = Array([[Float]](repeating: clip.samples, count: c["repeats"] as! Int).joined())
            let (segments, windows) = try transcriber.transcribe(samples, options: options)
            let expected = c["segments"] as! [[String: Any]]
            XCTAssertEqual(segments.count, expected.count, "\(name): segments")
            for (i, (mine, theirs)) in zip(segments, expected).enumerated() {
                XCTAssertEqual(mine.tokens, theirs["tokens"] as! [Int], "\(name): segment \(i) tokens")
                XCTAssertEqual(mine.start, theirs["start"] as! Double, accuracy: 1e-6, "\(name): segment \(i) start")
                XCTAssertEqual(mine.end, theirs["end"] as! Double, accuracy: 1e-6, "\(name): segment \(i) end")
            }
            if let detected = c["detected_language"] as? String {
                XCTAssertEqual(windows.first?.language, detected, "\(name): detected language")
            }
            // Long-form: segments never go back in time.
            for (a, b) in zip(segments, segments.dropFirst()) where c["repeats"] as! Int > 1 {
                XCTAssertLessThanOrEqual(a.start, b.start, "\(name): segment starts decrease")
            }
        }
    }

    func testTheTokenizerKnowsWhispersSpecialTokens() throws {
        let tokenizer = try Tokenizer(jsonPath: Self.folder + "/tokenizer.json")
        let generation = try WhisperFiles.jsonObject(Self.folder + "/generation_config.json")
        let v = try WhisperVocabulary(tokenizer: tokenizer, generationConfig: generation, config: nil, folder: Self.folder)
        XCTAssertEqual(v.languages.count, 100)
        XCTAssertEqual(v.languageCode(try XCTUnwrap(v.languageID("en"))), "en")
        XCTAssertEqual(tokenizer.tokenID("<|0.00|>"), v.timestampBegin)
        XCTAssertEqual(tokenizer.tokenID("<|30.00|>"), v.timestampBegin + 1500)
        XCTAssertEqual(v.seconds(v.timestampBegin + 150), 3.0, accuracy: 1e-12)
        // Special tokens written in text are single tokens; text round-trips.
        XCTAssertEqual(tokenizer.encode("<|startoftranscript|><|en|><|transcribe|>", addSpecialTokens: false),
                       [v.startOfTranscript, v.languageID("en")!, v.transcribe!])
        let ids = tokenizer.encode(" he was not an ill disposed young man", addSpecialTokens: false)
        XCTAssertEqual(tokenizer.decode(ids), " he was not an ill disposed young man")
        XCTAssertEqual(tokenizer.decode([v.startOfTranscript] + ids + [v.endOfText], skipSpecialTokens: true), " he was not an ill disposed young man")
    }

    /// The timestamp rules on hand-made logits (each rule alone, as transformers' processor applies it).
    func testTimestampRules() throws {
        let tokenizer = try Tokenizer(jsonPath: Self.folder + "/tokenizer.json")
        var v = try WhisperVocabulary(tokenizer: tokenizer, generationConfig: nil, config: nil, folder: Self.folder)
        v.suppressTokens = []
        v.beginSuppressTokens = []
        v.maxInitialTimestampIndex = 50
        let rules = WhisperLogitRules(vocabulary: v, timestamps: true)
        let tb = v.timestampBegin, n = v.vocabularySize
        func masked(_ generated: [Int], _ logits: [Float]) -> (allowed: (Int) -> Bool, row: [Float]) {
            var row = logits
            rules.apply(&row, generated: generated)
            return ({ row[$0] > -.infinity }, row)
        }
        var flatText = [Float](repeating: -10, count: n)
        for i in 0..<tb { flatText[i] = 5 }  // text far likelier than all timestamps together
        // First token: a timestamp ≤ 1.00 s, whatever the text logits say.
        let first = masked([], flatText)
        XCTAssertFalse(first.allowed(10))
        XCTAssertTrue(first.allowed(tb + 50))
        XCTAssertFalse(first.allowed(tb + 51))
        // After a lone timestamp: text may come (it is far likelier), or a timestamp ≥ it; not earlier ones.
        let afterOne = masked([tb + 5, 10, tb + 8], flatText)
        XCTAssertFalse(afterOne.allowed(10))  // a lone timestamp closes a pair: no text
        XCTAssertTrue(afterOne.allowed(tb + 8))
        XCTAssertFalse(afterOne.allowed(tb + 7))
        XCTAssertTrue(afterOne.allowed(v.endOfText))
        // After a pair: no timestamp; text only.
        let afterPair = masked([tb + 5, 10, tb + 8, tb + 8], flatText)
        XCTAssertFalse(afterPair.allowed(tb + 9))
        XCTAssertTrue(afterPair.allowed(10))
        // Timestamp mass beating the best text token forces a timestamp.
        var stampsHeavy = [Float](repeating: 0, count: n)
        stampsHeavy[10] = 3
        let forced = masked([tb + 5, 10], stampsHeavy)
        XCTAssertFalse(forced.allowed(10))
        XCTAssertTrue(forced.allowed(tb + 6))
        XCTAssertFalse(forced.allowed(v.noTimestamps))
    }
}
