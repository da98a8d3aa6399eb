import MLXCIR

/// The off-graph KV pools (`update_and_attend`, `--use-offgraph-cache` exports) as the runtime sizes
/// them from the program's constant methods: per layer id a flat pool of `capacity` cells, or a ring of
/// window + maxWrite − 1 cells for a sliding-window layer.
public struct OffGraphKVLayout: Equatable, Sendable {
    /// Sliding window per layer id (0: flat).
    public var windows: [Int]
    /// Cells of a flat pool (the context).
    public var capacity: Int
    /// The most tokens one call writes (the prefill chunk).
    public var maxWrite: Int

    public init(windows: [Int], capacity: Int, maxWrite: Int) {
        self.windows = windows
        self.capacity = capacity
        self.maxWrite = maxWrite
    }

    public func cells(layer: Int) -> Int {
        let w = windows.indices.contains(layer) ? windows[layer] : 0
        return w > 0 ? w + max(maxWrite, 1) - 1 : capacity
    }
}

/// Once the pools' layout is known, they are the program's state: each layer's pool becomes
/// `[B, Hkv, cells, D]` zero-initialised state (named `offgraph_kv.<layer>.k|v`), and
///
///     y = update_and_attend(q, k, v, position, layer_id: L, scale)
///
/// becomes, with p = reshape(position, [-1]) (the call's consecutive positions),
///
///     kc = index_copy(kc, k, p mod cells, axis 2)     vc = index_copy(vc, v, p mod cells, axis 2)
///     y  = sdpa(q, kc, vc, scale, keep)
///
/// flat: keep[i, j] = j ≤ p_i. ring of window W: cell j holds the newest position ≡ j (mod cells)
/// written so far, and query i may see it when d = (p_i − j) mod cells satisfies d < W and d ≤ p_i
/// (the position p_i − d is in its window and was written: cells ≥ W + T − 1 keep every position
/// a query of this call can see). That is exactly what the reference pools return, so
/// fuse-rope-attention can take the layer as one `rope_attention`. The mask depends on positions
/// only: stale cells after a reset or rewind are never seen (a flat cell beyond p_i is masked, a ring
/// cell's implied position is negative or out of the window). k and v must have fixed
/// [B, Hkv, ·, D]; a node whose layer, shapes or output dtype the layout cannot hold stays as it is.
public struct OffGraphKVState: GraphPass {
    public let name = "offgraph-kv-state"
    public let layout: OffGraphKVLayout
    /// Names of the states this pass makes start with it (the LLM contract recognises them).
    public static let statePrefix = "offgraph_kv."

    public init(layout: OffGraphKVLayout) { self.layout = layout }

