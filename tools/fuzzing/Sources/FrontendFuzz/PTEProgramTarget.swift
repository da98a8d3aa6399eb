import Foundation
import FuzzSupport
import MLXCFrontend
import MLXCIR

/// A `.pte` through the whole front end, as `mlxc inspect` and `mlxc dump` run it: header,
/// program flatbuffer, segments, the summary (MLX/XNNPACK payload histograms included), then every
/// method with instructions imported (delegates inlined), verified, shape-annotated and printed.
let pteProgramTarget = FuzzTarget(
    name: "pte",
    summary: ".pte reader + summary + import of every method (MLX and XNNPACK delegates inlined)",
    run: { bytes in
        let pte = try PTEFile(file: MappedFile(bytes: bytes, name: "fuzz.pte"), externalData: PTEProgramFuzz.externalData)
        let summary = try ProgramSummary(pte)
        for method in summary.methods where method.instructions.reduce(0, +) > 0 {
            var graph = try Importer.importMethod(pte, method: method.name).graph
            try Verifier.verify(graph)
            _ = ShapeInference.annotate(&graph)
            _ = IRPrinter.print(graph)
        }
    },
    seeds: { fixtures, corpus in
        // The fixtures up to 256 KB (ops, plain/MLX/XNNPACK, quantized): a bigger input costs far more
        // per run (one import takes ~0.1 s at 600 KB under ASan) without reaching other code.
        for file in Seeds.files(under: fixtures, suffix: ".pte") {
            let bytes = [UInt8](try Data(contentsOf: file))
            if bytes.count <= PTEProgramFuzz.maxSeedBytes { try Seeds.write(bytes, Seeds.relative(file, fixtures), to: corpus) }
        }
    })

enum PTEProgramFuzz {
    static let maxSeedBytes = 256 * 1024

    /// The one `.ptd` fixture, offered to every input so programs that name external data get past it.
    static let externalData: [PTDFile] = {
        let path = FuzzEnvironment.fixtures.appendingPathComponent("linear_plain_ptd/model.ptd").path
        return (try? PTDFile(path: path)).map { [$0] } ?? []
    }()

    /// The payloads of `backend` in every `.pte` fixture, for seeding the payload targets.
    static func payloads(_ backend: String, fixtures: URL) throws -> [(String, [UInt8])] {
        var found: [(String, [UInt8])] = []
        for file in Seeds.files(under: fixtures, suffix: ".pte") {
            guard let pte = try? PTEFile(file: MappedFile(path: file.path)) else { continue }
            for plan in pte.program.executionPlans {
                for (i, delegate) in plan.delegates.enumerated() where delegate.id == backend {
                    guard let payload = try? pte.delegatePayload(delegate, "delegate \(i)") else { continue }
                    found.append(("\(Seeds.relative(file, fixtures))_\(plan.name)_\(i)", Array(payload.bytes)))
                }
            }
        }
        return found
    }
}
