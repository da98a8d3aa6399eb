import CLLVM
import LLVMKit

/// The part both affine quantized matmul kernels (`QuantizedLinearKernels`, `GatherMatmulKernels.quantized`)
/// share: how a row's packed codes meet the prepared activations.
///
/// A chunk of `cl` bytes is loaded and zero-extended to `cl` i32 lanes; lane j then holds the codes
/// of elements j·c … j·c + c − 1 (c = 8/bits codes per byte), and code s of every lane comes out
/// with one shift and one mask. The activations are read in the matching order, so each x row is
/// permuted once per call per chunk into `xp[s·cl + j] = x[j·c + s]` (8-bit needs no permutation).
/// The bias term uses Σx per group, also computed once per call: `Σ x·(s·q + b) = s·Σ q·x + b·Σ x`.
/// 3-, 5- and 6-bit codes straddle bytes and words: they are read in element order instead (x not permuted),
/// a chunk of `cl` codes at a time from the few words it spans (`DequantizeKernels.codeVector`: a constant
/// shuffle, shifts and a mask — a group starts on a word boundary, so every offset is a constant).
struct AffineQuantizedRows {
    let b: Builder
    let k: Int, bits: Int, groupSize: Int
    let params: QuantizedLinearKernels.ParamType
    /// Codes per byte, lanes of a chunk (bytes loaded at once), elements of a chunk.
    let perByte: Int, cl: Int, chunk: Int
    let chunksPerGroup: Int, groups: Int, rowBytes: Int
    let vec: IRType
    let codeMask: IRValue
    /// Groups per iteration of the row loop (their scales and biases load as one short vector).
    let groupUnroll = 4
    let biasType: IRType

    init(_ b: Builder, k: Int, bits: Int, groupSize: Int, params: QuantizedLinearKernels.ParamType, lanes: Int) {
        self.b = b
        (self.k, self.bits, self.groupSize, self.params) = (k, bits, groupSize, params)
        perByte = 8 % bits == 0 ? 8 / bits : 1
        cl = 8 % bits == 0 ? min(lanes, groupSize / perByte) : DequantizeKernels.vectorLanes(groupSize: groupSize, lanes: lanes)
        chunk = cl * perByte
        chunksPerGroup = groupSize / chunk
        groups = k / groupSize
        rowBytes = k * bits / 8
        vec = b.vector(b.f32, cl)
        codeMask = b.splat(b.i32((1 << bits) - 1), cl)
        biasType = b.vector(b.f32, groupUnroll)
    }

    /// Whether x must be permuted into a scratch (codes narrower than a byte, several to a byte).
    var permuted: Bool { perByte > 1 }

    /// 3-, 5- or 6-bit codes: read in element order from the words they straddle.
    var straddling: Bool { 8 % bits != 0 }

    /// A 64-byte aligned f32 stack scratch (emit in the entry block).
    func scratch(_ count: Int) -> IRValue {
        let a = b.alloca(LLVMArrayType2(b.f32, UInt64(count)))
        LLVMSetAlignment(a, 64)
        return a
    }

    /// Loads `width` params (scale or bias) as f32 from `base[index…]`.
    func loadParams(_ base: IRValue, _ index: IRValue, _ width: Int) -> IRValue {
        let t = width == 1 ? b.f32 : b.vector(b.f32, width)
        func widen(_ element: IRType) -> IRType { width == 1 ? element : b.vector(element, width) }
        switch params {
        case .f32: return b.load(t, b.gep(b.f32, base, index))
        case .f16: return b.fpext(b.load(widen(b.f16), b.gep(b.f16, base, index), align: 2), t)
        case .bf16:
            let raw = b.zext(b.load(widen(b.i16), b.gep(b.i16, base, index), align: 2), widen(b.i32))
            return b.bitcast(b.shl(raw, width == 1 ? b.i32(16) : b.splat(b.i32(16), width)), t)
        }
    }

    /// Permutes one x row into `dst` chunk by chunk; `load(i)` gives the `cl` f32 values at element i.
    func permute(into dst: IRValue, _ load: (IRValue) -> IRValue) {
        b.loop(b.i64(0), b.i64(k / chunk), "perm") { c in
            let base = b.mul(c, b.i64(chunk))
            // Concatenate the chunk into one vector, then pick every perByte-th element.
            var whole = (0..<perByte).map { p in load(b.add(base, b.i64(p * cl))) }
            while whole.count > 1 {
                let width = Int(LLVMGetVectorSize(LLVMTypeOf(whole[0])))
                whole = stride(from: 0, to: whole.count, by: 2).map { b.shuffle(whole[$0], whole[$0 + 1], Array(0..<(2 * width))) }
            }
            for s in 0..<perByte {
                let picked = perByte == 1 ? whole[0] : b.shuffle(whole[0], whole[0], (0..<cl).map { $0 * perByte + s })
                b.store(picked, b.gep(b.f32, dst, b.add(base, b.i64(s * cl))))
            }
        }
    }

