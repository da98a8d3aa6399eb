import MLXCIR
import MLXCPasses

/// Which steps of a compiled program's main plan compute the same results on every call whose inputs they read
/// are byte-identical to the previous call's, and what must be kept between calls to skip them.
///
/// optimum-executorch's Whisper decoder takes the encoder's hidden states on every call and projects every layer's
/// cross-attention K/V from them (12 [1500 × 512] projections on Whisper base), although they only change once per
/// 30 s window. This analysis is not Whisper's: a step is reusable when all its results depend only on constants
/// and graph inputs (a bit per input position), never on state — except state that one step overwrites completely
/// (an `index_copy` at a constant permutation of the whole axis, or at `arange(0, n, 1)`: ExecuTorch's cross-attention
/// cache written with `arange(1500)`), which then depends on what was written. At run time a reusable step is skipped when none of its
/// inputs changed since the last successful call (`JITProgram+CrossCallReuse`); the values later steps read from
/// it are kept in buffers that outlive the call's arena.
struct CrossCallReuse {
    /// Per step of plan 0: the inputs its results depend on (bit = input position); nil: run on every call.
    let stepInputs: [UInt64?]
    /// Per reusable step: the values it produces that a step that may run without it (or the caller) reads.
    let kept: [Int: [ValueID]]
    /// Kept values some step later writes in place (through views too): restored as a fresh copy per call.
    let restoredByCopy: Set<ValueID>
    /// Inputs that any reusable step depends on (the ones worth comparing between calls).
    let inputsRead: UInt64
    /// Reusable steps that overwrite a state whole.
    let stateOverwrites: Int

    /// How many steps may be skipped (for stats and tests).
    var reusableSteps: Int { stepInputs.lazy.filter { $0 != nil }.count }

