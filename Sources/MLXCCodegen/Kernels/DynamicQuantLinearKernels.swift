import CLLVM
import LLVMKit

/// `dynamic_quant_linear` (XNNPACK's QD8 × QC4W/QB4W/QC8W fully connected), integer-exact.
///
/// Per block of up to `tokenBlock` rows of x, once per call: the row's asymmetric int8 parameters as
/// XNNPACK computes them (f32 ops without fast-math flags, so every rounding is the definition's), then
/// d = clamp(rint(x·m) + z) − z as i16 (|d| ≤ 255) into a stack scratch. Then per output column n and
/// group g: S = Σ d·c exactly in i32 lanes (word dot products: `vpmaddwd`, or `vpdpwssd` with VNNI,
/// each pair of i16 products summed into an i32 lane), reduced to one i32, converted once, and
/// acc = fma(f32(S), scale[n, g], acc) in group order; out = acc · a. Every step is exact or rounded
/// as the reference rounds it, so the kernel equals the reference bit for bit.
///
/// Columns in blocks of `columnBlock` (= the i32 lanes of one dot step): each column's group
/// accumulator is a vector of pair sums; the block's vectors are added across in one transpose-and-add
/// tree (merged as they come out, so few stay live) into one vector holding each column's exact S,
/// converted and FMA'd with the block's scales as one vector. A block cut short at N's end, and 8-bit
/// groups with a remainder, go one column at a time (a horizontal add per group).
///
/// Codes: 4-bit weights are bytes of two nibbles (element 2j low, 2j + 1 high), read `chunk / 2`
/// bytes at a time and split into [low nibbles | high nibbles] i16 lanes; d is stored in that order
/// (permuted per chunk) so both operands line up. 8-bit weights are read as they lie, and a group's
/// last `groupSize % chunk` elements (odd K) are summed one by one.
///
/// buffers: [x f32, w (u32 words or i8), scales f32, out f32]; dims: [M]; work items: output columns.
public enum DynamicQuantLinearKernels {
    /// How the target multiplies i16 pairs into i32 lanes.
    public enum WordDot: String, Sendable {
        /// `vpdpwssd` zmm (AVX-512 VNNI): multiply, pair-sum and accumulate in one instruction.
        case avx512vnni
        /// `vpmaddwd` zmm (AVX-512 BW) + add.
        case avx512bw
        /// `vpdpwssd` ymm (AVX-VNNI, VEX-encoded).
        case avxvnni
        /// `vpmaddwd` ymm + add.
        case avx2
        /// ARM64 NEON: widening multiply-accumulate of halves (`smlal`/`smlal2` v.4s, 4 products
        /// each) of the 9-bit codes q − z.
        case neon
        /// ARM64 with +dotprod: `sdot` v.4s of the 8-bit codes q and the weights (16 products per
        /// instruction), and Σ(q − z)·c = Σq·c − z·Σc, Σc by `sdot` with ones once per weight chunk.
        case neonDot = "neondot"
        /// Widen to i32, multiply, add (other targets; LLVM picks the instructions).
        case generic

        /// From the target's triple and feature string (`+avx512vnni,…` as LLVM lists them).
        public static func forTarget(triple: String, features: String) -> WordDot {
            if triple.hasPrefix("aarch64") || triple.hasPrefix("arm64") {
                return features.split(separator: ",").contains("+dotprod") ? .neonDot : .neon
            }
            guard triple.hasPrefix("x86_64") else { return .generic }
            let set = Set(features.split(separator: ",").map(String.init))
            if set.contains("+avx512bw") {
                return set.contains("+avx512vnni") ? .avx512vnni : .avx512bw
            }
            if set.contains("+avx2") { return set.contains("+avxvnni") ? .avxvnni : .avx2 }
            return .generic
        }

        /// i16 lanes of one dot-product step.
        var words: Int {
            switch self {
            case .avx512vnni, .avx512bw: return 32
            case .avxvnni, .avx2: return 16
            case .neon, .neonDot, .generic: return 16
            }
        }
    }

    /// Rows per block: weights are unpacked once per block and used by every row; the i16 scratch
    /// of the block stays ≤ 64 KiB.
    public static func tokenBlock(k: Int) -> Int { max(1, min(4, 32768 / k)) }

    /// i16 lanes per chunk for a group size: the widest step that divides it (4-bit needs whole
    /// chunks; 8-bit sums a remainder one by one), at least 8.
    static func chunk(groupSize: Int, bits: Int, dot: WordDot) -> Int {
        var w = dot.words
        while w > 8 && groupSize % w != 0 { w /= 2 }
        return w
    }

