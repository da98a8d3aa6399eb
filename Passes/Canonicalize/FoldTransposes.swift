import MLXCIR

/// Folds the permute chains plain exports leave around attention (`transpose` → `clone` →
/// `transpose` → `transpose` → `clone`, from `.transpose(1, 2).contiguous()` and friends):
/// - `id_copy(x)` of a value that cannot change (not state) is x itself: its readers read x;
/// - a `slice_update` whose slice is the whole of dst (start 0, step 1, stop at or past the end, an update of
///   dst's shape and dtype) is its update, and a functional `copy_into` (result ≠ dst) of a source of dst's shape and
///   dtype is its source: what functionalization writes for `buffer[:b].mul_(keep)` / `buffer[:b].copy_(new)` with b
///   the whole batch (etLLM's GatedDeltaNet state), a full copy of the state each;
/// - `transpose(transpose(x, p), q)` is `transpose(x, p∘q)`, the composed permutation
///   (out dim i = x dim p[q[i]]), and an identity permutation is x itself.
/// What is left is at most one transpose per chain, which a neighbouring kernel can often read or
/// write through (e.g. `rope_attention`'s output head swap) instead of a strided copy per step.
/// State is never looked through: a copy of a cache is a snapshot the next write must not change.
public struct FoldTransposes: GraphPass {
    public let name = "fold-transposes"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        var folded = 0
        var alias: [ValueID: ValueID] = [:]
        func resolve(_ v: ValueID) -> ValueID {
            var v = v
            while let a = alias[v] { v = a }
            return v
        }
        func isState(_ v: ValueID) -> Bool {
            if case .state = graph[v].kind { return true }
            return false
        }
        // Only block-local SSA values fold: a value defined once, in the block that defines its
        // source (or the source is an input or constant), read only there. (MLX programs merge
        // branch results with id_copy into one value defined in several blocks.)
        var definitions: [ValueID: Int] = [:], home: [ValueID: Int] = [:], readBlocks: [ValueID: Set<Int>] = [:]
        for (b, block) in graph.blocks.enumerated() {
            for node in block.nodes {
                for r in node.op.results { definitions[r, default: 0] += 1; home[r] = b }
                for v in node.op.operands { readBlocks[v, default: []].insert(b) }
            }
        }
        func local(_ x: ValueID, _ out: ValueID, _ b: Int) -> Bool {
            guard !isState(x), !isState(out), !graph.outputs.contains(out), definitions[out] == 1,
                  (readBlocks[out] ?? []).isSubset(of: [b]) else { return false }
            switch graph[x].kind {
            case .input, .constant: return true
            case .computed: return definitions[x] == 1 && home[x] == b
            case .state: return false
            }
        }
        /// The transpose defining each value so far (after folding).
        var transposeOf: [ValueID: TransposeOp] = [:]
        for b in graph.blocks.indices {
            for n in graph.blocks[b].nodes.indices {
                var op = graph.blocks[b].nodes[n].op
                if !alias.isEmpty { op = op.mapValues { op.results.contains($0) ? $0 : resolve($0) } }
                switch op {
                case .idCopy(let c) where local(c.x, c.out, b) && graph[c.x].type != nil && graph[c.x].type?.dtype == graph[c.out].type?.dtype:
                    alias[c.out] = c.x
                    folded += 1
                case .sliceUpdate(let u) where local(u.update, u.out, b) && Self.coversAll(u, graph):
                    alias[u.out] = u.update
                    folded += 1
                case .copyInto(let c) where c.out != c.dst && local(c.src, c.out, b) && Self.sameFixedType(c.src, c.out, graph):
                    alias[c.out] = c.src
                    folded += 1
                case .transpose(var t) where local(t.x, t.out, b):
                    guard let rank = graph[t.x].type?.rank ?? graph[t.out].type?.rank,
                          let q = normalized(t.perm, rank) else { break }
                    var perm = q
                    if let inner = transposeOf[t.x], let p = normalized(inner.perm, rank) {
                        perm = q.map { p[$0] }
                        t.x = inner.x
                        folded += 1
                    } else if perm != Array(0..<rank) {
                        transposeOf[t.out] = t
                        break
                    }
                    if perm == Array(0..<rank) {
                        alias[t.out] = t.x
                        folded += 1
                    } else {
                        t.perm = perm
                        op = .transpose(t)
                        transposeOf[t.out] = t
                    }
                default:
                    break
                }
                graph.blocks[b].nodes[n].op = op
            }
        }
        guard !alias.isEmpty else { return folded }
        // Aliased results: their defining nodes go (nothing reads them now), reads go to the source.
        for b in graph.blocks.indices {
            graph.blocks[b].nodes.removeAll { node in node.op.results.count == 1 && alias[node.op.results[0]] != nil }
            for n in graph.blocks[b].nodes.indices {
                let op = graph.blocks[b].nodes[n].op
                graph.blocks[b].nodes[n].op = op.mapValues { op.results.contains($0) ? $0 : resolve($0) }
            }
        }
        graph.outputs = graph.outputs.map(resolve)
        return folded
    }

    /// Both values have one known dtype and the same shape, every dim fixed.
    static func sameFixedType(_ a: ValueID, _ b: ValueID, _ graph: Graph) -> Bool {
        guard let ta = graph[a].type, let tb = graph[b].type, ta.dtype == tb.dtype, ta.rank == tb.rank else { return false }
        return zip(ta.shape, tb.shape).allSatisfy { x, y in x.fixedValue != nil && x.fixedValue == y.fixedValue }
    }

    /// The slice_update writes every element of dst: start 0, step 1, stop ≥ the axis size, and an update of dst's
    /// (fixed) shape and dtype — nothing of dst is left in the result.
    static func coversAll(_ u: SliceUpdateOp, _ graph: Graph) -> Bool {
        guard u.step == 1, sameFixedType(u.update, u.out, graph), sameFixedType(u.dst, u.out, graph),
              case .literal(let axis) = u.axis, case .literal(let start) = u.start, case .literal(let stop) = u.stop,
              let t = graph[u.out].type else { return false }
        let a = axis < 0 ? Int(axis) + t.rank : Int(axis)
        guard (0..<t.rank).contains(a), let size = t.shape[a].fixedValue else { return false }
        return start == 0 && stop >= Int64(size)
    }

    /// A permutation with negative axes made positive, if it is one of 0..<rank.
    func normalized(_ perm: [Int], _ rank: Int) -> [Int]? {
        let p = perm.map { $0 < 0 ? $0 + rank : $0 }
        return p.sorted() == Array(0..<rank) ? p : nil
    }
}
