import MLXCIR

/// Turns the weight-only quantized linears of plain exports into MLX affine quantized matmuls, the
/// kernels that read packed weights once and dequantize them in registers:
///
///     d = dequantize_affine(x: q, block_size: [1, g], scale: s, zero_point: z, quant_min: lo, quant_max: hi)
///     t = transpose(x: d, perm: [1, 0])                    (permute_copy / t_copy of the export)
///     y = matmul(a: x, b: t)    or    y = addmm(mat1: x, mat2: t, bias: c, alpha: 1, beta: 1)
///
/// becomes, with the repack in the init block (run once at load; the file's bytes are untouched):
///
///     init:  w, s', b = pack_affine_weight(q: q, scale: s, zero_point: z, quant_min: lo, bits: B, group_size: g)
///     main:  y = quantized_matmul(x: x, w: w, scales: s', biases: b, group_size: g, bits: B, mode: "affine", transpose: true)
///            (+ `add(a: y', b: c)` for a bias)
///
/// MLX codes are unsigned with w = s·u + b: u = q − lo and b = s·(lo − z) give the same weight,
/// (q − z)·s. B is the narrowest of 2, 4, 8 bits that holds hi − lo + 1 codes (int4 codes stored one per
/// byte become two per byte: decode reads half the bytes). The JIT runs the repack natively at load
/// (JITProgram+PackAffineWeights); the reference's `pack_affine_weight` is its definition.
///
/// The export's views around mm are read through, so fuse-quantized-linear (after this pass) sees the
/// SwiGLU, residual adds and siblings of these linears: x = reshape(x0 [..., K], [M, K]) and a sole
/// reader y' = reshape(y, L + [N]) become y' = quantized_matmul(reshape(x, L + [K])) (x0 itself when L is
/// provably x0's leading dims), and `multiply(h, sigmoid(h))` of a linear's result becomes `silu(h)`.
///
/// Sound only when (checked): q, s, z are constants (q [N, K] of an integer dtype, s and z one element
/// per group), the blocks are groups along K (block_size [1, g], g a multiple of 32 dividing K), the
/// dequantized weight is f32, d and t have no other reader (nor are outputs or state), and the linear
/// is the unscaled form (alpha = beta = 1).
public struct FuseDequantMatmul: GraphPass {
    public let name = "fuse-dequant-matmul"
    public init() {}

    public func run(_ graph: inout Graph) throws -> Int {
        let uses = graph.useCounts()   // outputs are never intermediates
        var fused = 0
        for b in graph.blocks.indices where b != graph.initBlock { fused += fuse(&graph, block: b, uses) }
        return fused
    }

    /// A dequantized weight the repack can take.
    struct Weight { var q: ValueID, scale: ValueID, zeroPoint: ValueID?, quantMin: Int, bits: Int, groupSize: Int, n: Int, k: Int }

    func isConstant(_ v: ValueID, _ graph: Graph) -> Bool {
        guard graph.values.indices.contains(v.index), case .constant = graph[v].kind else { return false }
        return true
    }

    func isComputed(_ v: ValueID, _ graph: Graph) -> Bool {
        guard graph.values.indices.contains(v.index), case .computed = graph[v].kind else { return false }
        return true
    }

    static func elementCount(_ t: TensorType?) -> Int? { t?.staticShape?.reduce(1, *) }

    func weight(_ o: DequantizeAffineOp, _ graph: Graph) -> Weight? {
        guard (o.dtype ?? .f32) == .f32, isConstant(o.x, graph), isConstant(o.scale, graph),
              o.zeroPoint.map({ isConstant($0, graph) }) ?? true,
              let qt = graph[o.x].type, [.i8, .u8, .i16, .i32].contains(qt.dtype), let shape = qt.staticShape, shape.count == 2,
              o.blockSize.count == 2, o.blockSize[0] == 1 else { return nil }
        let (n, k, g) = (shape[0], shape[1], o.blockSize[1])
        guard g > 0, g % 32 == 0, k % g == 0, Self.elementCount(graph[o.scale].type) == n * (k / g),
              graph[o.scale].type.map({ [.f32, .bf16, .f16].contains($0.dtype) }) ?? false,
              o.zeroPoint.map({ Self.elementCount(graph[$0].type) == n * (k / g) }) ?? true else { return nil }
        let codes = o.quantMax - o.quantMin + 1
        guard codes > 1 else { return nil }
        guard let bits = [2, 4, 8].first(where: { codes <= 1 << $0 }) else { return nil }
        return Weight(q: o.x, scale: o.scale, zeroPoint: o.zeroPoint, quantMin: o.quantMin, bits: bits, groupSize: g, n: n, k: k)
    }

