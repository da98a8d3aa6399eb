import CLLVM
import LLVMKit

/// Moving whole rows (`inner` contiguous elements) between tensors viewed as [outer, n, inner]:
/// a gather of rows by index (`take` along an axis: embedding lookups) and a scatter of rows into
/// a buffer in place (`index_copy`, `slice_update` with step 1, `update_cache`: KV-cache writes
/// that touch only the new rows). Elements are moved as integers of their byte size, a full
/// vector register at a time. Work items are the rows moved, outer × m.
public enum RowCopyKernels {
    /// Where a scatter's row positions come from.
    public enum Positions: Sendable, Equatable {
        /// An index tensor (i32 or i64; negative indices count from the end).
        case indices(ElementType)
        /// Consecutive rows from `dims[4]` on.
        case consecutive
    }

    static func rowPosition(_ b: Builder, _ positions: Positions, _ indexBuffer: IRValue?, _ j: IRValue, n: IRValue, start: IRValue?) -> IRValue {
        switch positions {
        case .consecutive: return b.add(start!, j)
        case .indices(let t):
            var p = b.load(t.storage(b), b.gep(t.storage(b), indexBuffer!, j), align: t.byteSize)
            if t != .i64 { p = t.isSigned ? b.sext(p, b.i64) : b.zext(p, b.i64) }
            // The runtime has checked every index against n.
            return b.select(b.icmp(LLVMIntSLT, p, b.i64(0)), b.add(p, n), p)
        }
    }

    static func copyRow(_ b: Builder, element: IRType, width: Int, from src: IRValue, _ srcStart: IRValue,
                        to dst: IRValue, _ dstStart: IRValue, count: IRValue) {
        Support.vectorLoop(b, b.i64(0), count, width: width, "e") { l, i in
            l.store(l.load(element, src, b.add(srcStart, i)), element, dst, b.add(dstStart, i))
        }
    }

    /// `out[o, j, :] = x[o, index[j], :]`. buffers: [x, index, out]; dims: [outer, n, inner, m].
    public static func gather(byteSize: Int, index: ElementType, lanes: Int) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        return KernelDefinition(name: "gather_rows_b\(byteSize * 8)_\(index.rawValue)index_v\(width)") { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let x = e.buffer(0), indexBuffer = e.buffer(1), out = e.buffer(2)
            let n = e.dim(1), inner = e.dim(2), m = e.dim(3)
            b.loop(e.begin, e.end, "r") { r in
                let o = b.sdiv(r, m), j = b.srem(r, m)
                let p = rowPosition(b, .indices(index), indexBuffer, j, n: n, start: nil)
                copyRow(b, element: element, width: width, from: x, b.mul(b.add(b.mul(o, n), p), inner),
                        to: out, b.mul(r, inner), count: inner)
            }
        }
    }

    /// `out[o, position(j), :] = update[o, j, :]`, written into the destination's own buffer (the
    /// runtime passes the same pointer for dst and out; dst is never read). Update rows are read at
    /// (o / H)·sB + (o mod H)·sH + j·sT, so a [B, T, H, D] update can fill a [B, H, S, D] cache
    /// directly (the transpose folded in). buffers: [dst, update, index?, (skip unread scalars), out];
    /// dims: [outer, n, inner, m, start, H, sB, sH, sT].
    public static func scatter(byteSize: Int, positions: Positions, lanes: Int, skip: Int = 0) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        let how: String
        switch positions {
        case .indices(let t): how = "\(t.rawValue)index"
        case .consecutive: how = "consecutive"
        }
        return KernelDefinition(name: "scatter_rows_inplace_b\(byteSize * 8)_\(how)_v\(width)" + (skip > 0 ? "_skip\(skip)" : "")) { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let hasIndex = positions != .consecutive
            let update = e.buffer(1), indexBuffer = hasIndex ? e.buffer(2) : nil, out = e.buffer((hasIndex ? 3 : 2) + skip)
            let n = e.dim(1), inner = e.dim(2), m = e.dim(3)
            let start = hasIndex ? nil : e.dim(4)
            let heads = e.dim(5), sB = e.dim(6), sH = e.dim(7), sT = e.dim(8)
            b.loop(e.begin, e.end, "r") { r in
                let o = b.sdiv(r, m), j = b.srem(r, m)
                let p = rowPosition(b, positions, indexBuffer, j, n: n, start: start)
                let from = b.add(b.add(b.mul(b.sdiv(o, heads), sB), b.mul(b.srem(o, heads), sH)), b.mul(j, sT))
                copyRow(b, element: element, width: width, from: update, from,
                        to: out, b.mul(b.add(b.mul(o, n), p), inner), count: inner)
            }
        }
    }

    /// `concatenate` of `parts` tensors along an axis: per outer row, part k contributes `dims[1 + k]`
    /// contiguous elements. buffers: [parts…, out]; dims: [outer, chunk_0, …]; work items: outer rows.
    public static func concatenate(parts: Int, byteSize: Int, lanes: Int) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        return KernelDefinition(name: "concatenate\(parts)_b\(byteSize * 8)_v\(width)") { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let out = e.buffer(parts)
            let chunks = (0..<parts).map { e.dim(1 + $0) }
            let total = chunks.dropFirst().reduce(chunks[0]) { b.add($0, $1) }
            b.loop(e.begin, e.end, "o") { o in
                var at = b.mul(o, total)
                for k in 0..<parts {
                    copyRow(b, element: element, width: width, from: e.buffer(k), b.mul(o, chunks[k]), to: out, at, count: chunks[k])
                    at = b.add(at, chunks[k])
                }
            }
        }
    }

    /// `split` along an axis, concatenate's inverse: per outer row, result k takes the next `dims[1 + k]`
    /// contiguous elements. buffers: [x, (skip unread scalars), outs…]; dims: [outer, chunk_0, …];
    /// work items: outer rows.
    public static func split(parts: Int, byteSize: Int, lanes: Int, skip: Int = 0) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        return KernelDefinition(name: "split\(parts)_b\(byteSize * 8)_v\(width)" + (skip > 0 ? "_skip\(skip)" : "")) { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let x = e.buffer(0)
            let chunks = (0..<parts).map { e.dim(1 + $0) }
            let total = chunks.dropFirst().reduce(chunks[0]) { b.add($0, $1) }
            b.loop(e.begin, e.end, "o") { o in
                var at = b.mul(o, total)
                for k in 0..<parts {
                    copyRow(b, element: element, width: width, from: x, at, to: e.buffer(1 + skip + k), b.mul(o, chunks[k]), count: chunks[k])
                    at = b.add(at, chunks[k])
                }
            }
        }
    }
}