    /// One row's dot products with `nt` prepared tokens: codes at `rowCodes`, its scales and biases
    /// from `params[paramIndex…]`, token t's prepared x at `x + t·k` and its Σx at `sums + t·groups`.
    /// One token: codes times x summed per group, then scaled once per group. Several tokens: the
    /// codes are scaled once and shared by every token's FMA.
    func dot(rowCodes: IRValue, scales: IRValue, biases: IRValue, paramIndex: IRValue, x: IRValue, sums: IRValue, nt: Int) -> [IRValue] {
        /// `width` consecutive groups from group g0: Σ s·(q·x) into acc, Σ b·(Σx) into biasAcc.
        func groupBlock(_ g0: IRValue, width: Int, acc: [IRValue], biasAcc: [IRValue]) -> ([IRValue], [IRValue]) {
            let sv = loadParams(scales, b.add(paramIndex, g0), width)
            let bv = loadParams(biases, b.add(paramIndex, g0), width)
            var acc = acc, biasAcc = biasAcc
            for gi in 0..<width {
                let g = b.add(g0, b.i64(gi))
                let scale = width == 1 ? b.splat(sv, cl) : b.shuffle(sv, sv, [Int](repeating: gi, count: cl))
                var groupAcc: IRValue? = nil
                for ci in 0..<chunksPerGroup {
                    let element = b.add(b.mul(g, b.i64(groupSize)), b.i64(ci * chunk))
                    let wide: IRValue
                    if straddling {
                        wide = DequantizeKernels.codeVector(b, words: rowCodes, groupWord: b.mul(g, b.i64(groupSize * bits / 32)),
                                                            firstBit: ci * chunk * bits, width: cl, bits: bits)
                    } else {
                        let bytes = b.load(b.vector(b.i8, cl), b.gep(b.i8, rowCodes, b.sdiv(element, b.i64(perByte))), align: 1)
                        wide = b.zext(bytes, b.vector(b.i32, cl))
                    }
                    for s in 0..<perByte {
                        var q = s == 0 ? wide : b.lshr(wide, b.splat(b.i32(s * bits), cl))
                        if s < perByte - 1 { q = b.and(q, codeMask) }   // the top code has no bits above it
                        var qf = b.uitofp(q, vec)
                        if nt > 1 { qf = b.fmul(qf, scale) }
                        for t in 0..<nt {
                            let xv = b.load(vec, b.gep(b.f32, x, b.add(b.i64(t * k), b.add(element, b.i64(s * cl)))))
                            if nt > 1 {
                                acc[t] = b.fma(qf, xv, acc[t])
                            } else {
                                groupAcc = groupAcc.map { b.fma(qf, xv, $0) } ?? b.fmul(qf, xv)
                            }
                        }
                    }
                }
                // One token: alternate groups feed two accumulators, so the per-group scale FMA is not one
                // chain of dependent FMAs (its latency, not the code decoding, bounded a row).
                if let groupAcc { acc[gi % 2] = b.fma(groupAcc, scale, acc[gi % 2]) }
            }
            for t in 0..<nt {
                let sumsAt = b.gep(b.f32, sums, b.add(b.i64(t * groups), g0))
                let groupSums = b.load(width == 1 ? b.f32 : b.vector(b.f32, width), sumsAt)
                if width == groupUnroll {
                    biasAcc[t] = b.fma(bv, groupSums, biasAcc[t])
                } else {
                    let dot = width == 1 ? b.fmul(bv, groupSums) : b.reduceAdd(b.fmul(bv, groupSums))
                    biasAcc[t] = b.fadd(biasAcc[t], b.insert(b.zero(biasType), dot, 0))
                }
            }
            return (acc, biasAcc)
        }

        let chains = nt == 1 ? 2 : nt   // one token: two accumulators (see groupBlock)
        let initial = [IRValue](repeating: b.zero(vec), count: chains) + [IRValue](repeating: b.zero(biasType), count: nt)
        let fullBlocks = groups / groupUnroll
        var state = b.loop(b.i64(0), b.i64(fullBlocks), carrying: initial, "gb") { blk, carried in
            let (a, bias) = groupBlock(b.mul(blk, b.i64(groupUnroll)), width: groupUnroll,
                                       acc: Array(carried[0..<chains]), biasAcc: Array(carried[chains...]))
            return a + bias
        }
        // The remaining groups, in power-of-two pieces.
        var g0 = fullBlocks * groupUnroll, left = groups - g0, piece = groupUnroll / 2
        while left > 0 {
            if piece <= left {
                let (a, bias) = groupBlock(b.i64(g0), width: piece, acc: Array(state[0..<chains]), biasAcc: Array(state[chains...]))
                state = a + bias
                g0 += piece
                left -= piece
            } else {
                piece /= 2
            }
        }
        if nt == 1 { return [b.fadd(b.reduceAdd(b.fadd(state[0], state[1])), b.reduceAdd(state[2]))] }
        return (0..<nt).map { t in b.fadd(b.reduceAdd(state[t]), b.reduceAdd(state[nt + t])) }
    }
}