    /// Work items per block of columns (the launch grain): the i32 lanes of one dot step.
    public static func columnBlock(groupSize: Int, bits: Int, dot: WordDot) -> Int { chunk(groupSize: groupSize, bits: bits, dot: dot) / 2 }

    public static func supports(k: Int, groupSize: Int, bits: Int) -> Bool {
        guard bits == 4 || bits == 8, groupSize > 0, k % groupSize == 0, k <= 65536 else { return false }
        return bits == 8 || groupSize % 8 == 0
    }

    public static func linear(k: Int, n: Int, bits: Int, groupSize: Int, dot: WordDot) -> KernelDefinition {
        let tb = tokenBlock(k: k)
        let cw = chunk(groupSize: groupSize, bits: bits, dot: dot)
        let name = "dqlinear_qd8_w\(bits)g\(groupSize)_k\(k)_n\(n)_tb\(tb)_\(dot.rawValue)\(cw)"
        return KernelDefinition(name: name) { e in
            let b = e.b
            let x = e.buffer(0), w = e.buffer(1), scales = e.buffer(2), out = e.buffer(3)
            let m = e.dim(0)
            let groups = k / groupSize
            let chunks = groupSize / cw, rest = groupSize % cw
            let dq = b.alloca(LLVMArrayType2(b.i16, UInt64(tb * k)))
            LLVMSetAlignment(dq, 64)
            let aScales = b.alloca(LLVMArrayType2(b.f32, UInt64(tb)))
            // sdot takes 16 bytes: the 8-bit codes q (beside d = q − z) and each row's zero point.
            let sdot = dot == .neonDot && cw == 16
            let q8 = sdot ? b.alloca(LLVMArrayType2(b.i8, UInt64(tb * k))) : nil
            let zeroPoints = sdot ? b.alloca(LLVMArrayType2(b.i32, UInt64(tb))) : nil
            let words = b.vector(b.i16, cw), wide = b.vector(b.i32, cw)
            let lanesOut = cw / 2, accType = b.vector(b.i32, lanesOut)

            /// Row `row` of x → d codes at dq[slot·K …] (permuted per chunk for 4-bit) and its scale.
            func quantize(row: IRValue, slot: Int) {
                let base = b.gep(b.f32, x, b.mul(row, b.i64(k)))
                let v = 8, vt = b.vector(b.f32, v)
                let body = k / v * v
                let params = QD8RowQuantization(b, row: base, k: k)
                let zp = params.zeroPoint
                b.store(params.scale, b.gep(b.f32, aScales, b.i64(slot)))
                if let zeroPoints { b.store(b.fptosi(zp, b.i32), b.gep(b.i32, zeroPoints, b.i64(slot))) }
                let qdst = q8.map { b.gep(b.i8, $0, b.i64(slot * k)) }

                let dst = b.gep(b.i16, dq, b.i64(slot * k))
                // d for 8 elements at i: clamp(rint(x·m) + z) − z, as i16.
                func codes(_ xv: IRValue, lanes: Int) -> IRValue {
                    let z = lanes == 1 ? zp : b.splat(zp, lanes)
                    let d = LLVMBuildFSub(b.ref, params.code(xv, lanes: lanes), z, "")!
                    return b.fptosi(d, lanes == 1 ? b.i16 : b.vector(b.i16, lanes))
                }
                /// q itself for sdot: d + z, which is in [-128, 127].
                func bytesOf(_ d: IRValue, lanes: Int) -> IRValue {
                    let z = b.fptosi(zp, b.i16)
                    return b.trunc(b.add(d, lanes == 1 ? z : b.splat(z, lanes)), lanes == 1 ? b.i8 : b.vector(b.i8, lanes))
                }
                if bits == 8 {
                    if body > 0 {
                        b.loop(b.i64(0), b.i64(body), step: v, "q") { i in
                            let d = codes(b.load(vt, b.gep(b.f32, base, i)), lanes: v)
                            b.store(d, b.gep(b.i16, dst, i), align: 2)
                            if let qdst { b.store(bytesOf(d, lanes: v), b.gep(b.i8, qdst, i), align: 1) }
                        }
                    }
                    for i in body..<k {
                        let d = codes(b.load(b.f32, b.gep(b.f32, base, b.i64(i))), lanes: 1)
                        b.store(d, b.gep(b.i16, dst, b.i64(i)), align: 2)
                        if let qdst { b.store(bytesOf(d, lanes: 1), b.gep(b.i8, qdst, b.i64(i)), align: 1) }
                    }
                } else {
                    // Chunk of cw elements: even elements first, then odd (the nibble order).
                    let ct = b.vector(b.f32, cw)
                    b.loop(b.i64(0), b.i64(k), step: cw, "q") { i in
                        let all = codes(b.load(ct, b.gep(b.f32, base, i)), lanes: cw)
                        let permuted = b.shuffle(all, all, (0..<(cw / 2)).map { 2 * $0 } + (0..<(cw / 2)).map { 2 * $0 + 1 })
                        b.store(permuted, b.gep(b.i16, dst, i), align: 2)
                        if let qdst { b.store(bytesOf(permuted, lanes: cw), b.gep(b.i8, qdst, i), align: 1) }
                    }
                }
            }

            /// Σ pairs of a·c into acc's i32 lanes.
            func dotStep(_ acc: IRValue, _ a: IRValue, _ c: IRValue) -> IRValue {
                switch dot {
                case .avx512vnni, .avxvnni:
                    let id = dot == .avx512vnni ? "llvm.x86.avx512.vpdpwssd.512" : "llvm.x86.avx512.vpdpwssd.256"
                    if cw == dot.words { return callCasting(id, [acc, a, c]) }
                case .avx512bw, .avx2:
                    break
                case .neon, .neonDot:
                    // Lanes pair i with i + cw/2 (not 2i with 2i+1): the group's sum is the same integer.
                    let lo = Array(0..<lanesOut), hi = Array(lanesOut..<cw)
                    let products = [lo, hi].map { half in
                        b.mul(b.sext(b.shuffle(a, a, half), accType), b.sext(b.shuffle(c, c, half), accType))
                    }
                    return b.add(b.add(acc, products[0]), products[1])
                case .generic:
                    let p = b.mul(b.sext(a, wide), b.sext(c, wide))
                    let even = b.shuffle(p, p, (0..<lanesOut).map { 2 * $0 }), odd = b.shuffle(p, p, (0..<lanesOut).map { 2 * $0 + 1 })
                    return b.add(acc, b.add(even, odd))
                }
                let id: String
                switch cw {
                case 32: id = "llvm.x86.avx512.pmaddw.d.512"
                case 16: id = "llvm.x86.avx2.pmadd.wd"
                default: id = "llvm.x86.sse2.pmadd.wd"
                }
                return b.add(acc, callCasting(id, [a, c]))
            }

            /// An x86 intrinsic whose parameter types are taken from its declaration (operands bitcast).
            func callCasting(_ id: String, _ args: [IRValue]) -> IRValue { Support.intrinsicCasting(b, id, args, returns: accType) }

            /// Weight codes of row r at element e (a chunk start) as cw i16 lanes in the d order.
            func weightChunk(_ r: IRValue, _ element: IRValue) -> IRValue {
                if bits == 8 {
                    let bytes = b.load(b.vector(b.i8, cw), b.gep(b.i8, w, b.add(b.mul(r, b.i64(k)), element)), align: 1)
                    return b.sext(bytes, words)
                }
                let half = cw / 2
                let at = b.add(b.mul(r, b.i64(k / 2)), b.sdiv(element, b.i64(2)))
                let bytes = b.zext(b.load(b.vector(b.i8, half), b.gep(b.i8, w, at), align: 1), b.vector(b.i16, half))
                let low = b.and(bytes, b.splat(LLVMConstInt(b.i16, 15, 0), half))
                let high = b.lshr(bytes, b.splat(LLVMConstInt(b.i16, 4, 0), half))
                let codes = b.shuffle(low, high, Array(0..<cw))
                return b.sub(codes, b.splat(LLVMConstInt(b.i16, 8, 0), cw))
            }

            /// Weight codes of row r at element e as 16 i8 lanes in the d order (sdot).
            func weightBytes(_ r: IRValue, _ element: IRValue) -> IRValue {
                if bits == 8 { return b.load(b.vector(b.i8, cw), b.gep(b.i8, w, b.add(b.mul(r, b.i64(k)), element)), align: 1) }
                let half = cw / 2
                let at = b.add(b.mul(r, b.i64(k / 2)), b.sdiv(element, b.i64(2)))
                let bytes = b.load(b.vector(b.i8, half), b.gep(b.i8, w, at), align: 1)
                let low = b.and(bytes, b.splat(LLVMConstInt(b.i8, 15, 0), half))
                let high = b.lshr(bytes, b.splat(LLVMConstInt(b.i8, 4, 0), half))
                return b.sub(b.shuffle(low, high, Array(0..<cw)), b.splat(LLVMConstInt(b.i8, 8, 0), cw))
            }

            /// groupSums by sdot: lanes 0–3 Σq·c, lanes 4–7 −z·Σc (Σc by sdot with ones), so the
            /// vector's lanes still sum to the group's exact Σ d·c.
            func sdotGroupSums(_ r: IRValue, _ g0: IRValue, nt: Int) -> [IRValue] {
                let acc4 = b.vector(b.i32, 4), bytes16 = b.vector(b.i8, 16)
                func step(_ acc: IRValue, _ x: IRValue, _ y: IRValue) -> IRValue {
                    Support.intrinsic(b, "llvm.aarch64.neon.sdot", overloads: [acc4, bytes16], [acc, x, y])
                }
                let ones = b.splat(LLVMConstInt(b.i8, 1, 0), 16)
                var sums = [IRValue](repeating: b.zero(acc4), count: nt), weights = b.zero(acc4)
                for ci in 0..<chunks {
                    let element = b.add(g0, b.i64(ci * cw))
                    let c = weightBytes(r, element)
                    weights = step(weights, ones, c)
                    for t in 0..<nt {
                        sums[t] = step(sums[t], b.load(bytes16, b.gep(b.i8, q8!, b.add(b.i64(t * k), element)), align: 1), c)
                    }
                }
                return (0..<nt).map { t in
                    let z = b.load(b.i32, b.gep(b.i32, zeroPoints!, b.i64(t)))
                    let correction = b.mul(b.splat(b.sub(b.i32(0), z), 4), weights)
                    return b.shuffle(sums[t], correction, Array(0..<8))
                }
            }

            /// Σ over a group's chunks of the dot steps of column r, token t's codes: a vector of pair sums.
            func groupSums(_ r: IRValue, _ g0: IRValue, nt: Int) -> [IRValue] {
                if sdot { return sdotGroupSums(r, g0, nt: nt) }
                var sums = [IRValue](repeating: b.zero(accType), count: nt)
                for ci in 0..<chunks {
                    let element = b.add(g0, b.i64(ci * cw))
                    let c = weightChunk(r, element)
                    for t in 0..<nt {
                        let a = b.load(words, b.gep(b.i16, dq, b.add(b.i64(t * k), element)), align: 2)
                        sums[t] = dotStep(sums[t], a, c)
                    }
                }
                return sums
            }

            /// One column at a time: a horizontal add per group (block tails, 8-bit remainders).
            func column(_ r: IRValue, t0: IRValue, nt: Int, aScale: [IRValue]) {
                let totals = b.loop(b.i64(0), b.i64(groups), carrying: [IRValue](repeating: b.f32(0), count: nt), "g") { g, acc in
                    let g0 = b.mul(g, b.i64(groupSize))
                    var totals = groupSums(r, g0, nt: nt).map { Support.intrinsic(b, "llvm.vector.reduce.add", overloads: [accType], [$0]) }
                    for j in 0..<rest {   // 8-bit only: the group's last elements
                        let element = b.add(g0, b.i64(chunks * cw + j))
                        let c = b.sext(b.load(b.i8, b.gep(b.i8, w, b.add(b.mul(r, b.i64(k)), element)), align: 1), b.i32)
                        for t in 0..<nt {
                            let a = b.sext(b.load(b.i16, b.gep(b.i16, dq, b.add(b.i64(t * k), element)), align: 2), b.i32)
                            totals[t] = b.add(totals[t], b.mul(a, c))
                        }
                    }
                    let s = b.load(b.f32, b.gep(b.f32, scales, b.add(b.mul(r, b.i64(groups)), g)))
                    return (0..<nt).map { QD8RowQuantization.exact(b, "llvm.fma", [b.sitofp(totals[$0], b.f32), s, acc[$0]]) }
                }
                for t in 0..<nt {
                    let at = b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), r)
                    b.store(LLVMBuildFMul(b.ref, totals[t], aScale[t], "")!, b.gep(b.f32, out, at))
                }
            }

