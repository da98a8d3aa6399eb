import CLLVM
import Foundation
import LLVMKit

/// The RoPE rotation of one row, shared by the `rope` / `rope_table` kernels and `rope_attention`.
///
/// Feature pair i of a row at `position` turns by an angle: position · scale · inv_freq[i] with
/// inv_freq[i] = base^(−2i/dims) (kernel constants) or 1/freqs[i] (a tensor), formed and reduced in
/// f64 so positions in the hundreds of thousands keep f32 accuracy — or, for tables (plain
/// exports' precomputed cos/sin, [R, dims/2] contiguous), the cosine and sine are read from row
/// `position` as stored, so any table (scaled or long-context variants) is honoured exactly.
/// Pairs are (2i, 2i+1) when traditional, else (i, i + dims/2); features past `dims` pass through.
public struct RopeRotation {
    /// The rotation's static attributes: `freqs` is the element type of a frequency tensor, `table`
    /// that of cos/sin tables (base, scale and freqs are then unused).
    public struct Rope: Sendable {
        public var dims: Int, traditional: Bool, base: Double, scale: Double, freqs: ElementType?, table: ElementType?
        public init(dims: Int, traditional: Bool, base: Double, scale: Double, freqs: ElementType?, table: ElementType? = nil) {
            (self.dims, self.traditional, self.base, self.scale, self.freqs, self.table) = (dims, traditional, base, scale, freqs, table)
        }

        var tag: String {
            var s = "rope\(dims)\(traditional ? "t" : "s")"
            if let table { return s + "_table\(table.tag)" }
            if let freqs { s += "_freqs\(freqs.tag)" } else { s += "_base\(Support.name(base))" }
            if scale != 1 { s += "_rscale\(Support.name(scale))" }
            return s
        }
    }

    let b: Builder, rope: Rope, lanes: Int, element: ElementType, freqs: IRValue?
    var tables: (cos: IRValue, sin: IRValue)? = nil
    /// The row's feature count, and whether features past `dims` may exist (then copied through).
    let features: IRValue, passThrough: Bool

    init(b: Builder, rope: Rope, d: Int, lanes: Int, element: ElementType, freqs: IRValue?, tables: (cos: IRValue, sin: IRValue)?) {
        (self.b, self.rope, self.lanes, self.element, self.freqs, self.tables) = (b, rope, lanes, element, freqs, tables)
        (features, passThrough) = (b.i64(d), rope.dims < d)
    }

    init(b: Builder, rope: Rope, features: IRValue, lanes: Int, element: ElementType, freqs: IRValue?, tables: (cos: IRValue, sin: IRValue)?) {
        (self.b, self.rope, self.lanes, self.element, self.freqs, self.tables) = (b, rope, lanes, element, freqs, tables)
        (self.features, passThrough) = (features, true)
    }

    /// Emits the rotation of one row of `features` features read at `src[base…]` (in `element`), handing
    /// each computed piece (f32 lanes, offset within the row) to `store`.
    func emit(from src: IRValue, _ base: IRValue, position: IRValue, store: (Lanes, IRValue, IRValue) -> Void) {
        let half = rope.dims / 2
        let invFreq = (0..<half).map { Foundation.exp(-Double($0) * Foundation.log(rope.base) / Double(half)) }
        let tableRow = b.mul(position, b.i64(half))
        let scaled = rope.table == nil ? b.fmul(b.sitofp(position, b.f64), LLVMConstReal(b.f64, rope.scale)) : nil
        var i0 = 0
        while i0 < half {
            let w = min(lanes, half - i0)
            let l = Lanes(b, w)
            let sn: IRValue, cs: IRValue
            if let tables, let tt = rope.table {
                let at = b.add(tableRow, b.i64(i0))
                (sn, cs) = (l.loadF32(tt, tables.sin, at), l.loadF32(tt, tables.cos, at))
            } else {
                let inv: IRValue
                if let freqs, let ft = rope.freqs {
                    inv = b.fdiv(l.f64(1), b.fpext(l.loadF32(ft, freqs, b.i64(i0)), l.type(b.f64)))
                } else {
                    inv = w == 1 ? LLVMConstReal(b.f64, invFreq[i0]) : b.constVector((i0..<(i0 + w)).map { LLVMConstReal(b.f64, invFreq[$0]) })
                }
                (sn, cs) = VectorMath.sincos(l, angle: b.fmul(l.splat(scaled!), inv))
            }
            if rope.traditional {
                let pairs = Lanes(b, 2 * w)
                let xv = pairs.loadF32(element, src, b.add(base, b.i64(2 * i0)))
                let x1 = w == 1 ? b.extract(xv, 0) : b.shuffle(xv, xv, (0..<w).map { 2 * $0 })
                let x2 = w == 1 ? b.extract(xv, 1) : b.shuffle(xv, xv, (0..<w).map { 2 * $0 + 1 })
                let y1 = b.fsub(b.fmul(x1, cs), b.fmul(x2, sn)), y2 = b.fadd(b.fmul(x1, sn), b.fmul(x2, cs))
                let y = w == 1 ? b.insert(b.insert(LLVMGetPoison(b.vector(b.f32, 2)), y1, 0), y2, 1)
                               : b.shuffle(y1, y2, (0..<w).flatMap { [$0, w + $0] })
                store(pairs, y, b.i64(2 * i0))
            } else {
                let x1 = l.loadF32(element, src, b.add(base, b.i64(i0))), x2 = l.loadF32(element, src, b.add(base, b.i64(i0 + half)))
                store(l, b.fsub(b.fmul(x1, cs), b.fmul(x2, sn)), b.i64(i0))
                store(l, b.fadd(b.fmul(x1, sn), b.fmul(x2, cs)), b.i64(i0 + half))
            }
            i0 += w
        }
        // Features past `dims` pass through (exact in every dtype).
        if passThrough {
            Support.vectorLoop(b, b.i64(rope.dims), features, width: lanes, "pass") { l, i in
                store(l, l.loadF32(element, src, b.add(base, i)), i)
            }
        }
    }
}
