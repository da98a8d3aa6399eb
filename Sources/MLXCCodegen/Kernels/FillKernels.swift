import CLLVM
import LLVMKit

/// Tensors made from scalars: `full`/`full_like` (one bit pattern repeated) and `arange`.
/// Work items are output elements.
public enum FillKernels {
    /// Every element set to the `byteSize`-byte pattern in `dims[0]` (the runtime rounds the value
    /// to the dtype). buffers: [(skip unread scalars), out].
    public static func fill(byteSize: Int, lanes: Int, skip: Int = 0) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        return KernelDefinition(name: "fill_b\(byteSize * 8)_v\(width)" + (skip > 0 ? "_skip\(skip)" : "")) { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let out = e.buffer(skip)
            let pattern = byteSize == 8 ? e.dim(0) : b.trunc(e.dim(0), element)
            Support.vectorLoop(b, e.begin, e.end, width: width, "i") { l, i in
                l.store(l.splat(pattern), element, out, i)
            }
        }
    }

    /// `out[i] = start + i·step` computed in i64, then cast to `dtype`.
    /// buffers: [(skip unread scalars), out]; dims: [start, step].
    public static func arange(_ dtype: ElementType, lanes: Int, skip: Int = 0) -> KernelDefinition {
        KernelDefinition(name: "arange_\(dtype.rawValue)_v\(lanes)" + (skip > 0 ? "_skip\(skip)" : "")) { e in
            let b = e.b
            let out = e.buffer(skip)
            let start = e.dim(0), step = e.dim(1)
            Support.vectorLoop(b, e.begin, e.end, width: lanes, "i") { l, i in
                let index = l.isScalar ? i : b.add(l.splat(i), b.constVector((0..<l.width).map { b.i64($0) }))
                let v = b.add(l.splat(start), b.mul(index, l.splat(step)))
                l.store(ElementwiseKernels.cast(l, v, from: .i64, to: dtype), dtype.storage(b), out, i)
            }
        }
    }
}
