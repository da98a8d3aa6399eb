import CLLVM
import Foundation
import LLVMKit

/// RoPE on x [..., T, D] (f32, bf16 or f16: computed in f32, rounded once on the store), one row
/// (one position of one head) per work item: MLX `fast.rope` (angles from a base or a freqs
/// tensor) or `rope_table` (plain exports' cos/sin tables); the rotation is `RopeRotation`.
/// Row r is at position `offset + r mod T` (with tables: that table row). Rows are numbered
/// (batch, head, t) with H heads and read at batch·sB + head·sH + t·sT, so x may be a [B, T, H, D]
/// tensor read as [B, H, T, D] (the transpose before RoPE folded in); the output is contiguous.
/// buffers: [x, offset, freqs?, out] or, with tables, [x, start, stop, cos, sin, out]; dims: [D, T, offset, H, sB, sH, sT].
public enum RopeKernels {
    public static func rope(dims: Int, traditional: Bool, base: Double, scale: Double, hasFreqs: Bool, lanes: Int,
                            _ element: ElementType = .f32, freqs freqsType: ElementType = .f32) -> KernelDefinition {
        rope(RopeRotation.Rope(dims: dims, traditional: traditional, base: base, scale: scale, freqs: hasFreqs ? freqsType : nil),
             lanes: lanes, element)
    }

    public static func rope(_ rope: RopeRotation.Rope, lanes: Int, _ element: ElementType = .f32) -> KernelDefinition {
        KernelDefinition(name: "rope_\(element.tag)_\(rope.tag)_v\(lanes)") { e in
            let b = e.b
            let x = e.buffer(0)
            var next = 2
            let freqs = rope.freqs != nil && rope.table == nil ? e.buffer(next) : nil
            if freqs != nil { next += 1 }
            // With tables, buffer 2 is the stop row (the host checks it against T).
            let tables = rope.table == nil ? nil : (cos: e.buffer(3), sin: e.buffer(4))
            if tables != nil { next = 5 }
            let out = e.buffer(next)
            let d = e.dim(0), t = e.dim(1), offset = e.dim(2), heads = e.dim(3)
            let sB = e.dim(4), sH = e.dim(5), sT = e.dim(6)
            let rotation = RopeRotation(b: b, rope: rope, features: d, lanes: lanes, element: element, freqs: freqs, tables: tables)
            b.loop(e.begin, e.end, "row") { row in
                let rowBase = b.mul(row, d)
                let ti = b.srem(row, t), bh = b.sdiv(row, t)
                let inBase = b.add(b.add(b.mul(b.sdiv(bh, heads), sB), b.mul(b.srem(bh, heads), sH)), b.mul(ti, sT))
                rotation.emit(from: x, inBase, position: b.add(offset, ti)) { l, value, at in
                    l.storeF32(value, element, out, b.add(rowBase, at))
                }
            }
        }
    }
}
