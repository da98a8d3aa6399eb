import MLXCIR

extension PlanImporter {
    /// A dynamic-bound tensor's sizes are upper bounds, and the importer types as dynamic only the dims equal to an
    /// input's bound. Sizes derived from one — a conformer's subsampled length (⌈T/8⌉ of the mel frames), its
    /// relative positions (2·T − 1) — are typed fixed at their bound, which is wrong for any shorter call. After the
    /// import, shape inference (which follows each op's rule from the inputs) corrects them: a computed value not
    /// declared static by the exporter takes the inferred dim wherever inference proves it dynamic within the
    /// declared size.
    func refineDerivedBounds() {
        let inferred = ShapeInference.infer(graph).types
        for i in graph.values.indices {
            let v = ValueID(i)
            guard case .computed = graph.values[i].kind, !exporterStatic.contains(v),
                  let declared = graph.values[i].type, let t = inferred[safe: i] ?? nil,
                  t.dtype == declared.dtype, t.rank == declared.rank else { continue }
            var shape = declared.shape
            var changed = false
            for (d, (have, got)) in zip(declared.shape, t.shape).enumerated() {
                guard let n = have.fixedValue, case .dynamic(let lo, let hi) = got, (hi ?? n) <= n, lo <= n else { continue }
                shape[d] = .dynamic(min: lo, max: hi ?? n)
                changed = true
            }
            if changed { graph.values[i].type = TensorType(declared.dtype, shape) }
        }
    }
}
