import CLLVM
import LLVMKit

/// `dynamic_quant_linear` with 4-bit weights on x86 (AVX2, AVX-512 BW / VNNI, AVX-VNNI) as the classic
/// int8 GEMM microkernel, integer-exact: the same result bit for bit as `DynamicQuantDefinition`
/// (and the word-dot kernel `DynamicQuantLinearKernels`), several times fewer instructions per MAC.
///
/// Weights are repacked once at load (`DynamicQuantGemmLayout`): blocks of `columns` output columns
/// (the i32 lanes of one vector), each 8-element octet of K one vector of bytes, byte 4c + j holding
/// column c's element j (low nibble) and element j + 4 (high nibble) as unsigned 0…15 — so one load,
/// an and and a shift give two k-quads of 4 bytes per column. Beside them, per block and group, each
/// column's Σv (of the unsigned codes) and its scale, in lanes.
///
/// x's rows are quantized once per block of rows as XNNPACK does (`QD8RowQuantization`) into int8
/// q (not q − z), with per row and group k = −8·Σq + 8·z·G. Per k-quad the 4 bytes of q are
/// broadcast and multiplied with the column codes: `vpdpbusd` (VNNI: u8 weights × s8 q, summed into
/// i32) or `vpmaddubsw` (u8 × s8 → i16 pair sums, |pair| ≤ 2·128·15 = 3840, so 8 of them summed in
/// i16 stay below 2^15: the i16 partials of up to 32 elements are widened by `vpmaddwd` with ones).
/// Then S = Σq·v − z·Σv + k = Σ(q − z)(v − 8) exactly; f32(S) FMA'd with the scales in group order,
/// times the row's scale at the end — the definition's roundings.
///
/// Register tile: `tile.tokens` rows × `tile.vectors` column vectors of accumulators. Work items: column
/// vectors (grain `vectors`). buffers: [x f32, packed blob (`DynamicQuantGemmLayout`), out f32]; dims: [M].
public enum DynamicQuantGemmKernels {
    /// How the target multiplies u8 × s8 quads into i32 lanes.
    public enum ByteDot: String, Sendable {
        case avx512vnni, avx512bw, avxvnni, avx2

        /// The byte dot product for a word dot product choice (nil: no GEMM path on that target).
        public init?(_ dot: DynamicQuantLinearKernels.WordDot) {
            switch dot {
            case .avx512vnni: self = .avx512vnni
            case .avx512bw: self = .avx512bw
            case .avxvnni: self = .avxvnni
            case .avx2: self = .avx2
            case .neon, .neonDot, .generic: return nil
            }
        }

        /// i32 lanes of one vector: the columns of a packed block.
        public var columns: Int { self == .avx512vnni || self == .avx512bw ? 16 : 8 }
        var vnni: Bool { self == .avx512vnni || self == .avxvnni }
        /// Register tile (rows × column vectors). AVX-512's 32 registers hold 6 × 2 (i32 or i16
        /// partials and f32 accumulators). AVX2's 16 hold 6 × 1 i16 partials, the weight vector's two
        /// halves and a broadcast; the f32 accumulators go to the stack once per group. (4 × 2 spilled
        /// the broadcasts it shares between the two column vectors inside the k loop; per MAC both
        /// tiles issue the same vpmaddubsw and vpaddw, and 4 × 1, 5 × 1, 6 × 1 measured alike.)
        public var tile: (tokens: Int, vectors: Int) { columns == 16 ? (6, 2) : (6, 1) }
    }

    public static func supports(k: Int, groupSize: Int, bits: Int) -> Bool {
        bits == 4 && groupSize > 0 && groupSize % 8 == 0 && k % groupSize == 0 && k <= 65536
    }

    /// Rows quantized together: the int8 scratch stays ≤ 64 KiB (at least one register tile).
    static func rowBlock(k: Int, tokens: Int) -> Int { max(tokens, 65536 / k / tokens * tokens) }

