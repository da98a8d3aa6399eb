import CLLVM
import LLVMKit

/// MLX's block-scaled float quantizations: every weight is a small float code times its group's
/// scale (no bias).
/// - `nvfp4`: FP4 E2M1 codes, groups of 16, one FP8 E4M3 scale byte per group;
/// - `mxfp4`: FP4 E2M1 codes, groups of 32, one E8M0 scale byte (2^(e − 127)) per group;
/// - `mxfp8`: FP8 E4M3 codes (one byte each), groups of 32, E8M0 scales.
/// Codes are packed LSB-first in uint32 words along k, as MLX stores them.
public enum FloatQuantization: String, Sendable, CaseIterable {
    case nvfp4, mxfp4, mxfp8

    public var codeBits: Int { self == .mxfp8 ? 8 : 4 }
    public var groupSize: Int { self == .nvfp4 ? 16 : 32 }

    /// Whether the kernels decode this scale byte exactly: E4M3 scales that are not NaN (0x7F,
    /// 0xFF); E8M0 exponents that give a normal f32 (1…254), for mxfp8 at most 246 (the kernel folds
    /// the codes' 2^8 into the scale, see `FloatQuantizedRows`). Scales outside (NaN, 2^-127,
    /// ≥ 2^120 for mxfp8) are left to the reference.
    public func decodesExactly(scale byte: UInt8) -> Bool {
        switch self {
        case .nvfp4: return byte & 0x7F != 0x7F
        case .mxfp4: return byte >= 1 && byte <= 254
        case .mxfp8: return byte >= 1 && byte <= 246
        }
    }
}

/// How a row of block-scaled float codes meets the prepared activations (the part a quantized
/// linear and an MoE gather kernel share).
///
/// A chunk is `cl` uint32 words loaded as one vector: lane j holds the P = 32/bits codes of
/// elements j·P … j·P + P − 1, and code s of every lane comes out with one shift (`w >> bits·s`).
/// The activations are read in the matching order, so each x row is permuted once per call into
/// `xp[c·chunk + s·cl + j] = x[c·chunk + j·P + s]`. A code becomes f32:
/// - FP4 on AVX-512 (cl = 16): one `vpermps` of the 16-entry E2M1 table indexed by the shifted word
///   (the instruction reads only the index's low 4 bits, so no mask);
/// - FP4 elsewhere: arithmetic on the 3 magnitude bits (exponent and mantissa placed into an f32,
///   the two subnormal codes 0 and 0.5 by a select) and the sign bit or-ed in;
/// - E4M3 (mxfp8 codes, nvfp4 scales): the bits re-spaced into an f16 (sign, then the 7 magnitude
///   bits at bit 7), which is exactly the value · 2^-8, including subnormals, then `fpext` (one
///   `vcvtph2ps`); the 2^8 goes into the group scale.
/// Scales are decoded once per block of groups (one short vector), and spread to the lanes of each
/// chunk by a constant shuffle: lane j of chunk c belongs to group (c·chunk + j·P) / groupSize.
struct FloatQuantizedRows {
    let b: Builder
    let k: Int
    let mode: FloatQuantization
    /// Codes per word (P), lanes of a chunk, elements of a chunk.
    let perWord: Int, cl: Int, chunk: Int
    let groupSize: Int, groups: Int, chunks: Int, rowWords: Int
    /// Scales loaded per block of the row loop, and the block's chunks.
    let blockScales: Int, blockChunks: Int
    /// FP4 codes by `vpermps` (AVX-512, 16 lanes).
    let permute16: Bool
    let vec: IRType

    /// `lanes` is the host's f32 lanes (16 only with AVX-512F, see `HostTarget.vectorBits`).
    init(_ b: Builder, k: Int, mode: FloatQuantization, lanes: Int) {
        self.b = b
        self.k = k
        self.mode = mode
        perWord = 32 / mode.codeBits
        groupSize = mode.groupSize
        rowWords = k / perWord
        cl = Self.chunkLanes(k: k, mode: mode, lanes: lanes)
        chunk = cl * perWord
        groups = k / groupSize
        chunks = k / chunk
        // About 256–512 weights per block, at most 8 chunks.
        let target = mode == .nvfp4 ? 16 : 8
        // A power of two (so blocks are whole chunks) no larger than the row's groups.
        var scales = Swift.max(1, Swift.min(target, 8 * chunk / groupSize))
        while scales > 1 && scales > groups { scales /= 2 }
        blockScales = scales
        blockChunks = Swift.max(1, blockScales * groupSize / chunk)
        permute16 = Self.permutes(k: k, mode: mode, lanes: lanes)
        vec = b.vector(b.f32, cl)
    }

    /// Shapes the kernels take: whole groups, and codes that fill whole words.
    static func supports(k: Int, mode: FloatQuantization) -> Bool { k > 0 && k % mode.groupSize == 0 }

