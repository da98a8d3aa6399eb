import Foundation
import MLXCIR

/// Runs a pipeline of passes with LLVM-style instrumentation: print the IR after every pass or
/// after named ones, verify after each pass, and time them.
public struct PassManager {
    public struct Instrumentation {
        public var printAfterAll = false
        public var printAfter: Set<String> = []
        public var verifyEach = false
        public var timePasses = false
        /// Where printed IR and timings go (stderr by default).
        public var sink: (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }
        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public let passes: [any GraphPass]
    /// The pipeline's pass names, in order.
    public var pipeline: [String] { passes.map(\.name) }
    public var instrumentation: Instrumentation

    /// A pipeline from its text form, `a,b,c`; unknown names are an error that lists the known ones.
    public init(pipeline: [String] = PassRegistry.defaultPipeline, instrumentation: Instrumentation = Instrumentation()) throws {
        passes = try pipeline.filter { !$0.isEmpty }.map { name in
            guard let entry = PassRegistry.entry(named: name) else {
                throw Failure(message: "unknown pass \"\(name)\" (known: \(PassRegistry.entries.map(\.name).joined(separator: ", ")))")
            }
            return entry.make()
        }
        for name in instrumentation.printAfter where PassRegistry.entry(named: name) == nil {
            throw Failure(message: "--print-after: unknown pass \"\(name)\"")
        }
        self.instrumentation = instrumentation
    }

    public static func parse(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Runs every pass in order; returns the changes each made.
    @discardableResult
    public func run(_ graph: inout Graph) throws -> [(pass: String, changes: Int, seconds: Double)] {
        var report: [(String, Int, Double)] = []
        for pass in passes {
            let start = Date()
            let changes: Int
            do {
                changes = try pass.run(&graph)
            } catch {
                throw Failure(message: "pass \(pass.name): \(error)")
            }
            let seconds = Date().timeIntervalSince(start)
            report.append((pass.name, changes, seconds))
            if instrumentation.verifyEach {
                do { try Verifier.verify(graph) } catch { throw Failure(message: "after pass \(pass.name): \(error)") }
            }
            if instrumentation.printAfterAll || instrumentation.printAfter.contains(pass.name) {
                instrumentation.sink("// ----- IR after \(pass.name) (\(changes) changes) -----\n" + IRPrinter.print(graph))
            }
        }
        if instrumentation.timePasses {
            var text = "// ----- pass timings -----\n"
            for (name, changes, seconds) in report { text += String(format: "%10.3f ms  %6d changes  %@\n", seconds * 1000, changes, name) }
            instrumentation.sink(text)
        }
        return report
    }
}
