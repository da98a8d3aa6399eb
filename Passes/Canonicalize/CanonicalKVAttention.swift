import MLXCIR

/// Puts KV-cache attention that exports spell with cache slices into the one form the rope-attention
/// fusion reads (as the default exports already write it): every cache write an in-place
/// `index_copy` of the new rows at explicit positions along the sequence axis of a [B, H, S, D]
/// cache, and the attention an `sdpa` over the whole cache with a mask.
///
/// - MLX `kv_cache_update` (`--use-custom-kv-cache`): `slice_update(c, u, axis 2, start, start + T)`
///   → `index_copy(c, u, arange(start, start + T))`; a ring buffer's two wrapped pieces →
///   one `index_copy` at `(p + arange(T)) mod R` (CanonicalKVAttention+Ring.swift).
/// - MLX `custom_sdpa`: `sdpa(q, c_k[:, :, :L], c_v[:, :, :L], causal)` → `sdpa(q, c_k, c_v, keep)`
///   with keep[i, j] = j ≤ L − T + i, the causal rule over L keys (exact: every kept key is below L);
///   a slice that provably spans the cache (a ring layer's) is dropped and its mask kept.
/// - ExecuTorch's `llama::update_cache` / `llama::custom_sdpa` on [B, S, H, D] caches
///   (CanonicalKVAttention+LlamaOps.swift).
///
/// Positions that start and stop the same on every call (k and v of one layer, or every layer)
/// share one `arange` and one mask, so the fusion sees both writes use one index vector. A call
/// whose write runs past the cache's end is an error afterwards (the export checks
/// `start + T ≤ S` itself); every other call computes what it did before.
public struct CanonicalKVAttention: GraphPass {
    public let name = "canonical-kv-attention"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var r = KVAttentionRewriter(graph: graph, block: 0)
        let changes = r.rewrite()
        if changes > 0 { graph = r.graph }
        return changes
    }
}

/// One pass over a block: the rewritten nodes, and the positions/masks made so far (for sharing).
struct KVAttentionRewriter {
    var graph: Graph
    let block: Int
    let forms: ScalarForms
    let nodes: [Node]
    let uses: [ValueID: Int]
    var out: [Node] = []
    var skip = Set<Int>()
    /// Index vectors `arange(start, stop)` (ring: mod R) by the forms of start, stop (and R).
    var indexVectors: [[ScalarForm]: ValueID] = [:]
    var ringVectors: [[ScalarForm]: ValueID] = [:]
    /// etLLM ring writes' [1, T] cell indices flattened to [T], one per index tensor (k and v share it).
    var flatIndices: [ValueID: ValueID] = [:]
    /// Ring writes to make in place of node index (their second piece).
    var pendingRings: [Int: RingWrite] = [:]
    /// Keep masks by the forms of the first query position and the key bound, and the cache length.
    var masks: [[ScalarForm]: ValueID] = [:]
    var columns: [Int: ValueID] = [:]
    var stops: [ScalarForm: IntOrValue] = [:]
    /// The first `sym_size` of each size form, and where it stands: a length the new positions
    /// read without reading the rotated k or q (the fusion wants those read only by attention).
    let sizeScalars: [ScalarForm: (at: Int, value: ValueID)]
    /// The node being rewritten.
    var at = 0
    var origin: String?

    init(graph: Graph, block: Int) {
        self.graph = graph
        self.block = block
        forms = ScalarForms(graph, block: block)
        nodes = graph.blocks[block].nodes
        uses = graph.useCounts(outputWeight: 1)
        var sizes: [ScalarForm: (at: Int, value: ValueID)] = [:]
        for (i, node) in nodes.enumerated() {
            guard case .symSize(let o) = node.op else { continue }
            let f = forms.form(o.out)
            if sizes[f] == nil, f.fixed == nil { sizes[f] = (i, o.out) }
        }
        sizeScalars = sizes
    }

    mutating func rewrite() -> Int {
        var changes = 0
        let caches = attentionCaches()
        let llamaCaches = llamaCaches()
        for (i, node) in nodes.enumerated() where !skip.contains(i) {
            origin = node.origin
            at = i
            if let ring = pendingRings[i] {
                emitRingWrite(ring)
                continue
            }
            if rewriteWrite(at: i, caches: caches) || rewriteRingWrite(at: i, caches: caches) || rewriteRead(at: i)
                || rewriteLlamaWrite(at: i, caches: llamaCaches) || rewriteLlamaRead(at: i, caches: llamaCaches) {
                changes += 1
                continue
            }
            out.append(node)
        }
        guard changes > 0 else { return 0 }
        relayout(llamaCaches)
        graph.blocks[block].nodes = out
        return changes
    }

    // MARK: helpers

    func isState(_ v: ValueID) -> Bool {
        guard graph.values.indices.contains(v.index), case .state = graph[v].kind else { return false }
        return true
    }

    /// A rank-4 state's fixed dims.
    func cacheShape(_ v: ValueID) -> [Int]? {
        guard isState(v), let t = graph[v].type, t.rank == 4 else { return nil }
        let dims = t.shape.compactMap(\.fixedValue)
        return dims.count == 4 ? dims : nil
    }

