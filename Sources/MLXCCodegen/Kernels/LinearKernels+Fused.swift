import CLLVM
import LLVMKit

/// `fused_linear`: float linears over one x in one kernel, their epilogue applied as each block's
/// sums come out of `LinearRows` (the loop `LinearKernels.f32` / `.typed` run):
/// - `.none`: out_i = x·W_iᵀ (+ bias_i) for each weight i; work items are the rows of all weights in
///   order (weight i owns [Σ_{j<i} n_j, … + n_i)), each weight's share tiled 4 rows × 4 tokens;
/// - gated (`.swiglu`, `.gegluTanh`, `.geglu`): out = act(x·W_0ᵀ + b_0) · (x·W_1ᵀ + b_1); work items
///   are rows r, tiled 2 rows × 4 tokens with the gate's and the up's rows in one block (4 weight
///   streams, 16 accumulators, as the plain kernel), so both products of (t, r) meet in registers;
/// - unary (`.silu`, `.geluTanh`, `.gelu`): out = act(x·W_0ᵀ + b_0), one weight, tiled as `.none`;
/// - with `residual` (one result), out += residual (same shape as out).
/// Decode (M = 1) reads each weight row once with x in L1; prefill reads it once per 4 tokens. Float
/// kernels (f32, bf16, f16) also carry `LinearPanels`' GEMM, taken at run time from `LinearPanels.minTokens` tokens on (a
/// prompt's 128, an encoder's 1500): their thread split is then whole panels (gated: a panel pairs the
/// gate's and the up's columns).
/// Each step is rounded to its dtype (`Types`) as the unfused ops round their results, so bf16
/// results match the unfused graph up to the dot products' summation order.
/// buffers: [x, W_0 … W_{n−1}, the biases (in `biases` order), residual?, outs…]; dims: [M].
extension LinearKernels {
    public enum Epilogue: String, CaseIterable {
        case none, swiglu, gegluTanh = "geglu_tanh", geglu, silu, geluTanh = "gelu_tanh", gelu
        /// act(x·W_0ᵀ) · (x·W_1ᵀ).
        public var gated: Bool { [.swiglu, .gegluTanh, .geglu].contains(self) }
        /// act(x·W_0ᵀ), one weight.
        public var unary: Bool { [.silu, .geluTanh, .gelu].contains(self) }

        /// The activation applied to the (first) product.
        func activate(_ l: Lanes, _ v: IRValue) -> IRValue {
            switch self {
            case .swiglu, .silu: return VectorMath.silu(l, v)
            case .gegluTanh, .geluTanh: return VectorMath.gelu(l, v, tanhForm: true)
            case .geglu, .gelu: return VectorMath.gelu(l, v, tanhForm: false)
            case .none: return v
            }
        }
    }

    /// The element types of a fused linear's operands and of each step's result.
    public struct Types: Equatable {
        public var weight: ElementType, activation: ElementType
        /// One per weight: its bias's type, nil without one.
        public var biases: [ElementType?]
        /// One per weight: the type its product (plus bias) is rounded to.
        public var products: [ElementType]
        /// Gated: the type of act(gate) · up. Residual: its type. Outs: one per result.
        public var gated: ElementType?, residual: ElementType?, outs: [ElementType]

        public init(weight: ElementType, activation: ElementType, biases: [ElementType?], products: [ElementType],
                    gated: ElementType?, residual: ElementType?, outs: [ElementType]) {
            self.weight = weight; self.activation = activation; self.biases = biases; self.products = products
            self.gated = gated; self.residual = residual; self.outs = outs
        }
    }

    /// Work items per thread split come in multiples of this (the row tiles' height), so shares start on a tile.
    public static let fusedGrain = LinearRows.rows

    /// Whether many-token calls take the packed-panel GEMM (`LinearPanels`): float weights and x (half ones
    /// widened as read, every step rounded to its type as `product`/`store` round it). Gated kernels pair the
    /// gate's and the up's columns in each panel (`LinearPanels.runPaired`).
    static func usesPanels(_ types: Types, _ epilogue: Epilogue, lanes: Int) -> Bool {
        let float: Set<ElementType> = [.f32, .bf16, .f16]
        return lanes > 1 && float.contains(types.weight) && float.contains(types.activation)
    }

    /// The thread split's grain for `fused`: whole panels when it packs them (a gated panel is one vector of
    /// columns of each weight), else whole row tiles.
    public static func fusedGrain(_ types: Types, _ epilogue: Epilogue, lanes: Int) -> Int {
        usesPanels(types, epilogue, lanes: lanes) ? (epilogue.gated ? lanes : 2 * lanes) : fusedGrain
    }

    /// Calls of at most this many tokens read the weights' f16 copies when the kernel has them.
    public static let halfCopyTokens = LinearRows.tokens

