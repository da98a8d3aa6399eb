import MLXCIR

/// Entry point from a loaded program to the graph IR.
public enum Importer {
    public struct Result {
        public var graph: Graph
        /// Things a user should know about the import (e.g. Metal kernels that cannot run on a CPU).
        public var remarks: [String]
    }

    /// Imports one method (execution plan); by default `forward`, else the only plan with instructions.
    public static func importMethod(_ pte: PTEFile, method: String? = nil) throws -> Result {
        let plans = pte.program.executionPlans
        let index: Int
        if let method {
            guard let i = plans.firstIndex(where: { $0.name == method }) else {
                throw ImportError(method: method, location: "", message: "no such method; the program has \(plans.map(\.name))")
            }
            index = i
        } else if let i = plans.firstIndex(where: { $0.name == "forward" }) {
            index = i
        } else if let i = plans.firstIndex(where: { !($0.chains.first?.instructions.isEmpty ?? true) }) {
            index = i
        } else {
            guard !plans.isEmpty else { throw ImportError(method: "?", location: "", message: "the program has no execution plans") }
            index = 0
        }
        let importer = PlanImporter(pte: pte, planIndex: index)
        let graph = try importer.run()
        return Result(graph: graph, remarks: importer.remarks)
    }
}
