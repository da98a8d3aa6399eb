import CLLVM
import LLVMKit

/// sort / argsort (and partition / arg_partition, which the reference defines as the full sort)
/// along one axis of small lanes (MoE routers: top-k over a few experts, tokens by expert).
///
/// Each element's position in the sorted lane is its rank: the number of elements ordered before
/// it, where a is before b when a < b, or they tie and a comes first. That is the reference's
/// stable ascending order with NaN last (NaNs tie with each other; -0 ties with +0); it needs no
/// scratch and no data-dependent branches, at size² compares per lane, so the lowering only
/// takes short lanes.
///
/// dims: [outer, size, inner]; buffers: [x, `skip` unread scalars (a partition's run-time kth), out];
/// work items: lanes (outer · inner).
public enum SortKernels {
    /// Sortable element types: floats (compared as f32, exact for bf16/f16) and integers.
    public static func supports(_ t: ElementType) -> Bool { t != .bool && t != .f64 }

    /// `indices`: the result is the permutation (argsort), stored as that integer type; nil: the sorted values.
    public static func sort(_ t: ElementType, indices: ElementType?, lanes: Int, skip: Int = 0) -> KernelDefinition {
        let name = (indices.map { "argsort_\(t.tag)_to_\($0.rawValue)" } ?? "sort_\(t.tag)") + (skip > 0 ? "_skip\(skip)" : "")
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), out = e.buffer(1 + skip)
            let size = e.dim(1), inner = e.dim(2)
            let storage = t.storage(b)
            let one = Lanes(b, 1)
            func load(_ index: IRValue) -> IRValue {
                t.isFloat ? one.loadF32(t, x, index) : b.load(storage, b.gep(storage, x, index), align: t.byteSize)
            }
            /// a strictly before b in value (NaN after every number).
            func less(_ a: IRValue, _ c: IRValue) -> IRValue {
                if t.isFloat {
                    let ordered = b.fcmp(LLVMRealOLT, a, c)
                    let nanLast = b.and(b.fcmp(LLVMRealORD, a, a), b.fcmp(LLVMRealUNO, c, c))
                    return b.or(ordered, nanLast)
                }
                let unsigned = [.u8, .u32].contains(t)
                return b.icmp(unsigned ? LLVMIntULT : LLVMIntSLT, a, c)
            }
            b.loop(e.begin, e.end, "lane") { lane in
                let base = b.add(b.mul(b.mul(b.sdiv(lane, inner), size), inner), b.srem(lane, inner))
                b.loop(b.i64(0), size, "j") { j in
                    let xj = load(b.add(base, b.mul(j, inner)))
                    let rank = b.loop(b.i64(0), size, carrying: [b.i64(0)], "p") { p, acc in
                        let xp = load(b.add(base, b.mul(p, inner)))
                        let before = b.or(less(xp, xj), b.and(b.icmp(LLVMIntSLT, p, j), b.icmp(LLVMIntEQ, less(xj, xp), LLVMConstInt(b.i1, 0, 0))))
                        return [b.add(acc[0], b.zext(before, b.i64))]
                    }[0]
                    let at = b.add(base, b.mul(rank, inner))
                    if let indices {
                        let s = indices.storage(b)
                        b.store(indices == .i64 ? j : b.trunc(j, s), b.gep(s, out, at), align: indices.byteSize)
                    } else {
                        let raw = b.load(storage, b.gep(storage, x, b.add(base, b.mul(j, inner))), align: t.byteSize)
                        b.store(raw, b.gep(storage, out, at), align: t.byteSize)
                    }
                }
            }
        }
    }
}
