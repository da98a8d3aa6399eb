import ArgumentParser
import Foundation
import MLXCFrontend
import MLXCCodegen
import MLXCIR
import MLXCRuntime

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a program: tensors in and out, or text generation for an LLM.",
        discussion: """
        Tensors: inputs are .npy files or MLX op-test .bin files, one --input per argument in order. With \
        --inputs-dir, a sequence of calls runs on one loaded program so state (KV caches) carries over: \
        step<K>.input<I>.npy files, outputs written as step<K>.output<J>.npy. Float inputs are converted to a \
        bf16/f16 input's dtype.
        Text: --prompt (with the model's tokenizer.json, found next to the model or given with --tokenizer) or \
        --prompt-tokens streams the continuation to stdout and speed figures to stderr. With no model, the \
        bundled demo model (models/demo) is used.
        Conversation: --interactive (or --chat) reads one turn per stdin line until EOF; each turn continues \
        the KV cache of the previous one, so only the new line is prefilled. Lines are text, or token ids \
        (comma- or space-separated) with --prompt-tokens or --print-token-ids, which then prints each reply \
        as one line of ids; --prompt/--prompt-tokens is the first turn. /reset starts a new conversation, \
        /undo drops the last turn. With the model's chat template (chat_template.jinja or tokenizer_config.json \
        next to the tokenizer, or --chat-template) a text line is a user message (--system adds a system \
        message): the whole conversation is rendered and only the tokens the cache has not seen are prefilled. \
        Without one (or with --no-chat-template) turns join one token stream (BOS only at the start; a reply's \
        stop token stays in it). A line that is not valid or does not fit the model's context window is \
        reported on stderr and skipped; the exit status is then 1.
        """)

    @Argument(help: "The .pte program or .mlxc artifact (default with --prompt: the bundled demo model).")
    var model: String?

    @Option(name: .customLong("data"), help: "An external .ptd data file (repeatable).")
    var dataFiles: [String] = []

    @OptionGroup var generation: GenerationOptions

    @Option(name: .customLong("input"), help: "An input tensor file (.npy or .bin), in argument order (repeatable).")
    var inputs: [String] = []

    @Option(help: "Run the calls step0, step1, … found in this directory, keeping state between them.")
    var inputsDir: String?

    @OptionGroup var passOptions: PipelineOptions

    @OptionGroup var cacheOptions: CacheOptions

    @Option(help: "The method to run (default: forward).")
    var method: String?

    @Option(help: "Audio in the prompt (Voxtral's model.pte, with tekken.json beside it): a WAV or raw PCM file; --prompt is the question about it.")
    var audio: String?

    @Option(help: "Write outputs here as output<J>.npy (or step<K>.output<J>.npy).")
    var outputDir: String?

    @Flag(help: "Compile kernels with LLVM for this CPU (ops without a kernel run on the reference executor).")
    var jit = false

    @Option(help: "Threads for compiled kernels (default: all cores).")
    var threads: Int?

    @Flag(help: "List the ops that run on the reference executor, and why (stderr).")
    var remarks = false

    @Flag(help: "Print load and compile times, and with --inputs-dir each call's time (stderr).")
    var timing = false

    @Flag(help: "Generate text with the reference executor instead of compiled kernels (slow; for checking).")
    var reference = false

    func run() throws {
        try MLXC.guarded {
            if let audio { return try runAudioChat(audio: audio) }
            let isText = generation.prompt != nil || generation.promptTokens != nil || generation.interactive
            guard let modelPath = model ?? (isText || (inputs.isEmpty && inputsDir == nil) ? DemoModel.path() : nil) else {
                throw ValidationError("give a model (or --prompt to use the bundled demo model)")
            }
            let useJIT = jit || Artifact.isArtifact(modelPath) || (model == nil && isText) || (isText && !reference)
            var jitOptions = JITProgram.Options()
            if let threads { jitOptions.threads = threads }
            try cacheOptions.apply(to: &jitOptions)
            let loaded = try ProgramLoader.load(modelPath, dataFiles: dataFiles, method: method,
                                                engine: useJIT ? .jit : .reference, options: jitOptions, mlxcVersion: MLXC.version,
                                                passes: try passOptions.manager(generation: isText || (model == nil && inputs.isEmpty && inputsDir == nil)))
            if remarks {
                for r in loaded.remarks { FileHandle.standardError.write(Data("remark: \(r)\n".utf8)) }
            }
            if timing {
                let what = loaded.fromArtifact ? "loaded artifact (no LLVM optimization)" : (useJIT ? "imported and compiled" : "imported")
                var kernels = ""
                if let program = loaded.executor as? JITProgram, !loaded.fromArtifact {
                    let r = program.compileReport
                    kernels = "; \(r.kernels) kernels: \(r.cached) from the cache, \(r.optimized) optimized by LLVM; "
                        + String(format: "emit+lookup %.3f s, optimize %.3f s, link %.3f s", r.emitSeconds, r.optimizeSeconds, r.linkSeconds)
                }
                FileHandle.standardError.write(Data(String(format: "timing: %@ in %.3f s (LLVM %.3f s%@)\n", what, loaded.loadSeconds, loaded.llvmSeconds, kernels).utf8))
            }
            if isText || (model == nil && inputs.isEmpty && inputsDir == nil) {
                return try TextGeneration(options: generation, modelPath: modelPath, loaded: loaded).run()
            }
            try runTensors(loaded)
        }
    }

    func runTensors(_ loaded: ProgramLoader.Loaded) throws {
        let executor = loaded.executor
        let imported = loaded
        if let dir = outputDir { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        if let inputsDir {
            guard inputs.isEmpty else { throw ValidationError("give either --input or --inputs-dir, not both") }
            let steps = try StepFiles.scan(inputsDir)
            guard !steps.isEmpty else { throw ReferenceError("\(inputsDir): no step0.input0.npy files") }
            for (k, files) in steps.enumerated() {
                let inputs = try prepare(files.flatMap { try TensorFiles.read($0) }, imported.graph)
                let start = DispatchTime.now().uptimeNanoseconds
                let outputs = try executor.run(inputs)
                if timing {   // the call alone (files read before, written after): what a latency benchmark takes
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    FileHandle.standardError.write(Data(String(format: "timing: step %d in %.6f s\n", k, seconds).utf8))
                }
                try emit(outputs, prefix: "step\(k).")
            }
        } else {
            let outputs = try executor.run(try prepare(inputs.flatMap { try TensorFiles.read($0) }, imported.graph))
            try emit(outputs, prefix: "")
        }
        // Where the calls' time went, per kernel (as `bench` and `transcribe` print it).
        if ProcessInfo.processInfo.environment["MLXC_PROFILE"] != nil, let report = (executor as? JITProgram)?.profileReport, !report.isEmpty {
            FileHandle.standardError.write(Data("profile:\n\(report)\n".utf8))
        }
    }

    /// Converts float inputs to the dtype a bf16/f16/f32 input expects (a `.npy` cannot hold bf16).
    func prepare(_ tensors: [HostTensor], _ graph: Graph) throws -> [HostTensor] {
        zip(tensors, graph.inputs).map { t, id in
            guard let want = graph[id].type?.dtype, want != t.dtype, want.isFloatingPoint, t.dtype.isFloatingPoint else { return t }
            return t.converted(to: want)
        } + tensors.dropFirst(graph.inputs.count)
    }

    func emit(_ outputs: [HostTensor], prefix: String) throws {
        for (j, t) in outputs.enumerated() {
            if let dir = outputDir {
                try TensorFiles.writeNPY(t, to: (dir as NSString).appendingPathComponent("\(prefix)output\(j).npy"))
            } else {
                print("\(prefix)output\(j): \(TensorFiles.summary(t))")
            }
        }
    }
}

/// The `step<K>.input<I>.npy` files of an inputs directory, by step and argument position.
enum StepFiles {
    static func scan(_ dir: String) throws -> [[String]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        var steps: [[String]] = []
        for k in 0... {
            var files: [String] = []
            for i in 0... {
                let name = "step\(k).input\(i).npy"
                guard names.contains(name) else { break }
                files.append((dir as NSString).appendingPathComponent(name))
            }
            if files.isEmpty { break }
            steps.append(files)
        }
        return steps
    }
}