            /// Columns r0 ..< r0 + nb together: per group, the nb pair-sum vectors of each token added
            /// across into one vector of exact sums, then one vector FMA with the nb scales.
            let nb = lanesOut
            let blockF32 = b.vector(b.f32, nb)
            func columnBlock(_ r0: IRValue, t0: IRValue, nt: Int, aScale: [IRValue]) {
                let zero = b.zero(blockF32)
                let totals = b.loop(b.i64(0), b.i64(groups), carrying: [IRValue](repeating: zero, count: nt), "gb") { g, acc in
                    let g0 = b.mul(g, b.i64(groupSize))
                    var trees = (0..<nt).map { _ in SumTree(b: b, width: nb) }
                    for j in 0..<nb {
                        let sums = groupSums(b.add(r0, b.i64(j)), g0, nt: nt)
                        for t in 0..<nt { trees[t].push(sums[t]) }
                    }
                    let s = Lanes(b, nb).loadStrided(b.f32, scales, b.add(b.mul(r0, b.i64(groups)), g), stride: b.i64(groups))
                    return (0..<nt).map { QD8RowQuantization.exact(b, "llvm.fma", [b.sitofp(trees[$0].result(), blockF32), s, acc[$0]]) }
                }
                for t in 0..<nt {
                    let at = b.add(b.mul(b.add(t0, b.i64(t)), b.i64(n)), r0)
                    b.store(LLVMBuildFMul(b.ref, totals[t], b.splat(aScale[t], nb), "")!, b.gep(b.f32, out, at))
                }
            }

