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
        kernel), llvm (each kernel's IR as emitted), opt-llvm (after default<O3>), asm (the target's assembly), \
        obj (one object file with every kernel, to -o or MODEL.<arch>.o). With --dump-dir, one file per kernel \
        named after it; otherwise everything on stdout. \
        --target aarch64-linux-gnu [--cpu generic|neoverse-n1|apple-m1|neoverse-v1] plans and compiles the \
        kernels for ARM64 (NEON, 4 f32 lanes): it writes objects or assembly only (--emit), not an artifact \
        another machine's mlxc could load.
        """)

    enum Stage: String, ExpressibleByArgument, CaseIterable { case graph, fused, llvm, optLLVM = "opt-llvm", asm, obj }

    @OptionGroup var options: ModelOptions

    @Option(name: .shortAndLong, help: "Write the artifact here (default: MODEL with .mlxc).")
    var output: String?

    @Option(help: "Print a stage instead of (or, with -o, besides) writing an artifact.")
    var emit: Stage?

    @Option(help: "Directory for --emit files (one per kernel for the LLVM stages).")
    var dumpDir: String?

    @OptionGroup var passOptions: PipelineOptions

    @Option(help: "Compile the kernels for this machine (aarch64-linux-gnu; default: the host).")
    var target: String?

    @Option(help: "The target's CPU (with --target aarch64-linux-gnu: generic, neoverse-n1, apple-m1, neoverse-v1).")
    var cpu: String?

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
            let machineTarget = try HostTarget.named(triple: target, cpu: cpu)
            if !machineTarget.isHost, emit == nil || emit == .graph {
                throw ValidationError("--target \(target ?? ""): writes objects or assembly only (--emit obj|asm|llvm|opt-llvm|fused), "
                                      + "not an artifact (an artifact loads only on the machine that compiled it)")
            }
            let pte = try PTEFile(path: options.model, externalData: options.dataFiles)
            if emit == .graph {
                let imported = try Importer.importMethod(pte, method: method).graph
                try Verifier.verify(imported)
                return try write(IRPrinter.print(imported), name: "graph.mlxir")
            }
            let passes = try passOptions.manager(generation: forGeneration)
            let graph = try ProgramLoader.prepare(pte, method: method, passes: passes)
            var jitOptions = JITProgram.Options()
            jitOptions.target = machineTarget
            let program = try JITProgram(graph: graph, pte: pte, options: jitOptions)
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
            case .obj?:
                let machine = try TargetMachine(host: machineTarget)
                let object = try program.library.objectCode(machine: machine)
                let arch = machineTarget.triple.split(separator: "-").first.map(String.init) ?? "host"
                let path = output ?? (options.model.hasSuffix(".pte") ? String(options.model.dropLast(4)) : options.model) + ".\(arch).o"
                guard FileManager.default.createFile(atPath: path, contents: Data(object)) else { throw ValidationError("cannot write \(path)") }
                print("\(path): \(program.kernelNames.count) kernels, \(object.count) bytes of object code for \(machineTarget.triple) "
                      + "(\(machineTarget.cpuName)); \(program.remarks.count) ops on the reference executor")
                return
            case .llvm?, .optLLVM?, .asm?:
                let machine = try TargetMachine(host: machineTarget)
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