    func literal(_ x: IntOrValue) -> Int? { forms.form(x).fixed }

    /// `axis` names dim 2 of a rank-4 tensor.
    func isSequenceAxis(_ axis: IntOrValue) -> Bool { literal(axis) == 2 || literal(axis) == -2 }

    mutating func emit(_ op: Op) { out.append(Node(op, origin: origin)) }

    mutating func value(_ type: TensorType?) -> ValueID { graph.addValue(type, .computed) }

    /// An int scalar holding `x`.
    mutating func scalar(_ x: IntOrValue) -> ValueID {
        if case .value(let v) = x { return v }
        return graph.addValue(TensorType(.i64, []), .constant(.literal([Double(literal(x) ?? 0)])))
    }

    /// Dim `axis` of `x` as an operand: a literal when fixed, else a new `sym_size`.
    mutating func size(_ x: ValueID, _ axis: Int) -> IntOrValue {
        if let n = forms.dim(x, axis)?.fixed { return .literal(Int64(n)) }
        let n = value(TensorType(.i64, []))
        emit(.symSize(SymSizeOp(a: x, dim: axis, out: n)))
        return .value(n)
    }

    /// A length of form `n` (dim `axis` of `x`) as an operand: a literal, the first `sym_size` of
    /// that form defined before this node, else a new `sym_size` of x.
    mutating func length(_ n: ScalarForm, of x: ValueID, _ axis: Int) -> IntOrValue {
        if let k = n.fixed { return .literal(Int64(k)) }
        if let s = sizeScalars[n], s.at < at { return .value(s.value) }
        return size(x, axis)
    }

    /// `start + n` as an operand (n dim `axis` of x), one per form.
    mutating func stop(after start: IntOrValue, _ n: ScalarForm, of x: ValueID, _ axis: Int) -> IntOrValue {
        let want = forms.form(start) + n
        if let v = stops[want] { return v }
        let len = length(n, of: x, axis)
        let stop = sum(start, len)
        stops[want] = stop
        return stop
    }

    /// `a + b` as an operand.
    mutating func sum(_ a: IntOrValue, _ b: IntOrValue) -> IntOrValue {
        if let x = literal(a), let y = literal(b) { return .literal(Int64(x + y)) }
        let n = value(TensorType(.i64, []))
        emit(.addInt(AddIntOp(a: a, b: b, out: n)))
        return .value(n)
    }

    /// The dim of `x` at `axis` as a type entry.
    func dimType(_ x: ValueID, _ axis: Int) -> Dim {
        guard let t = graph[x].type ?? forms.ids.type(x), t.shape.indices.contains(axis) else { return .dynamic(min: 0, max: nil) }
        return t.shape[axis]
    }

    /// `arange(start, stop)` as i64 positions, one per pair of start/stop forms.
    mutating func positions(_ start: IntOrValue, _ stop: IntOrValue, rows: Dim) -> ValueID {
        let key = [forms.form(start), forms.form(stop)]
        if let v = indexVectors[key] { return v }
        let v = value(TensorType(.i64, [rows]))
        emit(.arange(ARangeOp(out: v, start: start, stop: stop, step: .literal(1), scalarType: .i64)))
        indexVectors[key] = v
        return v
    }

    /// keep[i, j] = j ≤ first + i for i < stop − first (bool [T, S]): causal attention of the
    /// queries at positions first… over a cache of `keys` slots, one per pair of forms.
    mutating func causalMask(first: IntOrValue, stop: IntOrValue, rows: Dim, keys: Int) -> ValueID {
        let key = [forms.form(first), forms.form(stop), ScalarForm(constant: keys)]
        if let m = masks[key] { return m }
        let cols: ValueID
        if let c = columns[keys] { cols = c } else {
            cols = value(TensorType(.i64, [.fixed(keys)]))
            emit(.arange(ARangeOp(out: cols, start: .literal(0), stop: .literal(Int64(keys)), step: .literal(1), scalarType: .i64)))
            columns[keys] = cols
        }
        let rowPositions = positions(first, stop, rows: rows)
        let column = value(TensorType(.i64, [rows, .fixed(1)]))
        emit(.reshape(ReshapeOp(x: rowPositions, out: column, shape: [.literal(-1), .literal(1)])))
        let m = value(TensorType(.bool, [rows, .fixed(keys)]))
        emit(.lessEqual(LessEqualOp(a: cols, b: column, out: m)))
        masks[key] = m
        return m
    }

    /// No node strictly between `from` and `to` reads or writes `v` (control flow counts as both).
    func untouched(_ v: ValueID, from: Int, to: Int) -> Bool {
        guard from + 1 < to else { return true }
        return (from + 1..<to).allSatisfy { j in
            switch nodes[j].op {
            case .if, .scan: return false
            default: return !nodes[j].op.operands.contains(v) && !nodes[j].op.results.contains(v)
            }
        }
    }
}
