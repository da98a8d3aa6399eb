import ArgumentParser
import Foundation
import MLXCIR
import MLXCRuntime

/// `mlxc transcribe FOLDER [AUDIO…] [--stream]` on a Voxtral Realtime export (export_voxtral_rt's model.pte +
/// tekken.json): files offline (a streaming export runs its step loop over the file at full speed, an offline
/// export the runner's offline loop), or with --stream the audio on stdin, transcribed as it arrives.
extension Transcribe {
    func runVoxtralRealtime() throws {
        guard VoxtralRealtimeFiles.recognises(model) else {
            throw ValidationError("--stream needs a Voxtral Realtime export (export_voxtral_rt.py --streaming: model.pte with encode_audio_chunk, and tekken.json); \(model) is not one")
        }
        guard task == "transcribe" else { throw ValidationError("Voxtral Realtime only transcribes: --task \(task) is not available") }
        guard language == "auto" else { throw ValidationError("Voxtral Realtime takes no language prompt: --language \(language) is not available (auto)") }
        guard format == .text || format == .json else {
            throw ValidationError("Voxtral Realtime gives no segment timestamps: --format must be text or json, not \(format.rawValue)")
        }
        let raw = try rawPCMFormat()
        let files = try VoxtralRealtimeFiles(folder: model, tokenizer: tokenizer)
        if stream {
            guard audio.isEmpty else { throw ValidationError("--stream reads stdin: give no audio files (got \(audio.joined(separator: " ")))") }
            guard files.streaming else {
                throw ReferenceError("\(files.model): an offline export (audio_encoder); --stream needs export_voxtral_rt.py --streaming (encode_audio_chunk)")
            }
        } else {
            guard !audio.isEmpty else { throw ValidationError("give at least one audio file, or --stream to read stdin") }
        }
        let clips = try loadClips(raw: raw)
        // Read stdin from now on, so audio sent while the model loads is timestamped when it arrived (its words'
        // latency then includes the wait for the model).
        let reader = stream ? TimedByteReader(fd: 0) : nil
        let loadStart = Date()
        let load = try speechProgramLoader(reference: reference, threads: threads, cache: cacheOptions)
        let rt = try VoxtralRealtimeModel(files: files, load: load)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        // A stream reports once, at its end (bad input after loading is then the only line on stderr).
        if let reader { return try streamStdin(rt, raw: raw, reader: reader, loadSeconds: loadSeconds, ready: Date()) }
        log(String(format: "model: %@ (Voxtral Realtime %@: dim %d, vocabulary %d, %d delay tokens, %@) loaded and compiled in %.2f s",
                   model, files.streaming ? "streaming" : "offline", rt.dim, rt.vocabularySize, rt.delayTokens,
                   files.streaming ? "decoder window \(rt.slidingWindow)" : "\(rt.maxSeqLen) positions", loadSeconds))
        for (path, clip) in clips {
            let start = Date()
            var tokens: [Int] = []
            var steps = 0, positions = 0
            if files.streaming {
                let s = try VoxtralRealtimeStream(model: rt)
                let print: (VoxtralRealtimeStream.Token) -> Void = { t in
                    if t.id >= 0 { tokens.append(t.id) }
                    if format == .text { emit(t.text) }
                }
                try s.feed(clip.samples, onToken: print)
                try s.finish(onToken: print)
                steps = s.steps
            } else {
                let r = try VoxtralRealtimeOffline(model: rt).transcribe(clip.samples, maxNewTokens: maxNewTokens ?? 500) { piece in
                    if format == .text { emit(piece) }
                }
                tokens = r.tokens
                positions = r.audioPositions
            }
            let seconds = Date().timeIntervalSince(start)
            if format == .text { emit("\n") } else {
                var object: [String: Any] = ["file": path, "seconds": clip.seconds, "text": rt.tokenizer.decode(tokens), "tokens": tokens,
                                             "mode": files.streaming ? "streaming" : "offline"]
                if files.streaming { object["steps"] = steps } else { object["audio_positions"] = positions }
                emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n")
            }
            log(String(format: "%@: %.2f s of audio in %.2f s, real-time factor %.3f (%d tokens%@)", path, clip.seconds, seconds,
                       seconds / max(clip.seconds, 1e-9), tokens.count,
                       files.streaming ? ", \(steps) steps of 80 ms" : ", \(positions) audio positions"))
        }
    }

