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
        func check(_ v: ValueID, _ what: String) {
            if !graph.values.indices.contains(v.index) { problems.append("\(what) refers to \(v), which does not exist") }
            else if !defined.contains(v) { problems.append("\(what) reads \(v) before it is defined") }
        }
        // The init block runs first, then main; other blocks are bodies and see everything defined so far.
        var order = [Int]()
        if let i = graph.initBlock {
            if graph.blocks.indices.contains(i) { order.append(i) } else { problems.append("init block \(i) does not exist") }
        }
        order += graph.blocks.indices.filter { $0 != graph.initBlock }
        for b in order {
            for (n, node) in graph.blocks[b].nodes.enumerated() {
                let what = "block \(graph.blocks[b].name) node \(n) (\(node.op.name))"
                for v in node.op.operands { check(v, what) }
                for r in node.op.results {
                    guard graph.values.indices.contains(r.index) else { problems.append("\(what) writes \(r), which does not exist"); continue }
                    if defined.contains(r) && !isState.contains(r) {
                        problems.append("\(what) redefines \(r), which is not state")
                    }
                    if case .constant = graph.values[r.index].kind { problems.append("\(what) writes constant \(r)") }
                    if case .input = graph.values[r.index].kind { problems.append("\(what) writes input \(r)") }
                    defined.insert(r)
                }
                for chain in node.op.referencedBlocks where !graph.blocks.indices.contains(chain) {
                    problems.append("\(what) refers to block \(chain), which does not exist")
                }
            }
        }
        for (j, v) in graph.outputs.enumerated() { check(v, "graph output \(j)") }
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