            func tokens(t0: IRValue, nt: Int) {
                for t in 0..<nt { quantize(row: b.add(t0, b.i64(t)), slot: t) }
                let aScale = (0..<nt).map { b.load(b.f32, b.gep(b.f32, aScales, b.i64($0))) }
                if rest == 0 && nb > 1 {
                    // Whole blocks in [begin, end) (begin is a multiple of nb: the launch grain), then the tail.
                    let span = b.sub(e.end, e.begin)
                    let blockEnd = b.add(e.begin, b.mul(b.sdiv(span, b.i64(nb)), b.i64(nb)))
                    b.loop(e.begin, blockEnd, step: nb, "nb") { r0 in columnBlock(r0, t0: t0, nt: nt, aScale: aScale) }
                    b.loop(blockEnd, e.end, "n") { r in column(r, t0: t0, nt: nt, aScale: aScale) }
                } else {
                    b.loop(e.begin, e.end, "n") { r in column(r, t0: t0, nt: nt, aScale: aScale) }
                }
            }
            let mMain = b.mul(b.sdiv(m, b.i64(tb)), b.i64(tb))
            b.loop(b.i64(0), mMain, step: tb, "t") { t0 in tokens(t0: t0, nt: tb) }
            if tb > 1 { b.loop(mMain, m, "tt") { t0 in tokens(t0: t0, nt: 1) } }
        }
    }
}

