import CLLVM
import LLVMKit
import MLXCIR

/// A user Metal kernel compiled for the CPU: the checked Metal subset program (`MetalProgram`) emitted as a loop
/// over the launch grid (z, y, x; one work item runs the whole grid, after filling the outputs with the kernel's
/// init value, 0 without one), each thread's body as straight LLVM code — locals in stack slots, if/else and loops
/// as blocks, `return` ending the thread. Semantics as the reference interpreter's (Reference+MetalKernel): integers
/// wrap, half/bfloat results rounded after each op (kept in f32 registers), buffer indices outside the buffer read
/// 0 and write nothing, integer division by zero gives 0, shift counts modulo the width, float→int saturates.
/// Math builtins use mlxc's vector math (exp/log/tanh/sin/cos within a few ulps of the libm values the reference
/// uses). buffers: inputs, outputs; dims: grid (3), threadgroup (3), each input's shape, each output's element
/// count; work items: 1.
public enum MetalSubsetKernels {
    public static func kernel(_ p: MetalProgram, name: String, initValue: Double?) -> KernelDefinition {
        // A stable name: the program's text, hashed (kernel caches key on names).
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(p)|\(initValue.map { "\($0)" } ?? "-")".utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let safe = String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(32))
        return KernelDefinition(name: "metal_subset_\(safe)_\(String(h, radix: 16))") { e in
            var emitter = MetalEmitter(e: e, p: p)
            emitter.emit(initValue: initValue)
        }
    }
}

struct MetalEmitter {
    let e: KernelEmitter
    let p: MetalProgram
    var b: Builder { e.b }
    var slots: [IRValue] = []
    var inputShapes: [[IRValue]] = []
    var counts: [IRValue] = []
    var grid: [IRValue] = [], group: [IRValue] = []
    var position: [IRValue] = []
    var loops: [(step: LLVMBasicBlockRef, exit: LLVMBasicBlockRef)] = []
    var threadEnd: LLVMBasicBlockRef?

    init(e: KernelEmitter, p: MetalProgram) {
        self.e = e
        self.p = p
    }

    func type(_ t: MetalScalar) -> IRType {
        switch t {
        case .bool: return b.i1
        case .i8, .u8: return b.i8
        case .i16, .u16: return b.i16
        case .i32, .u32: return b.i32
        case .i64, .u64: return b.i64
        case .f16, .bf16, .f32: return b.f32   // registers; storage types in load/store
        }
    }

    func ci(_ t: IRType, _ bits: UInt64) -> IRValue { LLVMConstInt(t, bits, 0) }
    func cf(_ x: Double) -> IRValue { LLVMConstReal(b.f32, x) }

    func element(_ t: MetalScalar) -> ElementType? { [.f32: .f32, .f16: .f16, .bf16: .bf16][t] }

    mutating func emit(initValue: Double?) {
        slots = p.locals.map { b.alloca(type($0)) }
        var d = 0
        func nextDim() -> IRValue { defer { d += 1 }; return e.dim(d) }
        grid = (0..<3).map { _ in nextDim() }
        group = (0..<3).map { _ in nextDim() }
        inputShapes = p.inputRanks.map { rank in (0..<rank).map { _ in nextDim() } }
        for shape in inputShapes { counts.append(shape.reduce(b.i64(1)) { b.mul($0, $1) }) }
        for _ in 0..<p.outputCount { counts.append(nextDim()) }
        // Outputs start as the init value.
        let inputs = p.inputRanks.count
        for o in 0..<p.outputCount {
            let buffer = inputs + o, t = p.buffers[buffer]
            let v = constant(initValue ?? 0, t)
            b.loop(b.i64(0), counts[buffer], "fill\(o)") { i in store(buffer, i, v) }
        }
        b.loop(b.i64(0), grid[2], "z") { z in
            b.loop(b.i64(0), grid[1], "y") { y in
                b.loop(b.i64(0), grid[0], "x") { x in
                    position = [x, y, z]
                    for (slot, t) in zip(slots, p.locals) { b.store(zero(t), slot, align: 8) }
                    let end = b.block(b.currentFunction, "thread.end")
                    threadEnd = end
                    statements(p.body)
                    b.br(end)
                    b.position(at: end)
                }
            }
        }
    }

    func constant(_ x: Double, _ t: MetalScalar) -> IRValue {
        if t.isFloat { return cf(MetalArithmetic.round(x, t)) }
        if t == .bool { return ci(b.i1, x != 0 ? 1 : 0) }
        return ci(type(t), UInt64(bitPattern: Int64(x)))
    }

    func zero(_ t: MetalScalar) -> IRValue { constant(0, t) }