    /// Whether a kernel can take f16 copies of its weights (`halfCopies`): f32 weights and x, not gated.
    public static func takesHalfCopies(_ types: Types, _ epilogue: Epilogue) -> Bool {
        types.weight == .f32 && types.activation == .f32 && !epilogue.gated
    }

    /// `halfCopies`: buffers also hold an f16 copy of every weight (exact: each f32 weight value is an f16),
    /// after the residual; calls of up to `halfCopyTokens` tokens (decode) read those, half the bytes.
    public static func fused(k: Int, ns: [Int], types: Types, epilogue: Epilogue, lanes: Int, halfCopies: Bool = false) -> KernelDefinition {
        precondition(!halfCopies || takesHalfCopies(types, epilogue))
        precondition(types.biases.count == ns.count && types.products.count == ns.count)
        precondition(epilogue.gated ? ns.count == 2 && ns[0] == ns[1] && types.outs.count == 1 : types.outs.count == ns.count)
        precondition(!epilogue.unary || ns.count == 1)
        precondition(types.residual == nil || types.outs.count == 1)
        var name = "linear_fused_\(types.weight.tag)w_\(types.activation.tag)_k\(k)_n" + ns.map(String.init).joined(separator: "+")
        if types.biases.contains(where: { $0 != nil }) { name += "_bias" + types.biases.map { $0?.tag ?? "0" }.joined(separator: "+") }
        if epilogue != .none { name += "_\(epilogue.rawValue)" }
        if let r = types.residual { name += "_residual\(r.tag)" }
        name += "_to" + types.outs.map(\.tag).joined(separator: "+")
        if usesPanels(types, epilogue, lanes: lanes) { name += "_" + LinearPanels.tag(lanes: lanes) }
        if halfCopies { name += "_h16" }
        name += "_v\(lanes)"
        return KernelDefinition(name: name) { e in
            let b = e.b, one = Lanes(b, 1)
            let x = e.buffer(0)
            let weights = ns.indices.map { e.buffer(1 + $0) }
            var next = 1 + ns.count
            let biases: [IRValue?] = types.biases.map { t in
                guard t != nil else { return nil }
                defer { next += 1 }
                return e.buffer(next)
            }
            let residual = types.residual != nil ? e.buffer(next) : nil
            if residual != nil { next += 1 }
            let halfWeights = halfCopies ? ns.indices.map { e.buffer(next + $0) } : []
            if halfCopies { next += ns.count }
            let outs = types.outs.indices.map { e.buffer(next + $0) }
            let m = e.dim(0)
            let rows = LinearRows(b: b, k: k, weight: types.weight, activation: types.activation, lanes: lanes)
            let halfRows = LinearRows(b: b, k: k, weight: .f16, activation: types.activation, lanes: lanes)
            // f32 throughout: many tokens take the packed-panel GEMM.
            let panels = usesPanels(types, epilogue, lanes: lanes)
                ? LinearPanels(b: b, k: k, lanes: lanes, weight: types.weight, activation: types.activation) : nil
            let panel = panels?.allocatePanel()

            /// `v` as the unfused op that makes it of type `t` would have stored it.
            func round(_ v: IRValue, _ t: ElementType, _ l: Lanes? = nil) -> IRValue {
                let l = l ?? one
                return t.isHalf ? l.widenF32(l.narrowF32(v, t), t) : v
            }
            func row(_ i: Int, _ r: IRValue) -> (base: IRValue, offset: IRValue) { (weights[i], b.mul(r, b.i64(k))) }
            func tokens(_ t0: IRValue, _ nt: Int) -> [IRValue] { (0..<nt).map { b.mul(b.add(t0, b.i64($0)), b.i64(k)) } }
            /// Linear i's (t, r) result: the sum plus its bias, rounded to its product type.
            func product(_ i: Int, _ sum: IRValue, row r: IRValue) -> IRValue {
                var v = sum
                if let bt = types.biases[i], let bias = biases[i] { v = b.fadd(v, one.loadF32(bt, bias, r)) }
                return round(v, types.products[i])
            }
            /// Stores result j's (t, r) value, after the residual's.
            func store(_ value: IRValue, _ j: Int, row r: IRValue, n: Int, token t: IRValue) {
                let at = b.add(b.mul(t, b.i64(n)), r)
                var v = value
                if let residual, let rt = types.residual { v = b.fadd(v, one.loadF32(rt, residual, at)) }
                one.storeF32(v, types.outs[j], outs[j], at)
            }

            if epilogue.gated {
                let n = ns[0]
                func dotTiles() {
                    LinearRows.tiles(b, lo: e.begin, hi: e.end, m: m, rows: 2) { n0, nr, t0, nt in
                        let r = (0..<nr).map { b.add(n0, b.i64($0)) }
                        let sums = rows.dot(weights: r.map { row(0, $0) } + r.map { row(1, $0) }, x: x, tokens: tokens(t0, nt), prefetchRows: nr)
                        for t in 0..<nt {
                            for j in 0..<nr {
                                let gate = product(0, sums[t][j], row: r[j]), up = product(1, sums[t][nr + j], row: r[j])
                                var v = b.fmul(round(epilogue.activate(one, gate), types.products[0]), up)
                                if types.residual != nil { v = round(v, types.gated ?? .f32) }
                                store(v, 0, row: r[j], n: n, token: b.add(t0, b.i64(t)))
                            }
                        }
                    }
                }
                guard let panels, let panel else { return dotTiles() }
                _ = Support.ifElse(b, b.icmp(LLVMIntSGE, m, b.i64(LinearPanels.minTokens)), "panels", then: {
                    // Each panel holds the same columns of the gate and the up weight; every step rounded as above.
                    panels.runPaired(x: x, m: m, lo: e.begin, hi: e.end, panel: panel, pack: { n0, count in
                        panels.pack(weights[0], n0: n0, count: count, into: panel, first: 0, width: lanes)
                        panels.pack(weights[1], n0: n0, count: count, into: panel, first: lanes, width: lanes)
                    }) { t, n0, l, gateSum, upSum in
                        var gate = gateSum, up = upSum
                        if let bt = types.biases[0], let bias = biases[0] { gate = b.fadd(gate, l.loadF32(bt, bias, n0)) }
                        if let bt = types.biases[1], let bias = biases[1] { up = b.fadd(up, l.loadF32(bt, bias, n0)) }
                        gate = round(gate, types.products[0], l); up = round(up, types.products[1], l)
                        var v = b.fmul(round(epilogue.activate(l, gate), types.products[0], l), up)
                        if types.residual != nil { v = round(v, types.gated ?? .f32, l) }
                        let at = b.add(b.mul(t, b.i64(n)), n0)
                        if let residual, let rt = types.residual { v = b.fadd(v, l.loadF32(rt, residual, at)) }
                        l.storeF32(v, types.outs[0], outs[0], at)
                    }
                    return []
                }, otherwise: { dotTiles(); return [] })
            } else {
                // Weight i owns work items [offset_i, offset_i + n_i): each weight's share of this range.
                var offset = 0
                for (i, n) in ns.enumerated() {
                    let lo = Support.smax(b, e.begin, b.i64(offset)), hi = Support.smin(b, e.end, b.i64(offset + n))
                    let base = b.i64(offset)
                    let localLo = b.sub(lo, base), localHi = Support.smax(b, b.sub(hi, base), b.sub(lo, base))
                    func dotTiles(half: Bool = false) {
                        LinearRows.tiles(b, lo: localLo, hi: localHi, m: m) { n0, nr, t0, nt in
                            let r = (0..<nr).map { b.add(n0, b.i64($0)) }
                            let sums = half ? halfRows.dot(weights: r.map { (halfWeights[i], b.mul($0, b.i64(k))) }, x: x, tokens: tokens(t0, nt),
                                                           prefetchRows: nr)
                                : rows.dot(weights: r.map { row(i, $0) }, x: x, tokens: tokens(t0, nt), prefetchRows: nr)
                            for t in 0..<nt {
                                for j in 0..<nr {
                                    var v = product(i, sums[t][j], row: r[j])
                                    // An activation's result has the product's type: rounded again only before a residual.
                                    if epilogue.unary { v = epilogue.activate(one, v); if types.residual != nil { v = round(v, types.products[0]) } }
                                    store(v, i, row: r[j], n: n, token: b.add(t0, b.i64(t)))
                                }
                            }
                        }
                    }
                    func f32Paths() {
                        guard let panels, let panel else { return dotTiles() }
                        _ = Support.ifElse(b, b.icmp(LLVMIntSGE, m, b.i64(LinearPanels.minTokens)), "panels", then: {
                            // The same bias, roundings, activation and residual as `product`/`store`, a vector of columns at a time.
                            panels.run(w: weights[i], x: x, m: m, lo: localLo, hi: localHi, panel: panel) { t, n0, c, l, sum in
                                let col = b.add(n0, b.i64(c * lanes))
                                var v = sum
                                if let bt = types.biases[i], let bias = biases[i] { v = b.fadd(v, l.loadF32(bt, bias, col)) }
                                v = round(v, types.products[i], l)
                                if epilogue.unary { v = epilogue.activate(l, v); if types.residual != nil { v = round(v, types.products[0], l) } }
                                let at = b.add(b.mul(t, b.i64(n)), col)
                                if let residual, let rt = types.residual { v = b.fadd(v, l.loadF32(rt, residual, at)) }
                                l.storeF32(v, types.outs[i], outs[i], at)
                            }
                            return []
                        }, otherwise: { dotTiles(); return [] })
                    }
                    if halfCopies {
                        _ = Support.ifElse(b, b.icmp(LLVMIntSLE, m, b.i64(halfCopyTokens)), "half", then: { dotTiles(half: true); return [] },
                                           otherwise: { f32Paths(); return [] })
                    } else {
                        f32Paths()
                    }
                    offset += n
                }
            }
        }
    }
}
