import ArgumentParser
import Foundation
import LLVMKit
import MLXCFrontend
import MLXCIR
import MLXCRuntime

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a program ahead of time into a reusable artifact, or dump a stage of compilation.",
        discussion: """
        Stages for --emit: graph (imported IR), fused (typed IR with the execution plan: what runs as which \
        kernel), llvm (each kernel's IR as emitted), opt-llvm (after default<O3>), asm (host assembly). \
        With --dump-dir, one file per kernel named after it; otherwise everything on stdout.
        """)

    enum Stage: String, ExpressibleByArgument, CaseIterable { case graph, fused, llvm, optLLVM = "opt-llvm", asm }

    @OptionGroup var options: ModelOptions

    @Option(name: .shortAndLong, help: "Write the artifact here (default: MODEL with .mlxc).")
    var output: String?

    @Option(help: "Print a stage instead of (or, with -o, besides) writing an artifact.")
    var emit: Stage?

    @Option(help: "Directory for --emit files (one per kernel for the LLVM stages).")
    var dumpDir: String?

    @OptionGroup var passOptions: PipelineOptions

    @Option(help: "The method to compile (default: forward).")
    var method: String?

    @Flag(help: "Compile for text generation: logits of the last position only, as `mlxc run --prompt` plans it.")
    var forGeneration = false

    @Option(help: ArgumentHelp("Write what the plan is made of as JSON: kernels, fallback ops, fused kernels per kind.",
                               valueName: "file"))
    var statsJson: String?

    @Flag(help: "List on stderr every op left to the reference executor, and every op left unfused, and why.")
    var remarks = false

    func run() throws {
        try MLXC.guarded {
            let pte = try PTEFile(path: options.model, externalData: options.dataFiles)
            if emit == .graph {
                let imported = try Importer.importMethod(pte, method: method).graph
                try Verifier.verify(imported)
                return try write(IRPrinter.print(imported), name: "graph.mlxir")
            }
            let passes = try passOptions.manager(generation: forGeneration)
            let graph = try ProgramLoader.prepare(pte, method: method, passes: passes)
            let program = try JITProgram(graph: graph, pte: pte)
            if remarks {
                for r in program.remarks + program.fusionRemarks { FileHandle.standardError.write(Data("remark: \(r)\n".utf8)) }
            }
            if let statsJson {
                guard FileManager.default.createFile(atPath: statsJson, contents: Data((program.fusionStats.json + "\n").utf8)) else {
                    throw ValidationError("cannot write \(statsJson)")
                }
            }
            switch emit {
            case .fused?:
                var text = IRPrinter.print(graph)
                text += "\n# execution plan (\(program.kernelNames.count) kernels)\n" + program.planSummary.map { "# " + $0 }.joined(separator: "\n") + "\n"
                return try write(text, name: "fused.mlxir")
            case .llvm?, .optLLVM?, .asm?:
                let machine = try TargetMachine()
                let dumps = try program.library.perKernelDumps(machine: machine)
                for d in dumps {
                    let (text, ext) = emit == .llvm ? (d.llvm, "ll") : emit == .optLLVM ? (d.optimized, "opt.ll") : (d.assembly, "s")
                    try write(text, name: "\(d.name).\(ext)", header: "; kernel \(d.name)\n")
                }
                return
            default:
                break
            }
            let machine = try TargetMachine()
            let object = try program.library.objectCode(machine: machine)
            let header = Artifact(mlxcVersion: MLXC.version, programPath: URL(fileURLWithPath: options.model).standardizedFileURL.path,
                                  programBytes: pte.file.view.count, programHash: Artifact.hash(pte.file.view),
                                  method: graph.name, cpu: machine.host.cpuName, features: machine.host.features,
                                  kernels: program.kernelNames, plan: program.planSummary, objectBytes: object.count,
                                  pipeline: passes.pipeline)
            let path = output ?? (options.model.hasSuffix(".pte") ? String(options.model.dropLast(4)) : options.model) + ".mlxc"
            try Artifact.write(header, object: object, to: path)
            print("\(path): \(program.kernelNames.count) kernels, \(object.count) bytes of object code for \(machine.host.cpuName); "
                  + "\(program.remarks.count) ops on the reference executor")
        }
    }

    func write(_ text: String, name: String, header: String = "") throws {
        guard let dir = dumpDir else { print(header + text, terminator: text.hasSuffix("\n") ? "" : "\n"); return }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = (dir as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw ValidationError("cannot write \(path)") }
    }
}