    /// stdin → PCM → 80 ms steps → text, printed as decoded. At the end of the stream the runner's flush runs
    /// (partial step padded, delay_tokens steps, look-ahead), so the text of the audio received is all printed —
    /// also when the stream then turns out to have stopped mid-frame (that is reported after, exit 1).
    func streamStdin(_ rt: VoxtralRealtimeModel, raw: PCMFormat?, reader: TimedByteReader, loadSeconds: Double, ready: Date) throws {
        let session = try VoxtralRealtimeStream(model: rt)
        let decoder = PCMStreamDecoder(raw: raw, source: "stdin")
        var latency: StreamLatency?
        var tokens: [Int] = []
        var text = ""
        let onToken: (VoxtralRealtimeStream.Token) -> Void = { t in
            if t.id >= 0 {
                tokens.append(t.id)
                latency?.decoded(heardSamples: t.heardSamples, at: Date())
            }
            guard !t.text.isEmpty else { return }
            text += t.text
            if format == .text { emit(t.text) }
            latency?.printed(t.text, heardSamples: t.heardSamples, sampleRate: LogMelSpectrogram.sampleRate, at: Date())
        }
        var endError: Error?
        var total = 0
        while let pieces = reader.next() {
            if latency == nil { latency = StreamLatency(start: pieces[0].arrived) }
            var samples: [Float] = []
            for p in pieces {
                samples += try decoder.push(p.bytes)
                if let f = decoder.format, f.sampleRate != LogMelSpectrogram.sampleRate {
                    throw AudioError("stdin", "\(f.sampleRate) Hz audio; a stream is read at 16000 Hz (resample it first, e.g. ffmpeg … -ar 16000 -ac 1 -f s16le -)")
                }
                total = decoder.samples
                latency?.arrived(total: total, at: p.arrived)
            }
            if !samples.isEmpty { try session.feed(samples, onToken: onToken) }
            if session.endOfText { break }
        }
        if let failure = reader.failure { endError = AudioError("stdin", "read failed: \(failure)") }
        if endError == nil { do { try decoder.end() } catch { endError = error } }
        if decoder.samples > 0 { try session.finish(onToken: onToken) }
        if format == .text { emit("\n") }
        let audioSeconds = session.audioSeconds
        let wall = latency.map { Date().timeIntervalSince($0.start) } ?? 0
        if format == .json {
            let words: [[String: Any]] = (latency?.words ?? []).map {
                ["word": $0.text, "audio_s": $0.audioSeconds, "printed_s": $0.printedSeconds, "latency_s": $0.latency, "arrived_s": $0.arrivedSeconds]
            }
            let object: [String: Any] = ["file": "stdin", "seconds": audioSeconds, "text": text, "tokens": tokens, "mode": "streaming",
                                         "steps": session.steps, "words": words, "compute_s": session.computeSeconds, "wall_s": wall,
                                         "token_latency_s": (latency?.tokens ?? []).map(\.latency),
                                         "token_arrived_s": (latency?.tokens ?? []).map(\.arrived), "load_s": loadSeconds, "ready_s": latency.map { ready.timeIntervalSince($0.start) } ?? 0]
            emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n")
        }
        var summary = ""
        if let s = latency?.summary {
            summary = String(format: "; latency per word (audio heard → text printed) mean %.3f s, median %.3f s, p90 %.3f s, max %.3f s over %d words",
                             s.mean, s.median, s.p90, s.max, latency!.words.count)
        }
        if let l = latency, let s = StreamLatency.summary(l.tokens.map(\.latency)) {
            summary += String(format: "; per token mean %.3f s, p90 %.3f s, max %.3f s", s.mean, s.p90, s.max)
        }
        if endError == nil { log(String(format: "stdin: model loaded and compiled in %.2f s; %.2f s of audio in %.2f s wall, %d steps of 80 ms, compute %.2f s, real-time factor %.3f (compute / audio), %d tokens%@",
                   loadSeconds, audioSeconds, wall, session.steps, session.computeSeconds, session.computeSeconds / max(audioSeconds, 1e-9),
                   tokens.count, summary)) }
        if let endError { throw endError }
    }
}
