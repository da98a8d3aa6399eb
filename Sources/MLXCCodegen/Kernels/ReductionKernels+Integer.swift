import CLLVM
import LLVMKit

/// `max` / `min` of integers over one run of adjacent axes (x viewed as [outer, n, inner], as the
/// float reductions): exact, signed or unsigned by the element type. Programs reduce position ids
/// this way (Phi-4's longrope picks its factors from max(position_ids) + 1).
/// buffers: [x, out]; dims: [n, inner]; work items: outer.
extension ReductionKernels {
    public static func integerExtremum(max: Bool, _ t: ElementType, lanes: Int) -> KernelDefinition? {
        guard !t.isFloat, t != .bool else { return nil }
        let width = Swift.max(1, lanes * 4 / t.byteSize)
        let name = "reduce_\(max ? "max" : "min")_\(t.rawValue)_v\(width)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), out = e.buffer(1)
            let n = e.dim(0), inner = e.dim(1)
            let storage = t.storage(b)
            let bits = t.byteSize * 8
            // The identity: the type's least (max) or greatest (min) value.
            let identityBits: Int
            if t.isSigned {
                identityBits = max ? Int.min >> (64 - bits) : Int.max >> (64 - bits)
            } else {
                identityBits = max ? 0 : -1   // all ones
            }
            let intrinsic = (t.isSigned ? "s" : "u") + (max ? "max" : "min")
            func combine(_ p: IRValue, _ q: IRValue) -> IRValue { b.intrinsic("llvm.\(intrinsic)", overloads: [LLVMTypeOf(p)], [p, q]) }
            func horizontal(_ v: IRValue) -> IRValue {
                Support.intrinsic(b, "llvm.vector.reduce.\(intrinsic)", overloads: [LLVMTypeOf(v)], [v])
            }
            b.loop(e.begin, e.end, "o") { o in
                let base = b.mul(o, b.mul(n, inner))
                _ = Support.ifElse(b, b.icmp(LLVMIntEQ, inner, b.i64(1)), "axis", then: {
                    let l = Lanes(b, width)
                    let identity = l.int(identityBits, storage)
                    let mainEnd = b.mul(b.sdiv(n, b.i64(width)), b.i64(width))
                    let acc = b.loop(b.i64(0), mainEnd, step: width, carrying: [identity], "j") { j, acc in
                        [combine(acc[0], l.load(storage, x, b.add(base, j)))]
                    }[0]
                    let masked = Lanes(b, width, mask: Support.tailMask(b, b.sub(n, mainEnd), width: width))
                    let total = combine(acc, masked.load(storage, x, b.add(base, mainEnd), passthru: identity))
                    Lanes(b, 1).store(horizontal(total), storage, out, o)
                    return []
                }, otherwise: {
                    Support.vectorLoop(b, b.i64(0), inner, width: width, "i") { l, i in
                        let acc = b.loop(b.i64(0), n, carrying: [l.int(identityBits, storage)], "j") { j, acc in
                            [combine(acc[0], l.load(storage, x, b.add(base, b.add(b.mul(j, inner), i)), passthru: l.int(identityBits, storage)))]
                        }[0]
                        l.store(acc, storage, out, b.add(b.mul(o, inner), i))
                    }
                    return []
                })
            }
        }
    }
}