    /// Continues emitting into a fresh block after a terminator (what follows is unreachable).
    func deadBlock() { b.position(at: b.block(b.currentFunction, "dead")) }

    mutating func statements(_ body: [MetalStatement]) { for s in body { statement(s) } }

    mutating func statement(_ s: MetalStatement) {
        switch s {
        case .set(let slot, let v): b.store(value(v), slots[slot], align: 8)
        case .store(let buffer, let index, let v):
            let i = value(index), x = value(v)
            Support.ifThen(b, inBounds(i, buffer), "store") { store(buffer, i, x) }
        case .ifElse(let c, let then, let otherwise):
            let cond = value(c)
            let f = b.currentFunction
            let tb = b.block(f, "then"), eb = b.block(f, "else"), join = b.block(f, "endif")
            b.condBr(cond, tb, eb)
            b.position(at: tb)
            statements(then)
            b.br(join)
            b.position(at: eb)
            statements(otherwise)
            b.br(join)
            b.position(at: join)
        case .loop(let c, let body, let step):
            let f = b.currentFunction
            let header = b.block(f, "while"), bodyBlock = b.block(f, "body"), stepBlock = b.block(f, "step"), exit = b.block(f, "wend")
            b.br(header)
            b.position(at: header)
            b.condBr(value(c), bodyBlock, exit)
            b.position(at: bodyBlock)
            loops.append((stepBlock, exit))
            statements(body)
            loops.removeLast()
            b.br(stepBlock)
            b.position(at: stepBlock)
            statements(step)
            b.br(header)
            b.position(at: exit)
        case .returnThread:
            b.br(threadEnd!)
            deadBlock()
        case .breakLoop:
            b.br(loops.last!.exit)
            deadBlock()
        case .continueLoop:
            b.br(loops.last!.step)
            deadBlock()
        }
    }

    func inBounds(_ i: IRValue, _ buffer: Int) -> IRValue {
        b.and(b.icmp(LLVMIntSGE, i, b.i64(0)), b.icmp(LLVMIntSLT, i, counts[buffer]))
    }

    func store(_ buffer: Int, _ i: IRValue, _ v: IRValue) {
        let t = p.buffers[buffer], base = e.buffer(buffer)
        if let el = element(t) { Lanes(b, 1).storeF32(v, el, base, i); return }
        let stored = t == .bool ? b.zext(v, b.i8) : v
        b.store(stored, b.gep(t == .bool ? b.i8 : type(t), base, i), align: 1)
    }

    func load(_ buffer: Int, _ i: IRValue) -> IRValue {
        let t = p.buffers[buffer], base = e.buffer(buffer)
        if let el = element(t) { return Lanes(b, 1).loadF32(el, base, i) }
        if t == .bool { return b.icmp(LLVMIntNE, b.load(b.i8, b.gep(b.i8, base, i), align: 1), ci(b.i8, 0)) }
        return b.load(type(t), b.gep(type(t), base, i), align: 1)
    }

    /// `make()` when `cond`, else `otherwise` (a phi: `make` may read memory only valid under `cond`).
    func guarded(_ cond: IRValue, _ otherwise: IRValue, _ make: () -> IRValue) -> IRValue {
        Support.ifElse(b, cond, "guard", then: { [make()] }, otherwise: { [otherwise] })[0]
    }

    /// f32 register rounded to half/bfloat when the type is one.
    func rounded(_ v: IRValue, _ t: MetalScalar) -> IRValue {
        guard t == .f16 || t == .bf16, let el = element(t) else { return v }
        let one = Lanes(b, 1)
        return one.widenF32(one.narrowF32(v, el), el)
    }

    func builtin(_ which: MetalBuiltin, _ axis: Int) -> IRValue {
        let pos = position[axis], g = group[axis]
        let v: IRValue
        switch which {
        case .threadPositionInGrid: v = pos
        case .threadsPerGrid, .gridSize: v = grid[axis]
        case .threadPositionInThreadgroup: v = b.srem(pos, g)
        case .threadgroupPositionInGrid: v = b.sdiv(pos, g)
        case .threadsPerThreadgroup: v = g
        case .threadgroupsPerGrid: v = b.sdiv(b.add(grid[axis], b.sub(g, b.i64(1))), g)
        case .threadIndexInThreadgroup:
            let x = b.srem(position[0], group[0]), y = b.srem(position[1], group[1]), z = b.srem(position[2], group[2])
            v = b.add(x, b.mul(group[0], b.add(y, b.mul(group[1], z))))
        }
        return b.trunc(v, b.i32)
    }

