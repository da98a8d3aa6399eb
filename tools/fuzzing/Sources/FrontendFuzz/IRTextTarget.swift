import Foundation
import FuzzSupport
import MLXCFrontend
import MLXCIR

/// The IR text parser (what `IRParser.parse` reads: reproducers, pass tests), then what a parsed
/// graph goes through next: the verifier, shape inference and the printer.
let irTextTarget = FuzzTarget(
    name: "ir",
    summary: "IR text parser + verifier + shape inference + printer",
    run: { bytes in
        var graph = try IRParser.parse(String(decoding: bytes, as: UTF8.self))
        try Verifier.verify(graph)
        _ = ShapeInference.annotate(&graph)
        _ = IRPrinter.print(graph)
    },
    seeds: { fixtures, corpus in
        // Every fixture program's imported graph as text, plus the pass tests' hand-written graphs.
        for file in Seeds.files(under: fixtures, suffix: ".pte") {
            guard let pte = try? PTEFile(file: MappedFile(path: file.path), externalData: PTEProgramFuzz.externalData),
                  let graph = try? Importer.importMethod(pte).graph else { continue }
            try Seeds.write(Array(IRPrinter.print(graph).utf8), Seeds.relative(file, fixtures) + ".ir", to: corpus)
        }
        let tests = fixtures.deletingLastPathComponent().appendingPathComponent("PassesTests")
        for file in Seeds.files(under: tests, suffix: ".swift") {
            for (i, graph) in IRSnippets.graphs(in: try String(contentsOf: file, encoding: .utf8)).enumerated() {
                try Seeds.write(Array(graph.utf8), "\(file.lastPathComponent)_\(i).ir", to: corpus)
            }
        }
    })

/// Graph texts embedded in Swift test sources as multi-line string literals starting with `graph @`.
enum IRSnippets {
    static func graphs(in source: String) -> [String] {
        source.components(separatedBy: "\"\"\"").enumerated().compactMap { i, piece in
            let text = piece.drop(while: { $0 == "\n" })
            guard i % 2 == 1, text.trimmingCharacters(in: .whitespaces).hasPrefix("graph @") else { return nil }
            return text.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.drop(while: { $0 == " " }) }.joined(separator: "\n")
        }
    }
}
