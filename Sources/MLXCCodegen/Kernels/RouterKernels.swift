import CLLVM
import LLVMKit

/// The small ops around an MoE router, with the reference executor's semantics: picking along an
/// axis by index (take_along_axis), summing over an axis, and integer floor division.
public enum RouterKernels {
    /// `out[o, i, j] = x[o, idx[o, i, j], j]` (negative indices count from the end; the runtime
    /// checks the range first). Elements are moved as raw bits.
    /// dims: [n (x's axis size), m (indices' axis size), inner]; buffers: [x, indices, out];
    /// work items: output elements.
    public static func takeAlongAxis(byteSize: Int, index: ElementType) -> KernelDefinition {
        let t = ElementType.bits(byteSize)
        return KernelDefinition(name: "take_along_axis_b\(byteSize * 8)_\(index.rawValue)index") { e in
            let b = e.b
            let x = e.buffer(0), indices = e.buffer(1), out = e.buffer(2)
            let n = e.dim(0), m = e.dim(1), inner = e.dim(2)
            let storage = t.storage(b), indexStorage = index.storage(b)
            b.loop(e.begin, e.end, "i") { flat in
                let raw = b.load(indexStorage, b.gep(indexStorage, indices, flat), align: index.byteSize)
                var p = index == .i64 ? raw : (index == .u32 ? b.zext(raw, b.i64) : b.sext(raw, b.i64))
                p = b.select(b.icmp(LLVMIntSLT, p, b.i64(0)), b.add(p, n), p)
                let j = b.srem(flat, inner), o = b.sdiv(flat, b.mul(m, inner))
                let source = b.add(b.mul(b.add(b.mul(o, n), p), inner), j)
                b.store(b.load(storage, b.gep(storage, x, source), align: byteSize), b.gep(storage, out, flat), align: byteSize)
            }
        }
    }

    /// Integer floor division (toward −∞, Python/PyTorch) on stored integers: `x / −1` negates
    /// with wrap-around (min stays min, as the reference's wrap to the dtype does); the lowering
    /// only passes divisors without zeros.
    public static func floorDivide(_ t: ElementType, _ l: Lanes, _ x: IRValue, _ y: IRValue) -> IRValue {
        let b = l.b
        if t == .f32 {
            // The quotient rounded to f32, then floored: the reference's definition (MLX's floor(divide(a, b))).
            return l.call("llvm.floor", [b.fdiv(x, y)])
        }
        let storage = t.storage(b)
        let zero = l.zero(storage)
        if [.u8, .u32, .bool].contains(t) {
            let safe = b.select(b.icmp(LLVMIntEQ, y, zero), l.int(1, storage), y)
            return LLVMBuildUDiv(b.ref, x, safe, "")!
        }
        let minusOne = l.int(-1, storage)
        let trivial = b.or(b.icmp(LLVMIntEQ, y, minusOne), b.icmp(LLVMIntEQ, y, zero))
        let divisor = b.select(trivial, l.int(1, storage), y)
        let q = b.sdiv(x, divisor), r = b.srem(x, divisor)
        let fix = b.and(b.icmp(LLVMIntNE, r, zero), b.icmp(LLVMIntNE, b.icmp(LLVMIntSLT, r, zero), b.icmp(LLVMIntSLT, divisor, zero)))
        let floored = b.select(fix, b.sub(q, l.int(1, storage)), q)
        return b.select(b.icmp(LLVMIntEQ, y, minusOne), b.sub(zero, x), floored)
    }

    /// Integer (and f32) floor_divide as a strided map (operands broadcast by strides).
    public static func floorDivide(_ t: ElementType, lanes: Int) -> KernelDefinition {
        let access: [StridedMapKernels.Access] = [.contiguous, .broadcast]
        return StridedMapKernels.map(name: "floor_divide_\(t.rawValue)_v\(lanes)", inputs: [t, t], output: t,
                                     access: [access, access], lanes: lanes) { l, v in floorDivide(t, l, v[0], v[1]) }
    }
}