    /// `target` is provably `lead + [n]`: same rank, last entry n, and every other entry the same fixed
    /// positive size but at most one (the element count, equal for a valid reshape, then fixes that one).
    static func provablySame(_ target: [IntOrValue], _ lead: [Dim], n: Int) -> Bool {
        guard n > 0, target.count == lead.count + 1, case .literal(let last)? = target.last, last == n else { return false }
        var free = 0
        for (t, d) in zip(target.dropLast(), lead) {
            if case .literal(let v) = t, let f = d.fixedValue, Int(v) == f, f > 0 { continue }
            free += 1
        }
        return free <= 1
    }

    func fuse(_ graph: inout Graph, block b: Int, _ uses: [ValueID: Int]) -> Int {
        let nodes = graph.blocks[b].nodes
        var producer: [ValueID: Int] = [:]
        var readers: [ValueID: [Int]] = [:]
        for (i, node) in nodes.enumerated() {
            for r in node.op.results { producer[r] = i }
            for v in node.op.operands { readers[v, default: []].append(i) }
        }
        func single(_ v: ValueID) -> Int? {
            guard uses[v] == 1, isComputed(v, graph), let i = producer[v] else { return nil }
            return i
        }
        var dead = Set<Int>(), replacement: [Int: [Op]] = [:], count = 0
        var linearResults = Set<ValueID>()
        for i in nodes.indices where !dead.contains(i) {
            // The linear: x · tᵀ-form with t = transpose(d).
            let x: ValueID, rhs: ValueID, out: ValueID, bias: ValueID?
            switch nodes[i].op {
            case .matmul(let m): (x, rhs, out, bias) = (m.a, m.b, m.out, nil)
            case .addmm(let m):
                guard m.alpha == 1, m.bias == nil || m.beta == 1 else { continue }
                (x, rhs, out, bias) = (m.mat1, m.mat2, m.out, m.bias)
            default: continue
            }
            guard let ti = single(rhs), !dead.contains(ti), case .transpose(let t) = nodes[ti].op, t.perm == [1, 0],
                  let di = single(t.x), !dead.contains(di), case .dequantizeAffine(let d) = nodes[di].op,
                  let w = weight(d, graph) else { continue }
            if let xt = graph[x].type, xt.dtype != .f32 { continue }
            if let xt = graph[x].type, let last = xt.shape.last, case .fixed(let kx) = last, kx != w.k { continue }

            let words = graph.addValue(TensorType(.u32, fixed: [w.n, w.k * w.bits / 32]), .computed, name: graph[w.q].name.map { $0 + ".packed" })
            let scales = graph.addValue(TensorType(.f32, fixed: [w.n, w.k / w.groupSize]), .computed)
            let biases = graph.addValue(TensorType(.f32, fixed: [w.n, w.k / w.groupSize]), .computed)
            let initBlock = graph.initBlock ?? {
                graph.blocks.append(Block(name: "init"))
                graph.initBlock = graph.blocks.count - 1
                return graph.blocks.count - 1
            }()
            graph.blocks[initBlock].nodes.append(Node(.packAffineWeight(PackAffineWeightOp(
                q: w.q, scale: w.scale, zeroPoint: w.zeroPoint, quantMin: w.quantMin, bits: w.bits, groupSize: w.groupSize,
                outs: [words, scales, biases])), origin: nodes[di].origin))
            func qmm(_ input: ValueID, _ result: ValueID) -> Op {
                .quantizedMatmul(QuantizedMatmulOp(x: input, w: words, scales: scales, out: result, biases: biases,
                                                   groupSize: w.groupSize, bits: w.bits, mode: "affine", transpose: true))
            }

            // The export flattens x [..., K] to [M, K] for mm and views the result back to [..., N]; the
            // quantized matmul takes any leading dims, so it writes that view's value directly (residual adds
            // and the SwiGLU product then read the linear itself; a bias is added after it), reading x viewed
            // to the same leading dims (the unflattened x when that is provably the same shape).
            var flat: ReshapeOp?
            if let ri = producer[x], case .reshape(let r) = nodes[ri].op, case .literal(let k)? = r.shape.last, k == w.k,
               let x0 = graph[r.x].type, x0.shape.last?.fixedValue == w.k, !graph.values[r.x.index].kind.isState { flat = r }
            let definedBefore: (IntOrValue) -> Bool = { e in
                guard case .value(let v) = e, let p = producer[v] else { return true }
                return p < i
            }
            if let back = readers[out], back.count == 1, uses[out] == 1, !dead.contains(back[0]), back[0] > i,
               case .reshape(let view) = nodes[back[0]].op, view.x == out, case .literal(let n)? = view.shape.last, n == w.n,
               view.shape.dropLast().allSatisfy(definedBefore) {
                var ops: [Op] = []
                var input = x
                if let flat, let x0 = graph[flat.x].type, Self.provablySame(view.shape, Array(x0.shape.dropLast()), n: w.n) {
                    input = flat.x
                } else {
                    input = graph.addValue(graph[view.out].type.map { TensorType(.f32, Array($0.shape.dropLast()) + [.fixed(w.k)]) }, .computed)
                    ops.append(.reshape(ReshapeOp(x: x, out: input, shape: Array(view.shape.dropLast()) + [.literal(Int64(w.k))])))
                }
                if let bias {
                    let product = graph.addValue(graph[view.out].type.map { TensorType(.f32, $0.shape) }, .computed)
                    ops += [qmm(input, product), .add(AddOp(a: product, b: bias, out: view.out))]
                } else {
                    ops.append(qmm(input, view.out))
                }
                replacement[i] = ops
                dead.insert(back[0])
                linearResults.insert(view.out)
            } else if bias == nil, let flat, let x0 = graph[flat.x].type {
                let y0 = graph.addValue(TensorType(.f32, Array(x0.shape.dropLast()) + [.fixed(w.n)]), .computed)
                replacement[i] = [qmm(flat.x, y0),
                                  .reshape(ReshapeOp(x: y0, out: out, shape: Array(flat.shape.dropLast()) + [.literal(Int64(w.n))]))]
                linearResults.insert(y0)
            } else {
                var product = out
                if bias != nil { product = graph.addValue(graph[out].type, .computed) }
                var ops: [Op] = [qmm(x, product)]
                if let bias { ops.append(.add(AddOp(a: product, b: bias, out: out))) }
                replacement[i] = ops
                if bias == nil { linearResults.insert(out) }
            }
            dead.formUnion([ti, di])
            count += 1
        }
        guard count > 0 else { return 0 }
        var result: [Node] = []
        for (i, node) in nodes.enumerated() where !dead.contains(i) {
            if let ops = replacement[i] { result += ops.map { Node($0, origin: node.origin) } } else { result.append(node) }
        }
        graph.blocks[b].nodes = result
        Self.siluOfLinears(&graph, block: b, linearResults)
        return count
    }

