import ArgumentParser
import Foundation
import MLXCIR
import MLXCRuntime

struct GenerationOptions: ParsableArguments {
    @Option(help: "Text to continue (needs a tokenizer).")
    var prompt: String?

    @Option(help: "Prompt as token ids, comma-separated (skips the tokenizer).")
    var promptTokens: String?

    @Option(help: "The tokenizer.json (default: next to the model).")
    var tokenizer: String?

    @Option(help: "Stop after this many new tokens.")
    var maxNewTokens = 128

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(help: "Keep only the k most likely tokens (0: off).")
    var topK = 0

    @Option(help: "Nucleus sampling: keep the smallest set with this much probability (1: off).")
    var topP: Float = 1

    @Option(help: "Penalize tokens already seen (1: off).")
    var repetitionPenalty: Float = 1

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Print the generated token ids (space-separated, one line) instead of text.")
    var printTokenIds = false
}

/// Text generation on a loaded LLM: prompt → chunked prefill → token-by-token decode, streamed.
struct TextGeneration {
    let options: GenerationOptions
    let modelPath: String
    let loaded: ProgramLoader.Loaded

    func run() throws {
        let model = try LanguageModel(executor: loaded.executor, graph: loaded.graph, pte: loaded.pte)
        var tokenizer: Tokenizer?
        let tokenizerPath = options.tokenizer ?? ((modelPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer.json")
        if options.prompt != nil || !options.printTokenIds, FileManager.default.fileExists(atPath: tokenizerPath) {
            tokenizer = try Tokenizer(jsonPath: tokenizerPath)
        }
        let prompt: [Int]
        if let ids = options.promptTokens {
            prompt = try ids.split(separator: ",").map {
                guard let n = Int($0.trimmingCharacters(in: .whitespaces)), n >= 0 else { throw ValidationError("--prompt-tokens: '\($0)' is not a token id") }
                return n
            }
        } else if let text = options.prompt {
            guard let tokenizer else { throw ValidationError("no tokenizer: \(tokenizerPath) does not exist (give --tokenizer or --prompt-tokens)") }
            prompt = tokenizer.encode(text, addSpecialTokens: true)
        } else {
            prompt = [tokenizer?.bosTokenID ?? model.contract.bosID ?? 0]
        }
        guard !prompt.isEmpty else { throw ValidationError("the prompt is empty") }
        if let vocab = model.contract.vocabSize, let bad = prompt.first(where: { $0 >= vocab }) {
            throw ValidationError("token id \(bad) is outside the model's vocabulary of \(vocab)")
        }
        var eos = Set(model.contract.eosIDs)
        if let t = tokenizer { eos.formUnion(t.eosTokenIDs) }
        var sampler = Sampler(SamplerConfig(temperature: options.temperature, topK: options.topK, topP: options.topP,
                                            repetitionPenalty: options.repetitionPenalty, seed: options.seed))
        var stream = tokenizer?.streamingDecoder()
        let start = Date()
        var logits = try model.feed(prompt)
        let firstToken = Date().timeIntervalSince(start)
        var history = prompt
        var generated: [Int] = []
        let decodeStart = Date()
        let out = FileHandle.standardOutput
        while generated.count < options.maxNewTokens {
            let next = sampler.sample(logits: logits, history: history)
            if eos.contains(next) { break }
            generated.append(next)
            history.append(next)
            if !options.printTokenIds, var s = stream {
                out.write(Data(s.push(next).utf8))
                stream = s
            }
            if generated.count == options.maxNewTokens || model.position + 1 > model.contract.maxContext { break }
            logits = try model.feed([next])
        }
        let decodeSeconds = Date().timeIntervalSince(decodeStart)
        if options.printTokenIds {
            print(generated.map(String.init).joined(separator: " "))
        } else {
            if var s = stream { out.write(Data((s.finish()).utf8)) }
            print("")
        }
        let stats = String(format: "time to first token %.3f s (load %.3f s + prefill %.3f s); prefill %.1f tok/s (%d tokens); decode %.1f tok/s (%d tokens); peak memory %.0f MB\n",
                           loaded.loadSeconds + firstToken, loaded.loadSeconds, firstToken, Double(prompt.count) / max(firstToken, 1e-9), prompt.count,
                           Double(max(generated.count - 1, 0)) / max(decodeSeconds, 1e-9), generated.count,
                           Double(PeakMemory.residentBytes()) / 1_048_576)
        FileHandle.standardError.write(Data(stats.utf8))
    }
}

/// The bundled demo model (`models/demo`), found from the working directory or from the binary.
enum DemoModel {
    static func path() -> String? {
        let candidates = [
            FileManager.default.currentDirectoryPath + "/models/demo/demo_mlx_4bit.pte",
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
                .appendingPathComponent("../../models/demo/demo_mlx_4bit.pte").standardizedFileURL.path,
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
                .appendingPathComponent("../../../models/demo/demo_mlx_4bit.pte").standardizedFileURL.path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }
}