    /// Words per chunk: the widest power of two ≤ lanes that divides a row's words.
    static func chunkLanes(k: Int, mode: FloatQuantization, lanes: Int) -> Int {
        Support.width(dividing: k / (32 / mode.codeBits), lanes: lanes)
    }

    /// Whether FP4 codes are decoded by `vpermps` (16 lanes, which only AVX-512F gives).
    static func permutes(k: Int, mode: FloatQuantization, lanes: Int) -> Bool {
        mode.codeBits == 4 && lanes == 16 && chunkLanes(k: k, mode: mode, lanes: lanes) == 16
    }

    /// Tag for kernel names: the chunk's lanes, and how FP4 codes are decoded.
    static func tag(k: Int, mode: FloatQuantization, lanes: Int) -> String {
        let decode = mode.codeBits == 4 ? (permutes(k: k, mode: mode, lanes: lanes) ? "_vpermps" : "_arith") : ""
        return "v\(chunkLanes(k: k, mode: mode, lanes: lanes))\(decode)"
    }

    /// A 64-byte aligned f32 stack scratch (emit in the entry block).
    func scratch(_ count: Int) -> IRValue {
        let a = b.alloca(LLVMArrayType2(b.f32, UInt64(count)))
        LLVMSetAlignment(a, 64)
        return a
    }

    // MARK: activations

    /// Permutes one x row into `dst` chunk by chunk; `load(i)` gives the `cl` f32 values at element i.
    func permute(into dst: IRValue, _ load: (IRValue) -> IRValue) {
        b.loop(b.i64(0), b.i64(chunks), "perm") { c in
            let base = b.mul(c, b.i64(chunk))
            var whole = (0..<perWord).map { p in load(b.add(base, b.i64(p * cl))) }
            while whole.count > 1 {
                let width = Int(LLVMGetVectorSize(LLVMTypeOf(whole[0])))
                whole = stride(from: 0, to: whole.count, by: 2).map { b.shuffle(whole[$0], whole[$0 + 1], Array(0..<(2 * width))) }
            }
            for s in 0..<perWord {
                let picked = b.shuffle(whole[0], whole[0], (0..<cl).map { $0 * perWord + s })
                b.store(picked, b.gep(b.f32, dst, b.add(base, b.i64(s * cl))))
            }
        }
    }

    // MARK: decoding

    private func type(_ element: IRType, _ width: Int) -> IRType { width == 1 ? element : b.vector(element, width) }
    private func int(_ element: IRType, _ value: Int, _ width: Int) -> IRValue {
        let c = LLVMConstInt(element, UInt64(bitPattern: Int64(value)), 0)!
        return width == 1 ? c : b.splat(c, width)
    }

    /// E4M3 bytes (zero-extended into integer lanes of `element`) as f32 · 2^-8, exactly.
    private func e4m3Scaled(_ z: IRValue, _ element: IRType, _ width: Int) -> IRValue {
        let magnitude = b.shl(b.and(z, int(element, 0x7F, width)), int(element, 7, width))
        let sign = b.shl(b.and(z, int(element, 0x80, width)), int(element, 8, width))
        var h = b.or(magnitude, sign)
        if element != b.i16 { h = b.trunc(h, type(b.i16, width)) }
        return b.fpext(b.bitcast(h, type(b.f16, width)), type(b.f32, width))
    }

    /// `width` scale bytes at `scales[index…]` as f32 group scales (the mxfp8 codes' 2^-8 folded in).
    func loadScales(_ scales: IRValue, _ index: IRValue, _ width: Int) -> IRValue {
        let bytes = b.load(type(b.i8, width), b.gep(b.i8, scales, index), align: 1)
        switch mode {
        case .nvfp4:
            let f = e4m3Scaled(b.zext(bytes, type(b.i16, width)), b.i16, width)
            return b.fmul(f, width == 1 ? b.f32(256) : b.splat(b.f32(256), width))
        case .mxfp4, .mxfp8:
            var e = b.zext(bytes, type(b.i32, width))
            if mode == .mxfp8 { e = b.add(e, int(b.i32, 8, width)) }
            return b.bitcast(b.shl(e, int(b.i32, 23, width)), type(b.f32, width))
        }
    }