    /// `multiply(h, sigmoid(h))` (either order) of a linear's result h is silu(h), as plain exports spell
    /// it: written as `silu` so fuse-quantized-linear sees the SwiGLU gate. The sigmoid must have no other reader.
    static func siluOfLinears(_ graph: inout Graph, block b: Int, _ linears: Set<ValueID>) {
        let uses = graph.useCounts()
        let nodes = graph.blocks[b].nodes
        var sigmoidOf: [ValueID: (index: Int, x: ValueID)] = [:]
        for (i, node) in nodes.enumerated() {
            if case .sigmoid(let s) = node.op, linears.contains(s.x), uses[s.out] == 1 { sigmoidOf[s.out] = (i, s.x) }
        }
        var out = nodes, dead = Set<Int>()
        for (i, node) in nodes.enumerated() {
            guard case .multiply(let m) = node.op else { continue }
            for (h, s) in [(m.a, m.b), (m.b, m.a)] {
                guard let sig = sigmoidOf[s], sig.x == h, sig.index < i, !dead.contains(sig.index) else { continue }
                out[i].op = .silu(SiluOp(x: h, out: m.out))
                dead.insert(sig.index)
                break
            }
        }
        graph.blocks[b].nodes = out.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
    }
}

private extension ValueKind {
    var isState: Bool { if case .state = self { return true } else { return false } }
}