    /// Element `d` of a list of i64 values (0 outside it).
    func pick(_ list: [IRValue], _ d: IRValue) -> IRValue {
        var r = b.i64(0)
        for (k, x) in list.enumerated() { r = b.select(b.icmp(LLVMIntEQ, d, b.i64(k)), x, r) }
        return r
    }

    func value(_ v: MetalValue) -> IRValue {
        switch v {
        case .int(let n, let t): return t == .bool ? ci(b.i1, n != 0 ? 1 : 0) : ci(type(t), UInt64(bitPattern: n))
        case .float(let x, _): return cf(x)
        case .local(let slot, let t): return b.load(type(t), slots[slot], align: 8)
        case .builtin(let which, let axis): return builtin(which, axis)
        case .load(let buffer, let index, let t):
            let i = value(index)
            return guarded(inBounds(i, buffer), zero(t)) { load(buffer, i) }
        case .shape(let input, let dim): return b.trunc(pick(inputShapes[input], value(dim)), b.i32)
        case .stride(let input, let dim):
            let shape = inputShapes[input]
            let strides = shape.indices.map { k in shape[(k + 1)...].reduce(b.i64(1)) { b.mul($0, $1) } }
            return pick(strides, value(dim))
        case .unary(let op, let x, let t):
            let a = value(x)
            switch op {
            case "-": return t.isFloat ? b.fneg(a) : b.sub(ci(type(t), 0), a)
            case "~": return LLVMBuildXor(b.ref, a, ci(type(t), UInt64.max), "")!
            default: return LLVMBuildXor(b.ref, a, ci(b.i1, 1), "")!
            }
        case .binary(let op, let x, let y, let t):
            if op == "&&" || op == "||" {
                // Short-circuit: y only when it decides (it may index out of bounds otherwise); else a itself.
                let a = value(x)
                return guarded(op == "&&" ? a : LLVMBuildXor(b.ref, a, ci(b.i1, 1), "")!, a) { value(y) }
            }
            return binary(op, value(x), value(y), operand: x.type, t)
        case .convert(let x, let t): return convert(value(x), from: x.type, to: t)
        case .select(let c, let x, let y, let t):
            let cond = value(c)
            // Both arms are side-effect free, but a load may be out of bounds only in the unused one: guarded.
            let xv = guarded(cond, zero(t)) { value(x) }
            let notCond = LLVMBuildXor(b.ref, cond, ci(b.i1, 1), "")!
            let yv = guarded(notCond, zero(t)) { value(y) }
            return b.select(cond, xv, yv)
        case .math(let name, let args, let t): return math(name, args.map { value($0) }, t)
        }
    }

    func binary(_ op: String, _ a: IRValue, _ c: IRValue, operand: MetalScalar, _ t: MetalScalar) -> IRValue {
        if operand.isFloat {
            let pred: [String: LLVMRealPredicate] = ["==": LLVMRealOEQ, "!=": LLVMRealUNE, "<": LLVMRealOLT, ">": LLVMRealOGT,
                                                     "<=": LLVMRealOLE, ">=": LLVMRealOGE]
            if let p = pred[op] { return b.fcmp(p, a, c) }
            let r: IRValue
            // IEEE operations, one rounding each (no reassociation or contraction: the reference's order).
            switch op {
            case "+": r = LLVMBuildFAdd(b.ref, a, c, "")!
            case "-": r = LLVMBuildFSub(b.ref, a, c, "")!
            case "*": r = LLVMBuildFMul(b.ref, a, c, "")!
            default: r = LLVMBuildFDiv(b.ref, a, c, "")!
            }
            return rounded(r, t)
        }
        let signed = operand.isSigned, it = type(operand)
        let zeroI = ci(it, 0)
        switch op {
        case "+": return b.add(a, c)
        case "-": return b.sub(a, c)
        case "*": return b.mul(a, c)
        case "/", "%":
            let isZero = b.icmp(LLVMIntEQ, c, zeroI)
            if signed {
                let minusOne = b.icmp(LLVMIntEQ, c, ci(it, UInt64.max))
                let safe = b.select(b.or(isZero, minusOne), ci(it, 1), c)
                if op == "/" {
                    let q = b.select(minusOne, b.sub(zeroI, a), b.sdiv(a, safe))
                    return b.select(isZero, zeroI, q)
                }
                return b.select(b.or(isZero, minusOne), zeroI, b.srem(a, safe))
            }
            let safe = b.select(isZero, ci(it, 1), c)
            let r = op == "/" ? LLVMBuildUDiv(b.ref, a, safe, "")! : LLVMBuildURem(b.ref, a, safe, "")!
            return b.select(isZero, zeroI, r)
        case "&": return b.and(a, c)
        case "|": return b.or(a, c)
        case "^": return LLVMBuildXor(b.ref, a, c, "")!
        case "<<", ">>":
            let amount = b.and(c, ci(it, UInt64(operand.bits - 1)))
            if op == "<<" { return b.shl(a, amount) }
            return signed ? LLVMBuildAShr(b.ref, a, amount, "")! : b.lshr(a, amount)
        default:
            let preds: [String: (LLVMIntPredicate, LLVMIntPredicate)] = [
                "==": (LLVMIntEQ, LLVMIntEQ), "!=": (LLVMIntNE, LLVMIntNE), "<": (LLVMIntSLT, LLVMIntULT),
                ">": (LLVMIntSGT, LLVMIntUGT), "<=": (LLVMIntSLE, LLVMIntULE), ">=": (LLVMIntSGE, LLVMIntUGE)]
            let p = preds[op]!
            // u32 values are compared unsigned too; i32/i64 signed.
            return b.icmp(signed ? p.0 : p.1, a, c)
        }
    }

