import ArgumentParser
import MLXCPasses

/// The pass pipeline and its instrumentation, shared by `compile`, `run`, `bench` and `dump`.
struct PipelineOptions: ParsableArguments {
    @Option(help: "Passes to run, comma-separated (see `mlxc passes`); default: \(PassRegistry.defaultPipeline.joined(separator: ",")).")
    var pipeline: String?

    @Flag(help: "Print the IR after every pass (stderr).")
    var printAfterAll = false

    @Option(help: "Print the IR after this pass (repeatable).")
    var printAfter: [String] = []

    @Flag(help: "Verify the IR after every pass.")
    var verifyEach = false

    @Flag(help: "Time each pass (stderr).")
    var timePasses = false

    /// The pass manager; `generation`: text generation's pipeline unless --pipeline names one.
    func manager(generation: Bool = false) throws -> PassManager {
        var instrumentation = PassManager.Instrumentation()
        instrumentation.printAfterAll = printAfterAll
        instrumentation.printAfter = Set(printAfter)
        instrumentation.verifyEach = verifyEach
        instrumentation.timePasses = timePasses
        let standard = generation ? PassRegistry.generationPipeline : PassRegistry.defaultPipeline
        return try PassManager(pipeline: pipeline.map(PassManager.parse) ?? standard, instrumentation: instrumentation)
    }
}

struct Passes: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the graph passes (for --pipeline).")

    func run() throws {
        let width = PassRegistry.entries.map(\.name.count).max() ?? 0
        for e in PassRegistry.entries {
            print(e.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + e.summary)
        }
        print("\ndefault pipeline: " + PassRegistry.defaultPipeline.joined(separator: ","))
        print("text generation:  " + PassRegistry.generationPipeline.joined(separator: ","))
    }
}
