import Foundation

/// One way in for audio files: WAV by content, raw PCM when the caller gives its format
/// (raw dumps carry no header, so nothing can be guessed), and a clear refusal for the rest.
public enum AudioLoader {
    public static func load(path: String, raw: PCMFormat? = nil) throws -> AudioClip {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            throw AudioError(path, !exists ? "no such file" : isDir.boolValue ? "is a directory, not an audio file" : "cannot be read")
        }
        if let raw { return try readRaw(data, format: raw, source: path) }
        if data.isEmpty { throw AudioError(path, "empty file (0 bytes)") }
        if WAVReader.looksLikeWAV(data) || data.starts(with: Array("RIFF".utf8)) || data.starts(with: Array("RIFX".utf8)) {
            return try WAVReader.read(data, source: path)
        }
        if data.starts(with: Array("fLaC".utf8)) {
            throw AudioError(path, "FLAC is not supported (convert to WAV, e.g. `ffmpeg -i IN.flac -ar 16000 -ac 1 OUT.wav`)")
        }
        if data.starts(with: Array("ID3".utf8)) || (data.count >= 2 && data[data.startIndex] == 0xFF && data[data.startIndex + 1] & 0xE0 == 0xE0) {
            throw AudioError(path, "MP3 is not supported (convert to WAV, e.g. `ffmpeg -i IN.mp3 -ar 16000 -ac 1 OUT.wav`)")
        }
        if data.starts(with: Array("OggS".utf8)) {
            throw AudioError(path, "Ogg is not supported (convert to WAV)")
        }
        throw AudioError(path, "not a WAV file (no RIFF/WAVE header; for headerless PCM give --sample-rate and --pcm-format)")
    }

    /// Headerless interleaved PCM in `format`.
    public static func readRaw(_ data: Data, format: PCMFormat, source: String) throws -> AudioClip {
        try format.validate(source)
        guard data.count >= format.frameBytes else {
            throw AudioError(source, data.isEmpty ? "empty file (0 bytes)" : "no samples (\(data.count) bytes, one \(format.encoding.rawValue) frame of \(format.channels) channels is \(format.frameBytes))")
        }
        let samples = data.withUnsafeBytes { format.decodeMono($0) }
        if let bad = samples.firstIndex(where: { !$0.isFinite }) {
            throw AudioError(source, "sample \(bad) is \(samples[bad]) (float audio must be finite; is --pcm-format right?)")
        }
        return AudioClip(samples: samples, sampleRate: format.sampleRate)
    }
}
