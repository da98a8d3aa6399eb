import MLXCFrontend
import MLXCIR

/// Hugging Face RoPE tables precomputed into the program (etLLM's `hf_precompute_freqs_cis`:
/// `cos(cat([freqs, freqs], -1))`, one row per position) have equal halves in every row, which
/// `fuse-rotate-half-rope` must know to read only h of the 2h columns — and passes see only the
/// graph. So before the passes, each row slice of such a constant (checked bit for bit here, where
/// the bytes are at hand) is spelled as what it equals:
///
///     r = slice(C, axis: 0, p, q)    →    r0 = slice(C, axis: 0, p, q)
///                                         r  = concatenate([r0[..., :h], r0[..., :h]], -1)
///
/// exact, and only T × D elements per call. Only rank-2 float constants read by nothing but row
/// slices are touched.
public enum DuplicatedHalfTables {
    @discardableResult
    public static func run(_ graph: inout Graph, _ pte: PTEFile) throws -> Int {
        // Row slices of each constant, and whether anything else reads it.
        var rowSlices: [ValueID: [(block: Int, node: Int)]] = [:], otherUse = Set<ValueID>()
        for (b, block) in graph.blocks.enumerated() {
            for (i, node) in block.nodes.enumerated() {
                for v in node.op.operands {
                    guard case .constant = graph[v].kind else { continue }
                    if case .slice(let s) = node.op, s.x == v, s.step == 1, s.axis == .literal(0) {
                        rowSlices[v, default: []].append((b, i))
                    } else {
                        otherUse.insert(v)
                    }
                }
            }
        }
        var tables = Set<ValueID>()
        for (c, _) in rowSlices where !otherUse.contains(c) && !graph.outputs.contains(c) {
            guard case .constant(let source) = graph[c].kind, let t = graph[c].type, t.rank == 2, [.f32, .bf16, .f16].contains(t.dtype),
                  let s = t.shape[0].fixedValue, let d = t.shape[1].fixedValue, d >= 2, d % 2 == 0 else { continue }
            let count = s * d, length = count * t.dtype.byteSize, h = d / 2
            let bytes: ByteView
            switch source {
            case .constantBuffer(let index): bytes = try pte.constantData(index: index, length: length, "constant %\(c.index)")
            case .namedData(let key): bytes = try pte.namedData(key)
            case .literal(let xs):
                if xs.count == count, (0..<s).allSatisfy({ r in (0..<h).allSatisfy { xs[r * d + $0] == xs[r * d + h + $0] } }) { tables.insert(c) }
                continue
            case .mutableData: continue
            }
            guard bytes.count >= length else { continue }
            let raw = bytes.bytes, w = t.dtype.byteSize
            let equal = (0..<s).allSatisfy { row in
                let base = row * d * w
                return (0..<(h * w)).allSatisfy { raw[base + $0] == raw[base + h * w + $0] }
            }
            if equal { tables.insert(c) }
        }
        guard !tables.isEmpty else { return 0 }
        var rewritten = 0
        for b in graph.blocks.indices {
            var out: [Node] = []
            for node in graph.blocks[b].nodes {
                guard case .slice(var s) = node.op, tables.contains(s.x), let rt = graph[s.out].type, rt.rank == 2,
                      let d = graph[s.x].type?.shape[1].fixedValue else {
                    out.append(node)
                    continue
                }
                let h = d / 2, result = s.out
                let rows = graph.addValue(TensorType(rt.dtype, [rt.shape[0], .fixed(d)]), .computed)
                let half = graph.addValue(TensorType(rt.dtype, [rt.shape[0], .fixed(h)]), .computed)
                s.out = rows
                out.append(Node(.slice(s), origin: node.origin))
                out.append(Node(.slice(SliceOp(x: rows, out: half, axis: .literal(-1), start: .literal(0), stop: .literal(Int64(h)))), origin: node.origin))
                out.append(Node(.concatenate(ConcatenateOp(tensors: [half, half], out: result, axis: -1)), origin: node.origin))
                rewritten += 1
            }
            graph.blocks[b].nodes = out
        }
        return rewritten
    }
}
