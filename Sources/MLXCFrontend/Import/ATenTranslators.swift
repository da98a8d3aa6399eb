import MLXCIR

/// One translator per ExecuTorch operator name (`name.overload`), keyed exactly as the file spells it.
/// Arguments follow the op's schema: positional, then keyword-only, then the output(s).
typealias ATenTranslator = (PlanImporter, [Int]) throws -> Void

extension PlanImporter {
    static let translators: [String: ATenTranslator] = {
        var table: [String: ATenTranslator] = [:]
        for group in [conformerTranslators, poolingTranslators, spectralTranslators, elementwiseTranslators, shapeTranslators, reductionTranslators, linalgTranslators,
                      creationTranslators, llmTranslators, gatedDeltaTranslators, quantizedTranslators, primTranslators, dimOrderTranslators] {
            table.merge(group) { first, _ in first }
        }
        return table
    }()

    /// The names every translator handles (for `mlxc inspect` remarks and tests).
    public static var supportedOperators: [String] { translators.keys.sorted() }

    func arity(_ args: [Int], _ n: Int, _ name: String) throws {
        guard args.count >= n else { throw fail("\(name) expects at least \(n) arguments, got \(args.count)") }
    }

    /// Normalizes a possibly negative axis against the rank of `v` (when the rank is known).
    func axis(_ a: Int, of v: ValueID) -> Int {
        guard a < 0, let rank = graph.type(v)?.rank else { return a }
        return a + rank
    }

    /// A fresh computed value for an intermediate result of a multi-op translation.
    func temporary(_ type: TensorType?) -> ValueID {
        graph.addValue(type, .computed)
    }
}
