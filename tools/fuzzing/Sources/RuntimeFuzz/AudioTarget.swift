import Foundation
import FuzzSupport
import MLXCRuntime

/// Audio as `mlxc transcribe` reads it: by content (WAV: RIFF/RIFX, PCM/float/extensible, any
/// chunks) or, when the first byte says so, as headerless PCM in a format taken from the next bytes;
/// then resampled to Whisper's 16 kHz and (for clips up to a second) turned into log-mel features.
let audioTarget = FuzzTarget(
    name: "audio",
    summary: "WAV and raw PCM readers, resampling to 16 kHz, log-mel features",
    run: { bytes in
        let clip: AudioClip
        if bytes.first == 0xA5, bytes.count >= 7 {
            // Raw PCM: byte 1 encoding, 2 channels, 3 endianness, 4...6 the sample rate (24 bits).
            let encoding = PCMEncoding.allCases[Int(bytes[1]) % PCMEncoding.allCases.count]
            let rate = Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16
            let format = PCMFormat(encoding: encoding, channels: Int(bytes[2]), sampleRate: rate, bigEndian: bytes[3] & 1 == 1)
            clip = try AudioLoader.readRaw(Data(bytes[7...]), format: format, source: "fuzz.pcm")
        } else {
            clip = try WAVReader.read(Data(bytes), source: "fuzz.wav")
        }
        let resampled = clip.resampled(to: LogMelSpectrogram.sampleRate)
        // As the transcriber calls it: up to 30 s padded to one window (only clips up to a second
        // here, to keep runs fast); `features` itself requires more than fftSize / 2 samples.
        if resampled.samples.count <= LogMelSpectrogram.sampleRate {
            var padded = resampled.samples
            padded.append(contentsOf: repeatElement(0, count: max(0, LogMelSpectrogram.fftSize - padded.count)))
            _ = AudioFuzz.logMel.features(padded)
        }
    },
    seeds: { fixtures, corpus in
        for file in Seeds.files(under: fixtures, suffix: ".wav") {
            // The first 16 KB of each committed clip (headers and some samples; the reader does not need the rest).
            try Seeds.write(Array([UInt8](try Data(contentsOf: file)).prefix(16384)), Seeds.relative(file, fixtures), to: corpus)
        }
        // Small hand-built WAVs: 8-bit mono at 8 kHz, 16-bit stereo at 44.1 kHz, float at 16 kHz, and one raw PCM input.
        for (name, format, bits, channels, rate) in [("u8", 1, 8, 1, 8000), ("s16", 1, 16, 2, 44100), ("f32", 3, 32, 1, 16000)] {
            let data = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 37) }
            try Seeds.write(AudioFuzz.wav(format: format, bits: bits, channels: channels, rate: rate, data: data), "built_\(name).wav", to: corpus)
        }
        try Seeds.write([0xA5, 1, 1, 0, 0x80, 0x3E, 0] + (0..<512).map { UInt8(truncatingIfNeeded: $0) }, "raw_s16_16k.pcm", to: corpus)
    })

enum AudioFuzz {
    static let logMel = LogMelSpectrogram(melCount: 80)

    /// A canonical 44-byte-header WAV.
    static func wav(format: Int, bits: Int, channels: Int, rate: Int, data: [UInt8]) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { u16(v & 0xFFFF) + u16(v >> 16 & 0xFFFF) }
        let block = channels * bits / 8
        return Array("RIFF".utf8) + u32(36 + data.count) + Array("WAVEfmt ".utf8) + u32(16) + u16(format) + u16(channels)
            + u32(rate) + u32(rate * block) + u16(block) + u16(bits) + Array("data".utf8) + u32(data.count) + data
    }
}