    public static func linear(k: Int, n: Int, groupSize: Int, dot: ByteDot) -> KernelDefinition {
        let layout = DynamicQuantGemmLayout(n: n, k: k, groupSize: groupSize, columns: dot.columns)
        let (mr, nv) = dot.tile
        let tb = rowBlock(k: k, tokens: mr)
        let name = "dqlinear_qd8_w4g\(groupSize)_k\(k)_n\(n)_gemm\(mr)x\(nv)_\(dot.rawValue)"
        return KernelDefinition(name: name, unrollsItself: true) { e in
            let b = e.b
            let x = e.buffer(0), blob = e.buffer(1), out = e.buffer(2)
            let m = e.dim(0)
            let nr = layout.columns, groups = layout.groups
            let bytesType = b.vector(b.i8, 4 * nr), i32Type = b.vector(b.i32, nr), f32Type = b.vector(b.f32, nr)
            let i16Type = b.vector(b.i16, 2 * nr)
            // Elements per i16 partial sum: 8 quads (see the header); a group's last G mod 32 elements
            // form a shorter one.
            let chunk = 32, chunks = groupSize / chunk, rest = groupSize % chunk

            let q = b.alloca(LLVMArrayType2(b.i8, UInt64(tb * k)))
            LLVMSetAlignment(q, 64)
            let zeroPoints = b.alloca(LLVMArrayType2(b.i32, UInt64(tb)))
            let rowScales = b.alloca(LLVMArrayType2(b.f32, UInt64(tb)))
            let rowTerms = b.alloca(LLVMArrayType2(b.i32, UInt64(tb * groups)))

            /// Row `row` of x → q bytes, z, a and the per-group terms −8·Σq + 8·z·G in slot `slot`.
            func quantize(row: IRValue, slot: IRValue) {
                let base = b.gep(b.f32, x, b.mul(row, b.i64(k)))
                let params = QD8RowQuantization(b, row: base, k: k)
                let z = b.fptosi(params.zeroPoint, b.i32)
                b.store(z, b.gep(b.i32, zeroPoints, slot))
                b.store(params.scale, b.gep(b.f32, rowScales, slot))
                let dst = b.gep(b.i8, q, b.mul(slot, b.i64(k)))
                let zTerm = b.mul(z, b.i32(8 * groupSize))
                b.loop(b.i64(0), b.i64(groups), "qg") { g in
                    let g0 = b.mul(g, b.i64(groupSize))
                    let sums = b.loop(b.i64(0), b.i64(groupSize), step: 8, carrying: [b.zero(b.vector(b.i32, 8))], "qe") { i, acc in
                        let at = b.add(g0, i)
                        let codes = b.fptosi(params.code(b.load(b.vector(b.f32, 8), b.gep(b.f32, base, at)), lanes: 8), b.vector(b.i32, 8))
                        b.store(b.trunc(codes, b.vector(b.i8, 8)), b.gep(b.i8, dst, at), align: 1)
                        return [b.add(acc[0], codes)]
                    }
                    let sumQ = Support.intrinsic(b, "llvm.vector.reduce.add", overloads: [b.vector(b.i32, 8)], [sums[0]])
                    b.store(b.add(b.mul(sumQ, b.i32(-8)), zTerm), b.gep(b.i32, rowTerms, b.add(b.mul(slot, b.i64(groups)), g)))
                }
            }

            func callCasting(_ id: String, _ args: [IRValue], returns: IRType) -> IRValue {
                Support.intrinsicCasting(b, id, args, returns: returns)
            }
            let wide = nr == 16
            /// acc (i32) += Σ over each lane's quad of u·s (VNNI).
            func dpbusd(_ acc: IRValue, _ u: IRValue, _ s: IRValue) -> IRValue {
                callCasting(wide ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.256", [acc, u, s], returns: i32Type)
            }
            /// u8 × s8 byte pairs summed into i16 lanes.
            func maddubs(_ u: IRValue, _ s: IRValue) -> IRValue {
                callCasting(wide ? "llvm.x86.avx512.pmaddubs.w.512" : "llvm.x86.avx2.pmadd.ub.sw", [u, s], returns: i16Type)
            }
            let ones16 = b.splat(LLVMConstInt(b.i16, 1, 0), 2 * nr)
            func widen(_ partial: IRValue) -> IRValue {
                callCasting(wide ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd", [partial, ones16], returns: i32Type)
            }
            let lowNibbles = b.splat(LLVMConstInt(b.i8, 15, 0), 4 * nr), four = b.splat(LLVMConstInt(b.i8, 4, 0), 4 * nr)

            /// Rows slot0 ..< slot0 + nt (of the quantized block starting at row r0) × column vectors
            /// v0 ..< v0 + nvt: the register tile, written to out.
            func tile(r0: IRValue, slot0: IRValue, nt: Int, v0: IRValue, nvt: Int) {
                let weights = (0..<nvt).map { v in b.gep(b.i8, blob, b.mul(b.add(v0, b.i64(v)), b.i64(layout.blockBytes))) }
                let qRows = (0..<nt).map { t in b.gep(b.i8, q, b.mul(b.add(slot0, b.i64(t)), b.i64(k))) }
                let zs = (0..<nt).map { t in b.splat(b.load(b.i32, b.gep(b.i32, zeroPoints, b.add(slot0, b.i64(t)))), nr) }
                let count = nt * nvt

                /// Σq·v over elements [k0, k0 + chunk) for every (row, vector) of the tile.
                /// One octet at element `at`: acc (VNNI: i32) or the i16 partials += its products.
                func octet(_ at: IRValue, _ acc: [IRValue]) -> [IRValue] {
                    var acc = acc
                    let halves = weights.map { w -> (IRValue, IRValue) in
                        let raw = b.load(bytesType, b.gep(b.i8, w, b.mul(at, b.i64(nr / 2))), align: 1)
                        return (b.and(raw, lowNibbles), b.lshr(raw, four))
                    }
                    for t in 0..<nt {
                        let quads = [0, 4].map { d in
                            b.bitcast(b.splat(b.load(b.i32, b.gep(b.i8, qRows[t], b.add(at, b.i64(d))), align: 1), nr), bytesType)
                        }
                        for v in 0..<nvt {
                            let i = t * nvt + v
                            if dot.vnni {
                                acc[i] = dpbusd(dpbusd(acc[i], halves[v].0, quads[0]), halves[v].1, quads[1])
                            } else {
                                acc[i] = b.add(acc[i], b.add(maddubs(halves[v].0, quads[0]), maddubs(halves[v].1, quads[1])))
                            }
                        }
                    }
                    return acc
                }

                /// Σq·v over elements [k0, k0 + elements) added to acc for every (row, vector) of the tile.
                /// VNNI: octets unrolled (32 registers hold the tile). vpmaddubsw: an octet loop carrying the
                /// i16 partials, so the scheduler cannot hoist a chunk's products past AVX2's 16 registers.
                func chunkSums(_ k0: IRValue, elements: Int, _ acc: [IRValue]) -> [IRValue] {
                    if dot.vnni {
                        var acc = acc
                        for o in 0..<(elements / 8) { acc = octet(b.add(k0, b.i64(8 * o)), acc) }
                        return acc
                    }
                    let zero16 = b.zero(i16Type)
                    let partial = elements == 8
                        ? octet(k0, [IRValue](repeating: zero16, count: count))
                        : b.loop(b.i64(0), b.i64(elements), step: 8, carrying: [IRValue](repeating: zero16, count: count), "oc") { o, p in
                            octet(b.add(k0, o), p)
                        }
                    return (0..<count).map { b.add(acc[$0], widen(partial[$0])) }
                }

                let zeroF = b.zero(f32Type), zeroI = b.zero(i32Type)
                let totals = b.loop(b.i64(0), b.i64(groups), carrying: [IRValue](repeating: zeroF, count: count), "gg") { g, facc in
                    let g0 = b.mul(g, b.i64(groupSize))
                    var sums = [IRValue](repeating: zeroI, count: count)
                    if chunks == 1 {
                        sums = chunkSums(g0, elements: chunk, sums)
                    } else if chunks > 1 {
                        sums = b.loop(b.i64(0), b.i64(chunks * chunk), step: chunk, carrying: sums, "gc") { c, acc in
                            chunkSums(b.add(g0, c), elements: chunk, acc)
                        }
                    }
                    if rest > 0 { sums = chunkSums(b.add(g0, b.i64(chunks * chunk)), elements: rest, sums) }
                    var next = facc
                    for v in 0..<nvt {
                        let side = b.add(b.mul(b.add(v0, b.i64(v)), b.i64(groups)), g)
                        let columnSums = b.load(i32Type, b.gep(i32Type, b.gep(b.i8, blob, b.i64(layout.columnSumsOffset)), side))
                        let scales = b.load(f32Type, b.gep(f32Type, b.gep(b.i8, blob, b.i64(layout.scalesOffset)), side))
                        for t in 0..<nt {
                            let i = t * nvt + v
                            let term = b.load(b.i32, b.gep(b.i32, rowTerms, b.add(b.mul(b.add(slot0, b.i64(t)), b.i64(groups)), g)))
                            let s = b.add(b.sub(sums[i], b.mul(zs[t], columnSums)), b.splat(term, nr))
                            next[i] = QD8RowQuantization.exact(b, "llvm.fma", [b.sitofp(s, f32Type), scales, facc[i]])
                        }
                    }
                    return next
                }
                for t in 0..<nt {
                    let a = b.splat(b.load(b.f32, b.gep(b.f32, rowScales, b.add(slot0, b.i64(t)))), nr)
                    let row = b.add(r0, b.add(slot0, b.i64(t)))
                    for v in 0..<nvt {
                        let col = b.mul(b.add(v0, b.i64(v)), b.i64(nr))
                        let value = LLVMBuildFMul(b.ref, totals[t * nvt + v], a, "")!
                        let pointer = b.gep(b.f32, out, b.add(b.mul(row, b.i64(n)), col))
                        if n % nr == 0 {
                            b.store(value, pointer, align: 4)
                        } else {
                            // The last block's columns past N are not written.
                            let present = b.icmp(LLVMIntSLT, Lanes(b, nr).iota(), b.splat(b.sub(b.i64(n), col), nr))
                            _ = Support.intrinsic(b, "llvm.masked.store", overloads: [f32Type, b.ptr], [value, pointer, b.i32(4), present])
                        }
                    }
                }
            }

            let span = b.sub(e.end, e.begin)
            let tileEnd = b.add(e.begin, b.mul(b.sdiv(span, b.i64(nv)), b.i64(nv)))
            b.loop(b.i64(0), m, step: tb, "rb") { r0 in
                let rows = Support.smin(b, b.i64(tb), b.sub(m, r0))
                b.loop(b.i64(0), rows, "rq") { s in quantize(row: b.add(r0, s), slot: s) }
                let fullRows = b.mul(b.sdiv(rows, b.i64(mr)), b.i64(mr))
                for (vStart, vEnd, nvt) in [(e.begin, tileEnd, nv), (tileEnd, e.end, 1)] {
                    b.loop(vStart, vEnd, step: nvt, "cv\(nvt)") { v0 in
                        b.loop(b.i64(0), fullRows, step: mr, "rt") { s in tile(r0: r0, slot0: s, nt: mr, v0: v0, nvt: nvt) }
                        b.loop(fullRows, rows, "r1") { s in tile(r0: r0, slot0: s, nt: 1, v0: v0, nvt: nvt) }
                    }
                }
            }
        }
    }
}

/// The packed form of a 4-bit `dynamic_quant_linear` weight that `DynamicQuantGemmKernels` reads,
/// made once at load: [blocks][K/8][columns·4] bytes of codes (see the kernel's header), then
/// i32 Σv [blocks][groups][columns], then f32 scales [blocks][groups][columns]. Columns past N are
/// zero codes with zero scales.
public struct DynamicQuantGemmLayout: Equatable, Sendable {
    public let n: Int, k: Int, groupSize: Int, columns: Int

    public init(n: Int, k: Int, groupSize: Int, columns: Int) {
        self.n = n
        self.k = k
        self.groupSize = groupSize
        self.columns = columns
    }

    public var blocks: Int { (n + columns - 1) / columns }
    public var groups: Int { k / groupSize }
    /// Bytes of one block's codes.
    public var blockBytes: Int { columns * k / 2 }
    public var columnSumsOffset: Int { blocks * blockBytes }
    public var scalesOffset: Int { columnSumsOffset + blocks * groups * columns * 4 }
    public var byteCount: Int { scalesOffset + blocks * groups * columns * 4 }

    /// Packs the op's weight (u32 words [N, K/8], nibble i of word w is element 8w + i, LSB first)
    /// and scales (`scale(n, g)`) into `blob` (`byteCount` bytes, zeroed).
    public func pack(words: UnsafePointer<UInt32>, scale: (Int, Int) -> Float, into blob: UnsafeMutableRawPointer) {
        let codes = blob.bindMemory(to: UInt8.self, capacity: columnSumsOffset)
        let sums = (blob + columnSumsOffset).bindMemory(to: Int32.self, capacity: blocks * groups * columns)
        let scales = (blob + scalesOffset).bindMemory(to: Float.self, capacity: blocks * groups * columns)
        let wordsPerRow = k / 8
        for column in 0..<n {
            let (block, c) = column.quotientAndRemainder(dividingBy: columns)
            for octet in 0..<wordsPerRow {
                let word = words[column * wordsPerRow + octet]
                let base = block * blockBytes + octet * columns * 4 + c * 4
                for j in 0..<4 {
                    let low = UInt8((word >> UInt32(4 * j)) & 15), high = UInt8((word >> UInt32(4 * (j + 4))) & 15)
                    codes[base + j] = low | (high << 4)
                }
                let g = octet * 8 / groupSize
                var total: Int32 = 0
                for j in 0..<8 { total += Int32((word >> UInt32(4 * j)) & 15) }
                sums[(block * groups + g) * columns + c] += total
            }
            for g in 0..<groups { scales[(block * groups + g) * columns + c] = scale(column, g) }
        }
    }
}
