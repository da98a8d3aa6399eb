/// Structural checks every graph must pass, whoever built it (importer, parser, a pass):
/// every value an op reads is defined before it (inputs, constants and state count as defined
/// at entry), every value is defined at most once (state may be rewritten in place), result
/// counts match, control-flow bodies exist, and graph outputs are defined.
public enum Verifier {
    public struct Failure: Error, CustomStringConvertible {
        public var problems: [String]
        public var description: String {
            "IR verification failed:\n" + problems.prefix(20).map { "  " + $0 }.joined(separator: "\n")
                + (problems.count > 20 ? "\n  … and \(problems.count - 20) more" : "")
        }
    }

    public static func verify(_ graph: Graph) throws {
        var problems: [String] = []
        var defined = Set<ValueID>()
        var isState = Set<ValueID>()
        for (i, info) in graph.values.enumerated() {
            switch info.kind {
            case .input, .constant: defined.insert(ValueID(i))
            case .state: defined.insert(ValueID(i)); isState.insert(ValueID(i))
            case .computed: break
            }
            if let t = info.type {
                for d in t.shape {
                    switch d {
                    case .fixed(let n) where n < 0: problems.append("%\(i) has a negative dimension in \(t)")
                    case .dynamic(let lo, let hi) where lo < 0 || (hi.map { $0 < lo } ?? false):
                        problems.append("%\(i) has an invalid dynamic dimension \(d) in \(t)")
                    default: break
                    }
                }
            }
        }
        for (position, v) in graph.inputs.enumerated() {
            guard graph.values.indices.contains(v.index), case .input = graph.values[v.index].kind else {
                problems.append("graph input \(position) (\(v)) is not an input value"); continue
            }
        }
        func check(_ v: ValueID, _ what: String, _ defined: Set<ValueID>) {
            if !graph.values.indices.contains(v.index) { problems.append("\(what) refers to \(v), which does not exist") }
            else if !defined.contains(v) { problems.append("\(what) reads \(v) before it is defined") }
        }
        // The init block runs first, then main. Control-flow bodies are checked where their op
        // stands: an `if` defines what either branch defines.
        var visited = Set<Int>()
        func walk(_ b: Int, _ defined: inout Set<ValueID>) {
            guard graph.blocks.indices.contains(b) else { problems.append("block \(b) does not exist"); return }
            guard visited.insert(b).inserted else { problems.append("block \(graph.blocks[b].name) is entered twice"); return }
            for (n, node) in graph.blocks[b].nodes.enumerated() {
                let what = "block \(graph.blocks[b].name) node \(n) (\(node.op.name))"
                for v in node.op.operands { check(v, what, defined) }
                var afterBodies = defined
                for body in node.op.referencedBlocks {
                    var inner = defined
                    walk(body, &inner)
                    afterBodies.formUnion(inner)
                }
                defined = afterBodies
                for r in node.op.results {
                    guard graph.values.indices.contains(r.index) else { problems.append("\(what) writes \(r), which does not exist"); continue }
                    if defined.contains(r) && !isState.contains(r) {
                        problems.append("\(what) redefines \(r), which is not state")
                    }
                    if case .constant = graph.values[r.index].kind { problems.append("\(what) writes constant \(r)") }
                    if case .input = graph.values[r.index].kind { problems.append("\(what) writes input \(r)") }
                    defined.insert(r)
                }
            }
        }
        if let i = graph.initBlock { walk(i, &defined) }
        walk(0, &defined)
        for b in graph.blocks.indices where !visited.contains(b) {
            problems.append("block \(graph.blocks[b].name) is never run (no init, main or control-flow reference)")
        }
        for (j, v) in graph.outputs.enumerated() { check(v, "graph output \(j)", defined) }
        if !problems.isEmpty { throw Failure(problems: problems) }
    }
}

extension Op {
    /// Blocks that control-flow ops run (`if` branches, `scan` bodies).
    public var referencedBlocks: [Int] {
        switch self {
        case .if(let op): return [op.thenChainIdx, op.elseChainIdx]
        case .scan(let op): return [op.bodyChainIdx]
        default: return []
        }
    }
}
