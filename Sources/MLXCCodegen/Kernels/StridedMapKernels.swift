import CLLVM
import LLVMKit

/// `out[i] = f(a[i], b[i], …)` over a contiguous output of rank ≤ 5 whose operands are strided
/// views: the runtime collapses the broadcast (or permuted, or sliced) layout to at most five dims
/// and passes, per operand, a base offset and one stride per dim (0 where it broadcasts).
///
/// Work items are output elements, so any split across threads works (a share may start and end
/// mid-row). Each row of the innermost dim is one vector loop; every operand is read there in one
/// of three ways, picked per call from its inner stride: contiguous (1: vector loads), broadcast
/// (0: one scalar splat per row) or strided (anything else: gathers). The kernel holds a copy of the
/// row loop for each combination of ways its operands allow; the outer dims advance as an odometer.
///
/// dims: [n4 (inner), n0, n1, n2, n3, then per operand: base, s0, s1, s2, s3, s4] (elements).
/// buffers: [operands…, out].
public enum StridedMapKernels {
    public enum Access: Int, CaseIterable, Sendable {
        case contiguous, broadcast, strided
    }

    public static let rank = 5
    public static func dimCount(operands: Int) -> Int { rank + (rank + 1) * operands }

    /// A map kernel: `compute(lanes, operandValues)` gets each operand as stored (see
    /// `ElementType.storage`) and returns the output as stored. `access[k]` lists the ways operand
    /// k may be read (the runtime only passes layouts that fit them). `skip` buffers between the
    /// operands and the output are not read (run-time scalars the launch needs for its dims).
    public static func map(name: String, inputs: [ElementType], output: ElementType, access: [[Access]], lanes: Int,
                           skip: Int = 0, compute: @escaping (Lanes, [IRValue]) -> IRValue) -> KernelDefinition {
        precondition(access.count == inputs.count)
        return KernelDefinition(name: skip > 0 ? "\(name)_skip\(skip)" : name) { e in
            let b = e.b
            let n = inputs.count
            let out = e.buffer(n + skip)
            let operands = (0..<n).map { e.buffer($0) }
            let inner = e.dim(0)
            let outer = (1..<rank).map { e.dim($0) }
            let base = (0..<n).map { e.dim(rank + (rank + 1) * $0) }
            let strides = (0..<n).map { k in (0..<rank).map { e.dim(rank + (rank + 1) * k + 1 + $0) } }
            let inStorage = inputs.map { $0.storage(b) }
            let outStorage = output.storage(b)

            // Which way each operand is read this call: its index in access[k].
            var selector = b.i64(0)
            var radix = 1
            for k in 0..<n {
                let sInner = strides[k][rank - 1]
                func code(_ a: Access) -> IRValue { b.i64(access[k].firstIndex(of: a) ?? 0) }
                var c = code(.strided)
                c = b.select(b.icmp(LLVMIntEQ, sInner, b.i64(0)), code(.broadcast), c)
                c = b.select(b.icmp(LLVMIntEQ, sInner, b.i64(1)), code(.contiguous), c)
                selector = b.add(selector, b.mul(c, b.i64(radix)))
                radix *= access[k].count
            }
            var combos: [[Access]] = [[]]
            for k in 0..<n { combos = access[k].flatMap { a in combos.map { $0 + [a] } } }
            // combos enumerates operand 0 fastest, matching the mixed-radix selector.
            let rowFirst = b.sdiv(e.begin, inner)
            let rowEnd = b.add(b.sdiv(b.sub(e.end, b.i64(1)), inner), b.i64(1))
            // The outer index of the first row, innermost outer dim last.
            var start = [IRValue](repeating: b.i64(0), count: rank - 1)
            var rest = rowFirst
            for d in stride(from: rank - 2, through: 1, by: -1) {
                start[d] = b.srem(rest, outer[d])
                rest = b.sdiv(rest, outer[d])
            }
            start[0] = rest

            Support.switchOn(b, selector, "layout", combos.map { ways in {
                _ = b.loop(rowFirst, rowEnd, carrying: start, "row") { row, idx in
                    let rowStart = b.mul(row, inner)
                    let c0 = Support.smax(b, b.sub(e.begin, rowStart), b.i64(0))
                    let c1 = Support.smin(b, b.sub(e.end, rowStart), inner)
                    let offsets = (0..<n).map { k in
                        var o = base[k]
                        for d in 0..<(rank - 1) { o = b.add(o, b.mul(idx[d], strides[k][d])) }
                        return o
                    }
                    let scalars: [IRValue?] = (0..<n).map { k in
                        ways[k] == .broadcast ? b.load(inStorage[k], b.gep(inStorage[k], operands[k], offsets[k]),
                                                       align: Support.alignment(inStorage[k])) : nil
                    }
                    Support.vectorLoop(b, c0, c1, width: lanes, "col") { l, col in
                        let values = (0..<n).map { k -> IRValue in
                            switch ways[k] {
                            case .contiguous: return l.load(inStorage[k], operands[k], b.add(offsets[k], col))
                            case .broadcast: return l.splat(scalars[k]!)
                            case .strided:
                                let sInner = strides[k][rank - 1]
                                return l.loadStrided(inStorage[k], operands[k], b.add(offsets[k], b.mul(col, sInner)), stride: sInner)
                            }
                        }
                        l.store(compute(l, values), outStorage, out, b.add(rowStart, col))
                    }
                    // Odometer: advance the outer index by one row (the outermost dim never wraps).
                    var next = idx
                    var carry: IRValue? = nil   // nil: the innermost outer dim always steps
                    for d in stride(from: rank - 2, through: 0, by: -1) {
                        let stepped = b.add(idx[d], b.i64(1))
                        let moved = carry.map { b.select($0, stepped, idx[d]) } ?? stepped
                        if d == 0 { next[d] = moved; break }
                        let wrap = b.icmp(LLVMIntEQ, moved, outer[d])
                        next[d] = b.select(wrap, b.i64(0), moved)
                        carry = carry.map { b.and($0, wrap) } ?? wrap
                    }
                    return next
                }
            } })
        }
    }

    /// A plain copy of `byteSize`-byte elements through any strided view (transpose, broadcast_to,
    /// slice, take of one index): the data movement kernels share it.
    public static func copy(byteSize: Int, lanes: Int, skip: Int = 0) -> KernelDefinition {
        let t = ElementType.bits(byteSize)
        let width = max(1, lanes * 4 / byteSize)   // a full vector register of elements
        return map(name: "strided_copy_b\(byteSize * 8)_v\(width)", inputs: [t], output: t,
                   access: [[.contiguous, .broadcast, .strided]], lanes: width, skip: skip) { _, v in v[0] }
    }
}