    /// nil when the plan has nothing to reuse or uses control flow (branch bodies are not analysed).
    /// `type`: each value's type as shape inference sees it (the graph leaves some untyped).
    static func analyze(graph: Graph, steps: [Step], type: (ValueID) -> TensorType?,
                        constant: (ValueID) -> NativeTensor?) -> CrossCallReuse? {
        guard graph.inputs.count <= 64 else { return nil }
        var reads: [[ValueID]] = [], writes: [[ValueID]] = [], materialized: [[ValueID]] = []
        var inPlace: [(result: ValueID, operand: ValueID)] = []
        var aliasOf: [ValueID: [ValueID]] = [:]   // a view's result → what it shares bytes with
        var nodes: [[Node]] = []
        for step in steps {
            switch step {
            case .kernel(let l):
                let absorbed = Set(l.fallbackNodes.flatMap(\.op.results))
                var r = l.operands
                for n in l.fallbackNodes { r += n.op.operands.filter { !absorbed.contains($0) } }
                reads.append(r)
                writes.append(Array(Set(l.results).union(absorbed)))
                materialized.append(l.results)
                for (result, operand) in l.inPlace { inPlace.append((l.results[result], l.operands[operand])) }
                nodes.append(l.fallbackNodes)
            case .view(let n):
                reads.append(n.op.operands); writes.append(n.op.results); materialized.append(n.op.results)
                for r in n.op.results { aliasOf[r] = n.op.operands }
                nodes.append([n])
            case .scalar(let n), .fallback(let n, _):
                reads.append(n.op.operands); writes.append(n.op.results); materialized.append(n.op.results)
                nodes.append([n])
            case .skip(let n):
                // Folded into a kernel that reads its sources itself: nothing is computed or read here.
                reads.append([]); writes.append([]); materialized.append([])
                nodes.append([])
            case .branch:
                return nil
            }
        }
        func isState(_ v: ValueID) -> Bool { if case .state = graph[v].kind { return true }; return false }
        // Buffers written in place, and everything viewing the same bytes (state reached this way has one more writer).
        var written = Set<ValueID>()
        // (A state updated in place under its own name is a state write, counted below.)
        var pending = inPlace.filter { !($0.result == $0.operand && isState($0.operand)) }.map(\.operand)
        while let v = pending.popLast() {
            guard written.insert(v).inserted else { continue }
            pending += aliasOf[v] ?? []
        }
        // State written by exactly one step, which overwrites all of it: reusable once written.
        var writers: [ValueID: [Int]] = [:]
        for (k, w) in writes.enumerated() { for v in w where isState(v) { writers[v, default: []].append(k) } }
        for v in written where isState(v) { writers[v, default: []].append(-1) }   // written under another name
        var overwrite: [Int: (state: ValueID, update: ValueID)] = [:]
        // Rows written as `arange(0, n, 1)` (optimum's portable export) are as constant as a folded index tensor.
        var aranges: [ValueID: Op] = [:]
        for step in nodes { for n in step { if case .arange(let a) = n.op { aranges[a.out] = n.op } } }
        for (state, ks) in writers where ks.count == 1 {
            // The kernel may read the update through nodes it absorbed (a transpose): one of its nodes is the write.
            let writing = nodes[ks[0]].filter { $0.op.results.contains(state) }
            guard writing.count == 1, case .indexCopy(let o) = writing[0].op, o.dst == state, o.out == state,
                  let dst = type(state)?.staticShape,
                  let update = type(o.update)?.staticShape, update == dst else { continue }
            let length = dst[o.axis < 0 ? o.axis + dst.count : o.axis]
            if let index = constant(o.indices) {
                guard coversAxis(index, length: length) else { continue }
            } else {
                guard WholeCacheRewrite.coversAxis(o.indices, length: length, graph: graph, producer: { aranges[$0] }) else { continue }
            }
            overwrite[ks[0]] = (state, o.update)
        }
        var mask = [UInt64?](repeating: nil, count: graph.values.count)
        for (i, info) in graph.values.enumerated() {
            switch info.kind {
            case .input(let p): mask[i] = 1 << UInt64(p)
            case .constant: mask[i] = 0
            case .computed: mask[i] = constant(ValueID(i)) != nil ? 0 : nil   // init-block results
            case .state: mask[i] = nil
            }
        }
        var stepInputs = [UInt64?](repeating: nil, count: steps.count)
        for k in steps.indices {
            let pure = nodes[k].allSatisfy { n in
                switch n.op {
                case .randomBits, .metalKernel, .delegateCall, .scan, .updateAndAttend, .if: return false
                default: return true
                }
            }
            var m: UInt64? = pure && !materialized[k].isEmpty ? 0 : nil
            if let (state, _) = overwrite[k] {
                // Everything it reads but the state it overwrites (the update may be computed inside the step).
                for v in reads[k] where v != state { if let a = m, let b = mask[v.index] { m = a | b } else { m = nil } }
            } else {
                for v in reads[k] { if let a = m, let b = mask[v.index] { m = a | b } else { m = nil } }
                if writes[k].contains(where: isState) { m = nil }
            }
            if case .skip = steps[k] { m = nil }
            stepInputs[k] = m
            for v in writes[k] where !isState(v) { mask[v.index] = m }
            if let (state, _) = overwrite[k] { mask[state.index] = m }
        }
        // Values a step reads whose producer may be skipped while the reader runs: kept between calls.
        var producer: [ValueID: Int] = [:]
        for (k, w) in materialized.enumerated() where stepInputs[k] != nil { for v in w { producer[v] = k } }
        var kept: [Int: Set<ValueID>] = [:]
        for (k, r) in reads.enumerated() {
            for v in r {
                guard let p = producer[v], p < k else { continue }
                if stepInputs[k] == nil || stepInputs[k] != stepInputs[p] { kept[p, default: []].insert(v) }
            }
        }
        for v in graph.outputs { if let p = producer[v] { kept[p, default: []].insert(v) } }
        let reusable = stepInputs.compactMap { $0 }
        guard !reusable.isEmpty else { return nil }
        return CrossCallReuse(stepInputs: stepInputs, kept: kept.mapValues { Array($0).sorted { $0.index < $1.index } },
                              restoredByCopy: written.filter { !isState($0) }, inputsRead: reusable.reduce(0, |),
                              stateOverwrites: overwrite.keys.filter { stepInputs[$0] != nil }.count)
    }

    /// Whether `index` (a constant 1-D integer tensor) is a permutation of 0..<length.
    static func coversAxis(_ index: NativeTensor, length: Int) -> Bool {
        guard index.shape.count == 1, index.shape[0] == length, length > 0 else { return false }
        var seen = [Bool](repeating: false, count: length)
        for i in 0..<length {
            let n: Int
            switch index.dtype {
            case .i64: n = Int(index.data.load(fromByteOffset: 8 * i, as: Int64.self))
            case .i32: n = Int(index.data.load(fromByteOffset: 4 * i, as: Int32.self))
            default: return false
            }
            guard n >= 0, n < length, !seen[n] else { return false }
            seen[n] = true
        }
        return true
    }
}
