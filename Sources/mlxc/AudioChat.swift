import ArgumentParser
import Foundation
import MLXCRuntime

/// `mlxc run model.pte --audio X.wav --prompt "…"`: a question about audio to Voxtral (export_voxtral_hf's model.pte
/// with tekken.json beside it or given with --tokenizer). One user turn — the audio, then the text, as
/// VoxtralProcessor.apply_chat_template places them — answered greedily, text streamed.
extension Run {
    func runAudioChat(audio: String) throws {
        guard let model else { throw ValidationError("--audio needs the Voxtral model.pte") }
        guard let text = generation.prompt else { throw ValidationError("--audio needs --prompt (the question about the audio)") }
        guard generation.temperature == 0, generation.topK == 0, generation.topP == 1, generation.repetitionPenalty == 1,
              !generation.interactive, generation.promptTokens == nil else {
            throw ValidationError("--audio decodes greedily, one turn: --temperature, --top-k, --top-p, --repetition-penalty, --interactive and --prompt-tokens do not apply")
        }
        guard generation.maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
        let folder = (model as NSString).deletingLastPathComponent
        let files = try VoxtralFiles(folder: folder.isEmpty ? "." : folder, model: model, tokenizer: generation.tokenizer)
        let clip = try AudioLoader.load(path: audio, raw: nil).resampled(to: LogMelSpectrogram.sampleRate)
        guard clip.samples.count > LogMelSpectrogram.fftSize / 2 else {
            throw AudioError(audio, "too short: \(clip.samples.count) samples at 16 kHz (the log-mel needs more than \(LogMelSpectrogram.fftSize / 2))")
        }
        let load = try speechProgramLoader(reference: reference, threads: threads, cache: cacheOptions)
        let start = Date()
        let voxtral = try VoxtralTranscriber(files: files, load: load)
        let loadSeconds = Date().timeIntervalSince(start)
        let result = try voxtral.chat(clip.samples, text: text, maxNewTokens: generation.maxNewTokens) { piece in
            if !generation.printTokenIds { FileHandle.standardOutput.write(Data(piece.utf8)) }
        }
        FileHandle.standardOutput.write(Data(((generation.printTokenIds ? result.tokens.map(String.init).joined(separator: " ") : "") + "\n").utf8))
        let s = result.seconds
        FileHandle.standardError.write(Data(String(
            format: "audio chat: load+compile %.2f s; %.2f s of audio: log-mel %.2f s, audio encoder %.2f s, prefill %d tokens %.2f s, %d tokens in %.2f s (%.1f tok/s)\n",
            loadSeconds, clip.seconds, s.features, s.encode, result.prompt.count, s.prefill, result.tokens.count, s.decode,
            Double(result.tokens.count) / max(s.decode, 1e-9)).utf8))
    }
}