/// Lane j of the result is the sum of the lanes of the j-th vector pushed (`width` vectors of `width`
/// i32 lanes): the transpose-and-add tree of `Support.sumEach`, merged as the vectors come in (like a
/// binary counter), so at most log2(width) + 1 partial vectors are live. Integer adds: exact in any order.
struct SumTree {
    let b: Builder
    let width: Int
    private var stack: [(level: Int, value: IRValue, owners: [Int])] = []
    private var pushed = 0

    init(b: Builder, width: Int) {
        precondition(width > 1 && width & (width - 1) == 0)
        self.b = b
        self.width = width
    }

    mutating func push(_ v: IRValue) {
        stack.append((0, v, [Int](repeating: pushed, count: width)))
        pushed += 1
        while stack.count >= 2, stack[stack.count - 1].level == stack[stack.count - 2].level {
            let y = stack.removeLast(), x = stack.removeLast()
            stack.append(merge(x, y))
        }
    }

    /// Each item's lanes hold partial sums of `owners[lane]` in runs of equal owners; merging two
    /// halves every run (two shuffles and an add).
    private func merge(_ x: (level: Int, value: IRValue, owners: [Int]), _ y: (level: Int, value: IRValue, owners: [Int]))
        -> (level: Int, value: IRValue, owners: [Int]) {
        let (first, second, owners) = Support.halvingMasks(x.owners, y.owners, width: width)
        return (x.level + 1, b.add(b.shuffle(x.value, y.value, first), b.shuffle(x.value, y.value, second)), owners)
    }

    /// The sums in push order (call after `width` pushes).
    func result() -> IRValue {
        precondition(pushed == width && stack.count == 1)
        let top = stack[0]
        let order = (0..<width).map { j in top.owners.firstIndex(of: j)! }
        return b.shuffle(top.value, top.value, order)
    }
}
