import Foundation
import LLVMKit
import MLXCFrontend
import MLXCIR
import MLXCPasses

/// One way in for every command that runs a program: a `.pte` (reference or JIT) or an `.mlxc`
/// artifact (its object code is loaded; LLVM's optimizer does not run).
public enum ProgramLoader {
    public struct Loaded {
        public var pte: PTEFile
        public var graph: Graph
        public var executor: any ProgramExecutor
        public var remarks: [String]
        /// Seconds to read, import, plan and compile (or load object code).
        public var loadSeconds: Double
        /// Seconds spent in LLVM (optimizer and code generation, or linking an artifact's object).
        public var llvmSeconds: Double
        public var fromArtifact: Bool
    }

    public enum Engine { case reference, jit }

    /// The graph the compiler works on: imported, verified, with types inferred.
    public static func prepare(_ pte: PTEFile, method: String?, passes: PassManager? = nil) throws -> Graph {
        var graph = try Importer.importMethod(pte, method: method).graph
        try Verifier.verify(graph)
        try InlineScalarConstants.run(&graph, pte)
        try DuplicatedHalfTables.run(&graph, pte)
        // An off-graph KV cache whose layout the program publishes becomes graph state, so the
        // pipeline fuses its layers like any other (a program that is no LLM keeps update_and_attend).
        if let layout = try? LanguageModelContract(graph: graph, pte: pte).offGraphCache {
            _ = try OffGraphKVState(layout: layout.graphLayout).run(&graph)
        }
        try (passes ?? PassManager()).run(&graph)
        _ = ShapeInference.annotate(&graph)
        return graph
    }

    public static func load(_ path: String, dataFiles: [String] = [], method: String? = nil, engine: Engine,
                            options: JITProgram.Options = JITProgram.Options(), mlxcVersion: String,
                            passes: PassManager? = nil) throws -> Loaded {
        let start = Date()
        if Artifact.isArtifact(path) {
            let (header, object) = try Artifact.read(path)
            guard FileManager.default.fileExists(atPath: header.programPath) else {
                throw Artifact.Failure(message: "\(path) refers to \(header.programPath), which is missing")
            }
            let pte = try PTEFile(path: header.programPath, externalData: dataFiles)
            try header.check(version: mlxcVersion, host: HostTarget.current, program: pte)
            let graph = try prepare(pte, method: header.method, passes: try header.pipeline.map { try PassManager(pipeline: $0) } ?? passes)
            var jitOptions = options
            jitOptions.precompiledObject = object
            let program = try JITProgram(graph: graph, pte: pte, options: jitOptions)
            guard program.kernelNames == header.kernels, program.planSummary == header.plan else {
                throw Artifact.Failure(message: "\(path) was planned differently from what this mlxc plans for \(header.programPath): run `mlxc compile` again")
            }
            return Loaded(pte: pte, graph: graph, executor: program, remarks: program.remarks,
                          loadSeconds: Date().timeIntervalSince(start), llvmSeconds: program.compileSeconds, fromArtifact: true)
        }
        let pte = try PTEFile(path: path, externalData: dataFiles)
        let graph = try prepare(pte, method: method, passes: passes)
        switch engine {
        case .reference:
            let executor = try ReferenceExecutor(graph: graph, pte: pte)
            return Loaded(pte: pte, graph: graph, executor: executor, remarks: [], loadSeconds: Date().timeIntervalSince(start),
                          llvmSeconds: 0, fromArtifact: false)
        case .jit:
            let program = try JITProgram(graph: graph, pte: pte, options: options)
            return Loaded(pte: pte, graph: graph, executor: program, remarks: program.remarks,
                          loadSeconds: Date().timeIntervalSince(start), llvmSeconds: program.compileSeconds, fromArtifact: false)
        }
    }
}