    /// The E2M1 values by code, sign bit last.
    static let fp4Table: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]

    /// Code s of every lane of the words `w` (`cl` i32 lanes), as f32.
    func code(_ w: IRValue, _ s: Int) -> IRValue {
        let raw = s == 0 ? w : b.lshr(w, int(b.i32, mode.codeBits * s, cl))
        return Self.value(b, mode, code: raw, width: cl, masked: s == perWord - 1, permute16: permute16)
    }

    /// The f32 value of the code in the low bits of each i32 lane of `raw` (`width` lanes; the bits
    /// above it are zero when `masked`). mxfp8 codes come out · 2^-8 (see `loadScales`).
    static func value(_ b: Builder, _ mode: FloatQuantization, code raw: IRValue, width: Int, masked: Bool, permute16: Bool) -> IRValue {
        let vec = b.vector(b.f32, width)
        func int(_ v: Int) -> IRValue { b.splat(LLVMConstInt(b.i32, UInt64(v), 0), width) }
        if mode.codeBits == 8 {
            let byte = masked ? raw : b.and(raw, int(0xFF))
            let magnitude = b.shl(b.and(byte, int(0x7F)), int(7)), sign = b.shl(b.and(byte, int(0x80)), int(8))
            let h = b.trunc(b.or(magnitude, sign), b.vector(b.i16, width))
            return b.fpext(b.bitcast(h, b.vector(b.f16, width)), vec)
        }
        if permute16 {
            let table = b.constVector(fp4Table.map { b.f32($0) })
            return Support.intrinsic(b, "llvm.x86.avx512.permvar.sf.512", overloads: [], [table, raw])
        }
        let c = masked ? raw : b.and(raw, int(0xF))
        let magnitude = b.and(c, int(7))
        // Exponent e and mantissa m into an f32 with exponent e + 126: 2^(e−1)·(1 + m/2), right for
        // e ≥ 1; the codes with e = 0 are m · 0.5.
        let normal = b.bitcast(b.add(b.shl(magnitude, int(22)), int(0x3F00_0000)), vec)
        let small = b.fmul(b.uitofp(magnitude, vec), b.splat(b.f32(0.5), width))
        let value = b.select(b.icmp(LLVMIntULT, magnitude, int(2)), small, normal)
        let sign = b.shl(b.and(c, int(8)), int(28))
        return b.bitcast(b.or(b.bitcast(value, b.vector(b.i32, width)), sign), vec)
    }

    // MARK: the row

    /// One row's dot products with `nt` prepared tokens: words at `rowWords`, scale bytes at
    /// `rowScales`, token t's permuted x at `x + t·k`. One token: the codes times x summed per
    /// chunk (two chains), then scaled once per chunk. Several tokens: the codes are scaled once
    /// and shared by every token's FMA.
    func dot(rowWords words: IRValue, rowScales: IRValue, x: IRValue, nt: Int) -> [IRValue] {
        let accCount = nt == 1 ? 2 : nt

        /// `count` chunks from chunk c0 (whole groups, or inside one group).
        func block(_ c0: IRValue, count: Int, acc: [IRValue]) -> [IRValue] {
            var acc = acc
            let scaleCount = Swift.max(1, count * chunk / groupSize)
            let g0 = b.sdiv(b.mul(c0, b.i64(chunk)), b.i64(groupSize))
            let sv = loadScales(rowScales, g0, scaleCount)
            for ci in 0..<count {
                let c = b.add(c0, b.i64(ci))
                let scale = scaleCount == 1 ? b.splat(sv, cl)
                    : b.shuffle(sv, sv, (0..<cl).map { (ci * chunk + $0 * perWord) / groupSize })
                let w = b.load(b.vector(b.i32, cl), b.gep(b.i32, words, b.mul(c, b.i64(cl))))
                let element = b.mul(c, b.i64(chunk))
                func xv(_ t: Int, _ s: Int) -> IRValue {
                    b.load(vec, b.gep(b.f32, x, b.add(element, b.i64(t * k + s * cl))))
                }
                if nt == 1 {
                    var partial: [IRValue?] = [nil, nil]
                    for s in 0..<perWord {
                        let q = code(w, s), p = s % 2
                        partial[p] = partial[p].map { b.fma(q, xv(0, s), $0) } ?? b.fmul(q, xv(0, s))
                    }
                    for p in 0..<2 { if let v = partial[p] { acc[p] = b.fma(v, scale, acc[p]) } }
                } else {
                    for s in 0..<perWord {
                        let q = b.fmul(code(w, s), scale)
                        for t in 0..<nt { acc[t] = b.fma(q, xv(t, s), acc[t]) }
                    }
                }
            }
            return acc
        }

        let zero = [IRValue](repeating: b.zero(vec), count: accCount)
        let fullBlocks = chunks / blockChunks
        var acc = b.loop(b.i64(0), b.i64(fullBlocks), carrying: zero, "blk") { i, carried in
            block(b.mul(i, b.i64(blockChunks)), count: blockChunks, acc: carried)
        }
        // The remaining chunks in power-of-two pieces (each whole groups, or within one group).
        var c0 = fullBlocks * blockChunks, piece = blockChunks / 2
        while c0 < chunks {
            if piece <= chunks - c0 {
                acc = block(b.i64(c0), count: piece, acc: acc)
                c0 += piece
            } else {
                piece /= 2
            }
        }
        if nt == 1 { return [b.reduceAdd(b.fadd(acc[0], acc[1]))] }
        return acc.map { b.reduceAdd($0) }
    }
}
