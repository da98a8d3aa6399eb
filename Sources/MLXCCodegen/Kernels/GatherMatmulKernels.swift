import CLLVM
import LLVMKit

/// MoE expert matmuls (MLX `gather_qmm`, `gather_mm`): entry e of the broadcast index batch B
/// multiplies matrix lhs[e] of x ([..., M, K]) with expert matrix rhs[e] of the weights, so only
/// the selected experts' weights are read. The kernels see "tokens": the E·M rows of the result,
/// token t = (entry t / M, row t % M), reading x row lhs[e]·M + t % M and expert rhs[e].
///
/// Tokens are walked in order; when the next `tokenBlock` tokens share an expert (prefill with
/// tokens sorted by expert, or M > 1) they are computed together and every weight element read is
/// used for all of them; otherwise one token at a time (decode: one token, top-k experts).
///
/// Index arrays are read through strides over B (rank ≤ 4, padded in front): an absent index is
/// "the batch position itself", i.e. the strided offset is the value. Index values are checked by
/// the runtime before the launch (the reference reports bad ones).
///
/// dims: [T = E·M, M, B sizes ×4 (outermost first), lhs strides ×4, rhs strides ×4].
public enum GatherMatmulKernels {
    public static let batchRank = 4
    public static let dimCount = 2 + 3 * batchRank

    /// The index operands: element type of each present array (nil: absent).
    public struct Indices {
        public var lhs: ElementType?
        public var rhs: ElementType?
        public init(lhs: ElementType?, rhs: ElementType?) { self.lhs = lhs; self.rhs = rhs }

        var tag: String { "l\(lhs?.rawValue ?? "none")_r\(rhs?.rawValue ?? "none")" }
        var count: Int { (lhs == nil ? 0 : 1) + (rhs == nil ? 0 : 1) }
        public static func supported(_ t: ElementType) -> Bool { [.i32, .u32, .i64].contains(t) }
    }

    /// Per-token addressing emitted once per kernel.
    struct Tokens {
        let b: Builder
        let count: IRValue, m: IRValue
        let sizes: [IRValue], lhsStrides: [IRValue], rhsStrides: [IRValue]
        let lhs: (IRValue, ElementType)?, rhs: (IRValue, ElementType)?

        init(_ e: KernelEmitter, indices: Indices, firstIndexBuffer: Int) {
            b = e.b
            count = e.dim(0)
            m = e.dim(1)
            let r = GatherMatmulKernels.batchRank
            sizes = (0..<r).map { e.dim(2 + $0) }
            lhsStrides = (0..<r).map { e.dim(2 + r + $0) }
            rhsStrides = (0..<r).map { e.dim(2 + 2 * r + $0) }
            var next = firstIndexBuffer
            func take(_ t: ElementType?) -> (IRValue, ElementType)? {
                guard let t else { return nil }
                defer { next += 1 }
                return (e.buffer(next), t)
            }
            lhs = take(indices.lhs)
            rhs = take(indices.rhs)
        }

        /// The value at `offset` of an index array (or the offset itself when absent), as i64.
        private func value(_ array: (IRValue, ElementType)?, _ offset: IRValue) -> IRValue {
            guard let (base, t) = array else { return offset }
            let raw = b.load(t.storage(b), b.gep(t.storage(b), base, offset), align: t.byteSize)
            switch t {
            case .i64: return raw
            case .u32: return b.zext(raw, b.i64)
            default: return b.sext(raw, b.i64)
            }
        }

        /// (x matrix, expert) of entry `e`.
        private func entry(_ e: IRValue) -> (x: IRValue, w: IRValue) {
            var rest = e, lo = b.i64(0), ro = b.i64(0)
            for d in stride(from: sizes.count - 1, through: 0, by: -1) {
                let coord = d == 0 ? rest : b.srem(rest, sizes[d])
                if d > 0 { rest = b.sdiv(rest, sizes[d]) }
                lo = b.add(lo, b.mul(coord, lhsStrides[d]))
                ro = b.add(ro, b.mul(coord, rhsStrides[d]))
            }
            return (value(lhs, lo), value(rhs, ro))
        }

        /// Token t's row of x (in rows of K) and its expert.
        func token(_ t: IRValue) -> (xRow: IRValue, expert: IRValue) {
            let (x, w) = entry(b.sdiv(t, m))
            return (b.add(b.mul(x, m), b.srem(t, m)), w)
        }

        /// Walks the tokens: `block(t0, nt, expert)` for runs of `tokenBlock` tokens sharing an
        /// expert, else one token at a time. Token rows are re-derived inside `block`.
        func walk(tokenBlock tb: Int, _ block: (IRValue, Int, IRValue) -> Void) {
            walk(tokenBlocks: tb > 1 ? [tb, 1] : [1], block)
        }

        /// Walks the tokens in runs sharing an expert: at each token, the largest of `tiers`
        /// (descending, ending in 1) whose tokens all read the same expert becomes one
        /// `block(t0, nt, expert)` — so a run of 13 sorted tokens with tiers [8, 4, 2, 1] is
        /// 8 + 4 + 1, not 8 + 1 + 1 + 1 + 1 + 1.
        func walk(tokenBlocks tiers: [Int], _ block: (IRValue, Int, IRValue) -> Void) {
            precondition(tiers.last == 1 && zip(tiers, tiers.dropFirst()).allSatisfy { $0 > $1 })
            let f = b.currentFunction
            let pre = b.currentBlock
            let header = b.block(f, "tok.header"), body = b.block(f, "tok.body"), exit = b.block(f, "tok.exit")
            b.br(header)
            b.position(at: header)
            let t = LLVMBuildPhi(b.ref, b.i64, "t")!
            b.condBr(b.icmp(LLVMIntSLT, t, count), body, exit)
            b.position(at: body)
            let expert = token(t).expert
            // run[j]: tokens t…t+j are all in range and read `expert` (indices past the end are
            // clamped so nothing out of range is read).
            var run = [LLVMConstInt(b.i1, 1, 0)!]
            let last = b.sub(count, b.i64(1))
            for j in 1..<tiers[0] {
                let tj = Support.smin(b, b.add(t, b.i64(j)), last)
                let same = b.and(b.icmp(LLVMIntSLT, b.add(t, b.i64(j)), count), b.icmp(LLVMIntEQ, token(tj).expert, expert))
                run.append(b.and(run[j - 1], same))
            }
            func tier(_ i: Int) -> IRValue {
                let nt = tiers[i]
                if nt == 1 {
                    block(t, 1, expert)
                    return b.add(t, b.i64(1))
                }
                return Support.ifElse(b, run[nt - 1], "run\(nt)", then: {
                    block(t, nt, expert)
                    return [b.add(t, b.i64(nt))]
                }, otherwise: { [tier(i + 1)] })[0]
            }
            let next = tier(0)
            let latch = b.currentBlock
            b.br(header)
            var values: [IRValue?] = [b.i64(0), next]
            var blocks: [LLVMBasicBlockRef?] = [pre, latch]
            values.withUnsafeMutableBufferPointer { v in
                blocks.withUnsafeMutableBufferPointer { bb in LLVMAddIncoming(t, v.baseAddress, bb.baseAddress, 2) }
            }
            b.position(at: exit)
        }
    }
}