    func convert(_ v: IRValue, from: MetalScalar, to t: MetalScalar) -> IRValue {
        if from == t { return v }
        if t == .bool {
            return from.isFloat ? b.fcmp(LLVMRealUNE, v, cf(0)) : b.icmp(LLVMIntNE, v, ci(type(from), 0))
        }
        if t.isFloat {
            if from.isFloat { return rounded(v, t) }
            let f = from.isSigned ? b.sitofp(v, b.f32) : b.uitofp(v, b.f32)
            return rounded(f, t)
        }
        if from.isFloat {
            let name = t.isSigned ? "llvm.fptosi.sat" : "llvm.fptoui.sat"
            return b.intrinsic(name, overloads: [type(t), b.f32], [v])
        }
        let (fromBits, toBits) = (from.bits, t.bits)
        if toBits == fromBits { return v }
        if toBits < fromBits { return b.trunc(v, type(t)) }
        return from.isSigned ? b.sext(v, type(t)) : b.zext(v, type(t))
    }

    func math(_ name: String, _ xs: [IRValue], _ t: MetalScalar) -> IRValue {
        if !t.isFloat {
            let s = t.isSigned
            func less(_ a: IRValue, _ c: IRValue) -> IRValue { b.icmp(s ? LLVMIntSLT : LLVMIntULT, a, c) }
            switch name {
            case "abs": return s ? b.select(less(xs[0], ci(type(t), 0)), b.sub(ci(type(t), 0), xs[0]), xs[0]) : xs[0]
            case "min": return b.select(less(xs[1], xs[0]), xs[1], xs[0])
            case "max": return b.select(less(xs[0], xs[1]), xs[1], xs[0])
            default:
                let lo = b.select(less(xs[0], xs[1]), xs[1], xs[0])
                return b.select(less(xs[2], lo), xs[2], lo)
            }
        }
        let l = Lanes(b, 1), x = xs[0]
        let r: IRValue
        switch name {
        case "exp": r = VectorMath.exp(l, x)
        case "exp2": r = VectorMath.exp(l, b.fmul(x, cf(0.6931471805599453)))
        case "log": r = VectorMath.log(l, x)
        case "log2": r = b.fmul(VectorMath.log(l, x), cf(1.4426950408889634))
        case "sqrt": r = l.call("llvm.sqrt", [x])
        case "rsqrt": r = LLVMBuildFDiv(b.ref, cf(1), l.call("llvm.sqrt", [x]), "")!
        case "sin": r = VectorMath.sinOrCos(l, x, cosine: false)
        case "cos": r = VectorMath.sinOrCos(l, x, cosine: true)
        case "tanh": r = VectorMath.tanh(l, x)
        case "floor": r = l.call("llvm.floor", [x])
        case "ceil": r = l.call("llvm.ceil", [x])
        case "trunc": r = l.call("llvm.trunc", [x])
        case "round": r = l.call("llvm.round", [x])
        case "rint": r = l.call("llvm.rint", [x])
        case "fabs", "abs": r = l.call("llvm.fabs", [x])
        case "min", "fmin": r = b.intrinsic("llvm.minnum", overloads: [b.f32], [x, xs[1]])
        case "max", "fmax": r = b.intrinsic("llvm.maxnum", overloads: [b.f32], [x, xs[1]])
        case "fma": r = l.exactFMA(x, xs[1], xs[2])
        default: r = b.intrinsic("llvm.minnum", overloads: [b.f32], [b.intrinsic("llvm.maxnum", overloads: [b.f32], [x, xs[1]]), xs[2]])
        }
        return rounded(r, t)
    }
}
