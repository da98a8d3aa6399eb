import CLLVM
import LLVMKit

/// MLX-layout `conv1d` (cross-correlation, symmetric zero padding) as direct loops, no im2col:
/// x [N, L, C] contiguous, weight w[oc, k, c] (O × K × C/groups, a constant) read at
/// oc·sO + k·sK + c·sC, so a PyTorch [O, C, K] weight seen through its transpose is read as stored
/// (sC = K: gathers; the MLX layout has sC = 1: vector loads). out [N, L_out, O].
///
/// Per output position, blocks of `block` output channels share each vector of x over the channels
/// of their group (register blocking); taps that fall into the padding are skipped. The shape
/// parameters are compile-time constants (the weight's shape and the op's attributes); x's length
/// and batch are run-time. Computed in f32 (bf16/f16 widened), rounded once on the store.
/// Work items: output positions N × L_out. buffers: [x, w, out]; dims: [L, L_out].
public struct Conv1DShape: Sendable, Equatable {
    public var kernel: Int, groupChannels: Int, outChannels: Int, groups: Int
    public var stride: Int, padding: Int, dilation: Int
    /// Weight strides (elements) of oc, k and c.
    public var weightStrides: [Int]

    public init(kernel: Int, groupChannels: Int, outChannels: Int, groups: Int, stride: Int, padding: Int, dilation: Int,
                weightStrides: [Int]) {
        self.kernel = kernel; self.groupChannels = groupChannels; self.outChannels = outChannels; self.groups = groups
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.weightStrides = weightStrides
    }

    var name: String {
        "k\(kernel)_c\(groupChannels * groups)_o\(outChannels)_g\(groups)_s\(stride)_p\(padding)_d\(dilation)_w\(weightStrides.map(String.init).joined(separator: "x"))"
    }
}

public enum ConvKernels {
    static let block = 4

    public static func conv1d(_ s: Conv1DShape, _ t: ElementType, weight wt: ElementType, lanes: Int) -> KernelDefinition {
        let tag = wt == t ? t.tag : "\(t.tag)_w\(wt.tag)"
        return KernelDefinition(name: "conv1d_\(tag)_\(s.name)_v\(lanes)") { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1), out = e.buffer(2)
            let length = e.dim(0), outLength = e.dim(1)
            let c = s.groupChannels * s.groups, perGroup = s.outChannels / s.groups
            let (sO, sK, sC) = (s.weightStrides[0], s.weightStrides[1], s.weightStrides[2])
            let cMain = s.groupChannels / lanes * lanes, cTail = s.groupChannels - cMain

            func loadW(_ l: Lanes, _ index: IRValue) -> IRValue {
                if sC == 1 { return l.loadF32(wt, w, index) }
                if l.mask == nil { return l.widenF32(l.loadStrided(wt.storage(b), w, index, stride: b.i64(sC)), wt) }
                // A masked tail of a strided weight: lane by lane (the tail is short and static).
                var v = l.zero(b.f32)
                for lane in 0..<(cTail) {
                    let one = Lanes(b, 1).loadF32(wt, w, b.add(index, b.i64(lane * sC)))
                    v = b.insert(v, one, lane)
                }
                return v
            }

            b.loop(e.begin, e.end, "p") { p in
                let nb = b.sdiv(p, outLength), tOut = b.srem(p, outLength)
                let origin = b.sub(b.mul(tOut, b.i64(s.stride)), b.i64(s.padding))
                /// Output channels oc0..<oc0+nr of group g at this position.
                func channels(g: IRValue, oc0: IRValue, nr: Int) {
                    let full = Lanes(b, lanes)
                    var accs = [IRValue](repeating: full.zero(b.f32), count: nr)
                    accs = b.loop(b.i64(0), b.i64(s.kernel), carrying: accs, "tap") { k, acc in
                        let at = b.add(origin, b.mul(k, b.i64(s.dilation)))
                        let inside = b.and(b.icmp(LLVMIntSGE, at, b.i64(0)), b.icmp(LLVMIntSLT, at, length))
                        return Support.ifElse(b, inside, "in", then: {
                            let xBase = b.add(b.mul(b.add(b.mul(nb, length), at), b.i64(c)), b.mul(g, b.i64(s.groupChannels)))
                            let wBase = (0..<nr).map { r in b.add(b.mul(b.add(oc0, b.i64(r)), b.i64(sO)), b.mul(k, b.i64(sK))) }
                            var next = acc
                            if cMain > 0 {
                                next = b.loop(b.i64(0), b.i64(cMain), step: lanes, carrying: next, "c") { ci, a in
                                    let xv = full.loadF32(t, x, b.add(xBase, ci))
                                    return (0..<nr).map { r in b.fma(xv, loadW(full, b.add(wBase[r], b.mul(ci, b.i64(sC)))), a[r]) }
                                }
                            }
                            if cTail > 0 {
                                let tail = Lanes(b, lanes, mask: Support.tailMask(b, b.i64(cTail), width: lanes))
                                let xv = tail.loadF32(t, x, b.add(xBase, b.i64(cMain)))
                                next = (0..<nr).map { r in b.fma(xv, loadW(tail, b.add(wBase[r], b.i64(cMain * sC))), next[r]) }
                            }
                            return next
                        }, otherwise: { acc })
                    }
                    let scalar = Lanes(b, 1)
                    for r in 0..<nr {
                        scalar.storeF32(b.reduceAdd(accs[r]), t, out, b.add(b.mul(p, b.i64(s.outChannels)), b.add(oc0, b.i64(r))))
                    }
                }
                let blocks = perGroup / block
                b.loop(b.i64(0), b.i64(s.groups), "g") { g in
                    let first = b.mul(g, b.i64(perGroup))
                    if blocks > 0 {
                        b.loop(b.i64(0), b.i64(blocks), "ob") { ob in channels(g: g, oc0: b.add(first, b.mul(ob, b.i64(block))), nr: block) }
                    }
                    for r in (blocks * block)..<perGroup { channels(g: g, oc0: b.add(first, b.i64(r)), nr: 1) }
                }
            }
        }
    }
}
