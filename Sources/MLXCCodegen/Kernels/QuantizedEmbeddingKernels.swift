import CLLVM
import LLVMKit

/// ExecuTorch's `quantized_decomposed::embedding_{byte,4bit,2bit}` (`--qembedding 8w|4w`): the rows
/// of the tokens' indices gathered from a packed integer table and dequantized on the way,
/// `out[t, j] = (q[index[t], j] − zero[index[t], g]) · scale[index[t], g]`, g = j / (D / G).
/// Codes: 8-bit signed bytes; 4-bit two per byte with the even column in the HIGH nibble, minus 8;
/// 2-bit four per byte, column 0 in bits 0–1, minus 2 (the reference's reading of the packing).
/// The subtraction is exact (integer codes and zero points) and the product is rounded once to f32
/// (then once more to bf16/f16 for a half-precision result), as the reference rounds its Double.
/// buffers: [weight (bytes), scales, zero points?, index (i32/i64), out]; dims: [D, G, packed row
/// bytes]; work items: tokens. The runtime has checked every index against the table's rows.
public enum QuantizedEmbeddingKernels {
    public static func supports(bits: Int) -> Bool { [8, 4, 2].contains(bits) }

    /// `params`: the scales' dtype; `zeros`: the zero points' dtype (nil: none); `out`: the result's.
    public static func rows(bits: Int, params: ElementType, zeros: ElementType?, index: ElementType, out outType: ElementType,
                            lanes: Int) -> KernelDefinition {
        precondition(supports(bits: bits) && ElementType.activations.contains(params) && ElementType.activations.contains(outType))
        let zeroTag = zeros.map { "_z\($0.rawValue)" } ?? ""
        // 8-bit codes load a vector of bytes; packed 4/2-bit codes are unpacked one at a time.
        let width = bits == 8 ? lanes : 1
        return KernelDefinition(name: "quantized_embedding_w\(bits)_\(params.tag)params\(zeroTag)_\(index.rawValue)index_\(outType.tag)_v\(width)") { e in
            let b = e.b
            let w = e.buffer(0), scales = e.buffer(1)
            let zeroBuffer = zeros == nil ? nil : e.buffer(2)
            let indexBuffer = e.buffer(zeros == nil ? 2 : 3), out = e.buffer(zeros == nil ? 3 : 4)
            let dim = e.dim(0), groups = e.dim(1), packed = e.dim(2)
            let groupSize = b.sdiv(dim, groups)
            let one = Lanes(b, 1)
            func scalar(_ t: ElementType, _ base: IRValue, _ i: IRValue) -> IRValue {
                if t.isFloat { return one.loadF32(t, base, i) }
                let v = b.load(t.storage(b), b.gep(t.storage(b), base, i), align: t.byteSize)
                return t.isSigned ? b.sitofp(v, b.f32) : b.uitofp(v, b.f32)
            }
            b.loop(e.begin, e.end, "t") { t in
                var row = b.load(index.storage(b), b.gep(index.storage(b), indexBuffer, t), align: index.byteSize)
                if index != .i64 { row = b.sext(row, b.i64) }
                b.loop(b.i64(0), groups, "g") { g in
                    let p = b.add(b.mul(row, groups), g)
                    let s = scalar(params, scales, p)
                    let z = zeros.map { scalar($0, zeroBuffer!, p) }
                    let start = b.mul(g, groupSize)
                    Support.vectorLoop(b, start, b.add(start, groupSize), width: width, "j") { l, j in
                        let code: IRValue
                        switch bits {
                        case 8:
                            code = b.sitofp(l.load(b.i8, w, b.add(b.mul(row, packed), j)), l.type(b.f32))
                        case 4:
                            let byte = b.load(b.i8, b.gep(b.i8, w, b.add(b.mul(row, packed), b.sdiv(j, b.i64(2)))), align: 1)
                            let odd = b.trunc(b.srem(j, b.i64(2)), b.i8)
                            let shift = b.mul(b.sub(b.i8(1), odd), b.i8(4))   // even column: high nibble
                            let nibble = b.and(b.lshr(byte, shift), b.i8(0xF))
                            code = exactSubtract(b, b.uitofp(nibble, b.f32), b.f32(8))
                        default:
                            let byte = b.load(b.i8, b.gep(b.i8, w, b.add(b.mul(row, packed), b.sdiv(j, b.i64(4)))), align: 1)
                            let shift = b.mul(b.trunc(b.srem(j, b.i64(4)), b.i8), b.i8(2))
                            code = exactSubtract(b, b.uitofp(b.and(b.lshr(byte, shift), b.i8(3)), b.f32), b.f32(2))
                        }
                        let centered = z.map { exactSubtract(b, code, l.splat($0)) } ?? code
                        let value = exactMultiply(b, centered, l.splat(s))
                        l.storeF32(value, outType, out, b.add(b.mul(t, dim), j))
                    }
                }
            }
        }
    }

    /// A product rounded once (no fast-math flags: LLVM may not distribute it over the subtraction).
    static func exactMultiply(_ b: Builder, _ x: IRValue, _ y: IRValue) -> IRValue { LLVMBuildFMul(b.ref, x, y, "")! }

    static func exactSubtract(_ b: Builder, _ x: IRValue, _ y: IRValue) -> IRValue { LLVMBuildFSub(b.ref, x, y, "")! }
}
