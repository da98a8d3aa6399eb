import CLLVM
import LLVMKit

/// `slice_update` into a value that is still read elsewhere (not writable in place): the result is a new tensor,
/// dst's rows with rows [start, start + m) replaced by update's — viewed as [outer, n, inner], row j of block o
/// comes from update[o, j − start] inside the slice and from dst[o, j] outside it. Elements move as integers of
/// their byte size. buffers: [dst, update, (skip unread scalars), out]; dims: [outer, n, inner, m, start];
/// work items: outer × n rows.
public enum SpliceKernels {
    public static func rows(byteSize: Int, lanes: Int, skip: Int = 0) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        return KernelDefinition(name: "splice_rows_b\(byteSize * 8)_v\(width)" + (skip > 0 ? "_skip\(skip)" : "")) { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let dst = e.buffer(0), update = e.buffer(1), out = e.buffer(2 + skip)
            let n = e.dim(1), inner = e.dim(2), m = e.dim(3), start = e.dim(4)
            b.loop(e.begin, e.end, "r") { r in
                let o = b.sdiv(r, n), j = b.srem(r, n)
                let k = b.sub(j, start)
                let inside = b.and(b.icmp(LLVMIntSGE, k, b.i64(0)), b.icmp(LLVMIntSLT, k, m))
                let source = b.select(inside, update, dst)
                let from = b.select(inside, b.mul(b.add(b.mul(o, m), k), inner), b.mul(r, inner))
                RowCopyKernels.copyRow(b, element: element, width: width, from: source, from, to: out, b.mul(r, inner), count: inner)
            }
        }
    }
}
