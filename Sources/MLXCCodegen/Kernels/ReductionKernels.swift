import CLLVM
import LLVMKit

/// Reductions over one run of adjacent axes: x viewed as [outer, n, inner] (the runtime merges the
/// reduced axes into n) gives out[o, i] = reduce_j x[o, j, i]. Named `Reduction…`/`reduce_…` so the
/// MoE kernels' own sums can live elsewhere without clashing.
///
/// - inner = 1 (the last axis: RMSNorm's mean, attention's `any`): one row per work item, vector
///   partial accumulators along the row, one horizontal reduction at the end.
/// - inner > 1: vectors across `inner` (contiguous), accumulated down the n rows.
///
/// Floats (`sum`, `mean`, `max`, `min`) are read as f32 (bf16/f16 widened), accumulated in f32 and
/// rounded once (max and min are exact, and NaN wins, as in the reference and torch); bools (`any`,
/// `all`) are bytes 0/1 combined with or/and. Work items: outer.
/// buffers: [x, out]; dims: [n, inner].
public enum ReductionKernels {
    public enum Kind: String, CaseIterable, Sendable {
        case sum, mean, any, all, max, min
        public var isLogical: Bool { self == .any || self == .all }
    }

    public static func reduce(_ kind: Kind, _ t: ElementType, lanes: Int) -> KernelDefinition {
        // Bytes: a full vector register of them.
        let width = kind.isLogical ? lanes * 4 : lanes
        return KernelDefinition(name: "reduce_\(kind.rawValue)_\(t.tag)_v\(width)") { e in
            let b = e.b
            let x = e.buffer(0), out = e.buffer(1)
            let n = e.dim(0), inner = e.dim(1)

            func identity(_ l: Lanes) -> IRValue {
                switch kind {
                case .all: return l.int(1, b.i8)
                case .any: return l.zero(b.i8)
                case .max: return l.f32(-.infinity)
                case .min: return l.f32(.infinity)
                case .sum, .mean: return l.zero(b.f32)
                }
            }
            func load(_ l: Lanes, _ index: IRValue) -> IRValue {
                kind.isLogical ? l.load(b.i8, x, index, passthru: identity(l)) : l.loadF32(t, x, index, passthru: identity(l))
            }
            func combine(_ p: IRValue, _ q: IRValue) -> IRValue {
                switch kind {
                case .sum, .mean: return b.fadd(p, q)
                case .any: return b.or(p, q)
                case .all: return b.and(p, q)
                case .max: return b.intrinsic("llvm.maximum", overloads: [LLVMTypeOf(p)], [p, q])
                case .min: return b.intrinsic("llvm.minimum", overloads: [LLVMTypeOf(p)], [p, q])
                }
            }
            func horizontal(_ v: IRValue) -> IRValue {
                switch kind {
                case .sum, .mean: return b.reduceAdd(v)
                case .any: return Support.intrinsic(b, "llvm.vector.reduce.or", overloads: [LLVMTypeOf(v)], [v])
                case .all: return Support.intrinsic(b, "llvm.vector.reduce.and", overloads: [LLVMTypeOf(v)], [v])
                case .max: return Support.intrinsic(b, "llvm.vector.reduce.fmaximum", overloads: [LLVMTypeOf(v)], [v])
                case .min: return Support.intrinsic(b, "llvm.vector.reduce.fminimum", overloads: [LLVMTypeOf(v)], [v])
                }
            }
            func finish(_ l: Lanes, _ v: IRValue) -> IRValue {
                kind == .mean ? b.fdiv(v, l.splat(b.sitofp(n, b.f32))) : v
            }
            func store(_ l: Lanes, _ v: IRValue, _ index: IRValue) {
                if kind.isLogical { l.store(v, b.i8, out, index) } else { l.storeF32(finish(l, v), t, out, index) }
            }

            b.loop(e.begin, e.end, "o") { o in
                let base = b.mul(o, b.mul(n, inner))
                _ = Support.ifElse(b, b.icmp(LLVMIntEQ, inner, b.i64(1)), "axis", then: {
                    // Along a contiguous row: vector partials, then a masked tail vector.
                    let l = Lanes(b, width)
                    let mainEnd = b.mul(b.sdiv(n, b.i64(width)), b.i64(width))
                    let acc = b.loop(b.i64(0), mainEnd, step: width, carrying: [identity(l)], "j") { j, acc in
                        [combine(acc[0], load(l, b.add(base, j)))]
                    }[0]
                    let remaining = b.sub(n, mainEnd)
                    let masked = Lanes(b, width, mask: Support.tailMask(b, remaining, width: width))
                    let total = combine(acc, load(masked, b.add(base, mainEnd)))
                    store(Lanes(b, 1), horizontal(total), o)
                    return []
                }, otherwise: {
                    // Across `inner` columns: each vector of columns summed down the n rows.
                    Support.vectorLoop(b, b.i64(0), inner, width: width, "i") { l, i in
                        let acc = b.loop(b.i64(0), n, carrying: [identity(l)], "j") { j, acc in
                            [combine(acc[0], load(l, b.add(base, b.add(b.mul(j, inner), i))))]
                        }[0]
                        store(l, acc, b.add(b.mul(o, inner), i))
                    }
                    return []
                })
            }
        }
    }

    /// argmax / argmin along the middle axis of x [outer, n, inner], as the reference picks: the first
    /// NaN, else the first extreme value (strict comparison). One scalar scan per output position
    /// (these feed greedy picks and MoE routing, never large); indices stored as `index` (i32, i64 or
    /// u32). buffers: [x, out]; dims: [n, inner]; work items: output positions, outer·inner.
    public static func argReduce(max: Bool, _ t: ElementType, index: ElementType) -> KernelDefinition {
        KernelDefinition(name: "reduce_arg\(max ? "max" : "min")_\(t.tag)_to_\(index.rawValue)") { e in
            let b = e.b, one = Lanes(b, 1)
            let x = e.buffer(0), out = e.buffer(1)
            let n = e.dim(0), inner = e.dim(1)
            b.loop(e.begin, e.end, "p") { p in
                let o = b.sdiv(p, inner), i = b.srem(p, inner)
                let base = b.add(b.mul(o, b.mul(n, inner)), i)
                let first = one.loadF32(t, x, base)
                let best = b.loop(b.i64(1), n, carrying: [b.i64(0), first], "j") { j, carried in
                    let v = one.loadF32(t, x, b.add(base, b.mul(j, inner)))
                    let better = b.fcmp(max ? LLVMRealOGT : LLVMRealOLT, v, carried[1])
                    let take = b.and(b.fcmp(LLVMRealORD, carried[1], carried[1]), b.or(b.fcmp(LLVMRealUNO, v, v), better))
                    return [b.select(take, j, carried[0]), b.select(take, v, carried[1])]
                }
                let storage = index.storage(b)
                let value = index == .i64 ? best[0] : b.trunc(best[0], storage)
                b.store(value, b.gep(storage, out, p), align: index.byteSize)
            }
        }
    }
}
