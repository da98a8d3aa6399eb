import ArgumentParser
import Foundation
import MLXCFrontend

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a program's methods, inputs/outputs, operators, delegates, segments and state.")

    @OptionGroup var options: ModelOptions

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        try MLXC.guarded {
            let pte = try PTEFile(path: options.model, externalData: options.dataFiles)
            let summary = try ProgramSummary(pte)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                print(InspectText.render(summary), terminator: "")
            }
        }
    }
}

enum InspectText {
    static func render(_ s: ProgramSummary) -> String {
        var out = "\(s.path): \(s.identifier), \(s.fileBytes) bytes (program \(s.programBytes), segment base \(s.segmentBase))\n"
        out += "segments: \(s.segments.count)"
        out += "; constants: \(s.constantBuffers) tensors, \(s.constantBytes) bytes"
        out += "; named data: \(s.namedData) keys, \(s.namedDataBytes) bytes"
        out += "; mutable data segments: \(s.mutableDataSegments)\n"
        for file in s.externalDataFiles { out += "external data: \(file)\n" }
        for m in s.methods {
            out += "\nmethod \(m.name): \(m.instructions.reduce(0, +)) instructions, \(m.values) values"
            if m.nonConstBufferSizes.count > 1 { out += ", planned memory \(m.nonConstBufferSizes.dropFirst().map(String.init).joined(separator: " + ")) bytes" }
            out += "\n"
            for t in m.inputs { out += "  input  " + tensor(t) + "\n" }
            for t in m.outputs { out += "  output " + tensor(t) + "\n" }
            for t in m.mutableBuffers { out += "  state  " + tensor(t) + "\n" }
            if !m.operators.isEmpty {
                out += "  operators (\(m.operators.count)):\n"
                for (name, count) in m.operators.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                    out += "    \(String(count).leftPad(5))  \(name)\n"
                }
            }
            for d in m.delegates {
                out += "  delegate \(d.index): \(d.id), \(d.payloadBytes) bytes (\(d.location)), called \(d.calls)x\n"
                if let nodes = d.mlxAllNodes {
                    out += "    MLX graph: \(d.mlxChains ?? 0) chains \(d.mlxInstructions ?? []), \(d.mlxConstants ?? 0) constants\n"
                    for (name, count) in nodes.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                        out += "    \(String(count).leftPad(5))  \(name)\n"
                    }
                    for b in d.mlxMutableBuffers ?? [] { out += "    state \(b)\n" }
                }
                if let nodes = d.xnnNodes {
                    out += "    XNN graph: \(nodes.values.reduce(0, +)) nodes, \((d.xnnValues ?? [:]).values.reduce(0, +)) values, inputs \(d.xnnInputIDs ?? []), outputs \(d.xnnOutputIDs ?? [])\n"
                    for (name, count) in nodes.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                        out += "    \(String(count).leftPad(5))  \(name)\n"
                    }
                }
            }
        }
        return out
    }

    static func tensor(_ t: ProgramSummary.TensorSummary) -> String {
        guard let dtype = t.dtype, let sizes = t.sizes else { return "%\(t.value): \(t.kind)" }
        return "%\(t.value): \(dtype)[\(sizes.map(String.init).joined(separator: ", "))]" + (t.dynamic == true ? " (dynamic)" : "")
            + (t.name.map { " \"\($0)\"" } ?? "")
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
