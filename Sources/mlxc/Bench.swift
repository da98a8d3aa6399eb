import ArgumentParser
import Foundation
import MLXCFrontend
import MLXCIR
import MLXCCodegen
import MLXCRuntime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure an LLM's prefill and decode speed (tokens/s), load+compile time and peak memory.",
        discussion: "Runs a seeded random prompt, then greedy decoding, several times on one loaded program; prints medians.")

    @OptionGroup var options: ModelOptions

    @OptionGroup var passOptions: PipelineOptions

    @OptionGroup var cacheOptions: CacheOptions

    @Option(help: "Prompt tokens to prefill.")
    var promptLength = 128

    @Option(help: "Tokens to decode after the prompt.")
    var decode = 128

    @Option(help: "Measured runs (the median is reported).")
    var runs = 5

    @Option(help: "Threads for compiled kernels (default: all cores).")
    var threads: Int?

    @Flag(help: "Use the reference executor instead of compiled kernels.")
    var reference = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        try MLXC.guarded {
            var jitOptions = JITProgram.Options()
            if let threads { jitOptions.threads = threads }
            try cacheOptions.apply(to: &jitOptions)
            let loaded = try ProgramLoader.load(options.model, dataFiles: options.dataFiles, engine: reference ? .reference : .jit,
                                                options: jitOptions, mlxcVersion: MLXC.version, passes: try passOptions.manager(generation: true))
            let executor = loaded.executor, graph = loaded.graph, pte = loaded.pte
            let loadSeconds = loaded.loadSeconds, compileSeconds = loaded.llvmSeconds
            let model = try LanguageModel(executor: executor, graph: graph, pte: pte)
            guard promptLength + decode <= model.contract.maxContext else {
                throw ValidationError("prompt + decode = \(promptLength + decode) exceeds the model's context \(model.contract.maxContext)")
            }
            let vocab = model.contract.vocabSize ?? 256
            var seed: UInt64 = 0x5EED
            let prompt = (0..<promptLength).map { _ -> Int in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Int((seed >> 33) % UInt64(vocab))
            }
            var prefillRates: [Double] = [], decodeRates: [Double] = [], firstTokenSeconds: [Double] = []
            for run in 0..<(runs + 1) {   // run 0 warms up
                if let program = executor as? JITProgram { try program.resetState() }
                if let ref = executor as? ReferenceExecutor { try ref.resetState() }
                model.reset()
                let t0 = Date()
                var logits = try model.feed(prompt)
                let prefill = Date().timeIntervalSince(t0)
                let t1 = Date()
                for _ in 0..<decode {
                    let next = logits.indices.max { logits[$0] < logits[$1] } ?? 0
                    logits = try model.feed([next])
                }
                let decodeTime = Date().timeIntervalSince(t1)
                if run > 0 {
                    prefillRates.append(Double(promptLength) / prefill)
                    decodeRates.append(Double(decode) / decodeTime)
                    firstTokenSeconds.append(prefill)
                }
            }
            func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
            let report = (executor as? JITProgram)?.compileReport ?? CompileReport()
            let result: [String: Any] = [
                "model": options.model, "engine": reference ? "reference" : "jit",
                "threads": threads ?? AvailableCores.count,
                "prompt_tokens": promptLength, "decode_tokens": decode, "runs": runs,
                "prefill_tokens_per_s": median(prefillRates), "decode_tokens_per_s": median(decodeRates),
                "load_compile_s": loadSeconds, "llvm_compile_s": compileSeconds,
                "time_to_first_token_s": loadSeconds + median(firstTokenSeconds),
                "peak_rss_mb": Double(PeakMemory.residentBytes()) / 1_048_576,
                "kernels": report.kernels, "kernels_cached": report.cached, "kernels_optimized": report.optimized,
            ]
            if let program = executor as? JITProgram, !program.profileReport.isEmpty {
                FileHandle.standardError.write(Data((program.profileReport + "\n").utf8))
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(String(format: "%@ (%@): prefill %.1f tok/s, decode %.1f tok/s, load+compile %.3f s (LLVM %.3f s), TTFT %.3f s, peak RSS %.0f MB",
                             options.model, reference ? "reference" : "jit", median(prefillRates), median(decodeRates),
                             loadSeconds, compileSeconds, loadSeconds + median(firstTokenSeconds), Double(PeakMemory.residentBytes()) / 1_048_576))
            }
        }
    }
}
