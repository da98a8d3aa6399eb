import ArgumentParser
import Foundation
import MLXCFrontend
import MLXCIR

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a stage of the compilation (for now: the imported graph IR).")

    enum Stage: String, ExpressibleByArgument, CaseIterable { case graph }

    @OptionGroup var options: ModelOptions

    @Option(help: "Which stage to print: \(Stage.allCases.map(\.rawValue).joined(separator: ", ")).")
    var stage: Stage = .graph

    @Option(help: "The method to import (default: forward).")
    var method: String?

    @Flag(help: "Leave out the file locations at the end of each op line.")
    var noOrigins = false

    @Flag(help: "List import remarks (e.g. Metal kernels) and shape-inference warnings on stderr.")
    var remarks = false

    func run() throws {
        try MLXC.guarded {
            let pte = try PTEFile(path: options.model, externalData: options.dataFiles)
            let result = try Importer.importMethod(pte, method: method)
            var graph = result.graph
            let warnings = ShapeInference.annotate(&graph)
            try Verifier.verify(graph)
            print(IRPrinter.print(graph, origins: !noOrigins), terminator: "")
            if remarks {
                for r in result.remarks { FileHandle.standardError.write(Data("remark: \(r)\n".utf8)) }
                for w in warnings { FileHandle.standardError.write(Data("warning: shape inference: \(w)\n".utf8)) }
            }
        }
    }
}