    public func run(_ graph: inout Graph) throws -> Int {
        let inferred = ShapeInference.infer(graph).types
        func type(_ v: ValueID) -> TensorType? { graph[v].type ?? inferred[v.index] }
        var states: [Int: (k: ValueID, v: ValueID)] = [:]
        var changes = 0
        for b in graph.blocks.indices where b != graph.initBlock {
            var out: [Node] = []
            // Per block: the positions, cell indices and masks of each pool size (all layers share them).
            var flatPositions: [ValueID: ValueID] = [:]
            var made: [String: ValueID] = [:]
            for node in graph.blocks[b].nodes {
                guard case .updateAndAttend(let o) = node.op, let layer = o.layerId, layer >= 0, layer < layout.windows.count,
                      let qt = type(o.q), let kt = type(o.k), let vt = type(o.v), let pt = type(o.position),
                      qt.rank == 4, kt.rank == 4, vt.rank == 4, [qt, kt, vt].allSatisfy({ $0.dtype.isFloatingPoint }),
                      pt.dtype == .i64 || pt.dtype == .i32, o.outDtype == nil || o.outDtype == qt.dtype,
                      let batch = kt.shape[0].fixedValue, let heads = kt.shape[1].fixedValue, let dk = kt.shape[3].fixedValue,
                      vt.shape[0].fixedValue == batch, vt.shape[1].fixedValue == heads, let dv = vt.shape[3].fixedValue,
                      qt.shape[3].fixedValue == dk, let hq = qt.shape[1].fixedValue, hq % heads == 0,
                      // One position per token: [T] or [T, 1] beside q's T.
                      pt.shape.filter({ $0 != .fixed(1) }).count <= 1 else {
                    out.append(node)
                    continue
                }
                let window = layout.windows[layer], cells = layout.cells(layer: layer)
                let origin = node.origin
                func emit(_ op: Op) { out.append(Node(op, origin: origin)) }
                func scalar(_ n: Int) -> ValueID { graph.addValue(TensorType(.i64, []), .constant(.literal([Double(n)]))) }
                let rows = qt.shape[2]
                // The positions as i64 [T] and [T, 1].
                let positions: ValueID
                if let p = flatPositions[o.position] { positions = p } else {
                    let flat = graph.addValue(TensorType(pt.dtype, [rows]), .computed)
                    emit(.reshape(ReshapeOp(x: o.position, out: flat, shape: [.literal(-1)])))
                    if pt.dtype == .i64 { positions = flat } else {
                        positions = graph.addValue(TensorType(.i64, [rows]), .computed)
                        emit(.asType(AsTypeOp(x: flat, out: positions, scalarType: .i64)))
                    }
                    flatPositions[o.position] = positions
                }
                func cached(_ key: String, _ make: () -> ValueID) -> ValueID {
                    let k = "\(positions.index).\(key)"
                    if let v = made[k] { return v }
                    let v = make()
                    made[k] = v
                    return v
                }
                let column = cached("column") {
                    let c = graph.addValue(TensorType(.i64, [rows, .fixed(1)]), .computed)
                    emit(.reshape(ReshapeOp(x: positions, out: c, shape: [.literal(-1), .literal(1)])))
                    return c
                }
                let cellIndex = cached("cells\(cells)") {
                    let j = graph.addValue(TensorType(.i64, [.fixed(cells)]), .computed)
                    emit(.arange(ARangeOp(out: j, start: .literal(0), stop: .literal(Int64(cells)), step: .literal(1), scalarType: .i64)))
                    return j
                }
                let indices = window == 0 ? positions : cached("slot\(cells)") {
                    let i = graph.addValue(TensorType(.i64, [rows]), .computed)
                    emit(.remainder(RemainderOp(a: positions, b: scalar(cells), out: i)))
                    return i
                }
                let keep = cached("keep\(cells).\(window)") {
                    let m = graph.addValue(TensorType(.bool, [rows, .fixed(cells)]), .computed)
                    guard window > 0 else {
                        emit(.lessEqual(LessEqualOp(a: cellIndex, b: column, out: m)))
                        return m
                    }
                    let grid = TensorType(.i64, [rows, .fixed(cells)]), bools = TensorType(.bool, [rows, .fixed(cells)])
                    let diff = graph.addValue(grid, .computed), age = graph.addValue(grid, .computed)
                    let inWindow = graph.addValue(bools, .computed), written = graph.addValue(bools, .computed)
                    emit(.subtract(SubtractOp(a: column, b: cellIndex, out: diff)))
                    emit(.remainder(RemainderOp(a: diff, b: scalar(cells), out: age)))
                    emit(.less(LessOp(a: age, b: scalar(window), out: inWindow)))
                    emit(.lessEqual(LessEqualOp(a: age, b: column, out: written)))
                    emit(.logicalAnd(LogicalAndOp(a: inWindow, b: written, out: m)))
                    return m
                }
                let (kc, vc): (ValueID, ValueID)
                if let s = states[layer] { (kc, vc) = s } else {
                    kc = graph.addValue(TensorType(kt.dtype, fixed: [batch, heads, cells, dk]), .state(initial: nil), name: "\(Self.statePrefix)\(layer).k")
                    vc = graph.addValue(TensorType(vt.dtype, fixed: [batch, heads, cells, dv]), .state(initial: nil), name: "\(Self.statePrefix)\(layer).v")
                    states[layer] = (kc, vc)
                }
                guard graph[kc].type?.shape == [.fixed(batch), .fixed(heads), .fixed(cells), .fixed(dk)],
                      graph[vc].type?.shape == [.fixed(batch), .fixed(heads), .fixed(cells), .fixed(dv)] else {
                    out.append(node)
                    continue
                }
                emit(.indexCopy(IndexCopyOp(dst: kc, update: o.k, indices: indices, out: kc, axis: 2)))
                emit(.indexCopy(IndexCopyOp(dst: vc, update: o.v, indices: indices, out: vc, axis: 2)))
                emit(.sdpa(SdpaOp(q: o.q, k: kc, v: vc, out: o.out, scale: o.scale ?? 1 / Double(dk).squareRoot(), mask: keep, causal: false)))
                changes += 1
            }
            graph.blocks[b].nodes = out
        }
        return changes
    }
}
