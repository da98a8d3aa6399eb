import Foundation
import MLXCIR

/// A user Metal kernel (`metal_kernel` the known-kernel registry does not replace) on the reference: its body,
/// checked as the Metal subset, interpreted once per thread of the grid (z, y, x order; a correct kernel's threads
/// are independent), integers wrapping to their width, half/bfloat/float results rounded to their type after each
/// operation. The outputs start as `init_value` (0 without one: a GPU's are undefined). Outside Metal's rules, the
/// subset defines what would be undefined: an index outside a buffer reads 0 and writes nothing, integer division
/// by zero gives 0, a shift counts modulo the width, float→int conversions saturate (NaN → 0).
extension Environment {
    mutating func executeMetalKernel(_ op: Op) throws -> Bool {
        guard case .metalKernel(let k) = op else { return false }
        let inputs = try k.inputs.map { try tensor($0) }
        let program: MetalProgram
        do {
            program = try k.subsetProgram(inputTypes: inputs.map { TensorType($0.dtype, $0.shape.map { Dim.fixed($0) }) })
        } catch let e as MetalSubsetError {
            throw ReferenceError("unsupported op \(e.message)")
        }
        let grid = try k.grid.map { try int($0) }, group = try k.threadgroup.map { try int($0) }
        guard grid.allSatisfy({ $0 >= 0 }), group.allSatisfy({ $0 > 0 }) else {
            throw ReferenceError("metal_kernel \"\(k.name)\": grid \(grid) / threadgroup \(group) must be ≥ 0 / > 0")
        }
        var outputs: [HostTensor] = []
        var at = 0
        let lengths = k.outputShapeLengths.isEmpty && k.outputs.count == 1 ? [k.outputShapesFlat.count] : k.outputShapeLengths
        for (i, length) in lengths.enumerated() {
            let shape = try k.outputShapesFlat[at..<(at + length)].map { try int($0) }
            at += length
            outputs.append(HostTensor(dtype: k.outputDtypes[i], shape: shape, repeating: k.initValue ?? 0).rounded())
        }
        var machine = MetalInterpreter(program: program, buffers: inputs.map(\.storage) + outputs.map(\.storage),
                                       shapes: inputs.map(\.shape), grid: grid, group: group)
        machine.run()
        for (i, v) in k.outputs.enumerated() {
            outputs[i].storage = machine.buffers[inputs.count + i]
            set(v, outputs[i])
        }
        return true
    }
}

/// The reference interpreter of a checked Metal subset program.
struct MetalInterpreter {
    enum V { case i(Int64), f(Double) }
    enum Flow { case normal, returned, broke, continued }

    let program: MetalProgram
    var buffers: [[Double]]
    let shapes: [[Int]]
    let grid: [Int], group: [Int]
    var locals: [V] = []
    var position = [0, 0, 0]

    init(program: MetalProgram, buffers: [[Double]], shapes: [[Int]], grid: [Int], group: [Int]) {
        self.program = program; self.buffers = buffers; self.shapes = shapes; self.grid = grid; self.group = group
    }

    mutating func run() {
        for z in 0..<grid[2] {
            for y in 0..<grid[1] {
                for x in 0..<grid[0] {
                    position = [x, y, z]
                    locals = program.locals.map { $0.isFloat ? .f(0) : .i(0) }
                    _ = execute(program.body)
                }
            }
        }
    }

    mutating func execute(_ body: [MetalStatement]) -> Flow {
        for s in body {
            let flow = execute(s)
            if case .normal = flow { continue }
            return flow
        }
        return .normal
    }

    mutating func execute(_ s: MetalStatement) -> Flow {
        switch s {
        case .set(let slot, let v): locals[slot] = eval(v)
        case .store(let b, let index, let v):
            let i = int(eval(index)), value = eval(v)
            if i >= 0 && i < Int64(buffers[b].count) { buffers[b][Int(i)] = double(value, program.buffers[b]) }
        case .ifElse(let c, let a, let b): return execute(truth(eval(c)) ? a : b)
        case .loop(let c, let body, let step):
            while truth(eval(c)) {
                let flow = execute(body)
                if case .returned = flow { return .returned }
                if case .broke = flow { break }
                if case .returned = execute(step) { return .returned }
            }
        case .returnThread: return .returned
        case .breakLoop: return .broke
        case .continueLoop: return .continued
        }
        return .normal
    }

    func int(_ v: V) -> Int64 { if case .i(let n) = v { return n } else { return 0 } }
    func truth(_ v: V) -> Bool { int(v) != 0 }
    func double(_ v: V, _ t: MetalScalar) -> Double {
        switch v {
        case .f(let x): return x
        case .i(let n): return t == .u64 ? Double(UInt64(bitPattern: n)) : Double(n)
        }
    }

    func builtin(_ b: MetalBuiltin, _ axis: Int) -> Int64 {
        let p = position[axis], g = group[axis]
        switch b {
        case .threadPositionInGrid: return Int64(p)
        case .threadsPerGrid, .gridSize: return Int64(grid[axis])
        case .threadPositionInThreadgroup: return Int64(p % g)
        case .threadgroupPositionInGrid: return Int64(p / g)
        case .threadsPerThreadgroup: return Int64(g)
        case .threadgroupsPerGrid: return Int64((grid[axis] + g - 1) / g)
        case .threadIndexInThreadgroup:
            return Int64(position[0] % group[0] + group[0] * (position[1] % group[1] + group[1] * (position[2] % group[2])))
        }
    }

    mutating func eval(_ e: MetalValue) -> V {
        switch e {
        case .int(let n, _): return .i(n)
        case .float(let x, _): return .f(x)
        case .local(let slot, _): return locals[slot]
        case .builtin(let b, let axis): return .i(builtin(b, axis))
        case .load(let b, let index, let t):
            let i = int(eval(index))
            guard i >= 0 && i < Int64(buffers[b].count) else { return t.isFloat ? .f(0) : .i(0) }
            let x = buffers[b][Int(i)]
            return t.isFloat ? .f(x) : .i(t == .u64 ? Int64(bitPattern: UInt64(x)) : Int64(x))
        case .shape(let input, let dim):
            let d = int(eval(dim)), shape = shapes[input]
            return .i(d >= 0 && d < Int64(shape.count) ? Int64(shape[Int(d)]) : 0)
        case .stride(let input, let dim):
            let d = int(eval(dim)), shape = shapes[input]
            guard d >= 0 && d < Int64(shape.count) else { return .i(0) }
            return .i(Int64(shape[(Int(d) + 1)...].reduce(1, *)))
        case .unary(let op, let x, let t):
            let v = eval(x)
            switch (op, v) {
            case ("-", .f(let a)): return .f(-a)
            case ("-", .i(let a)): return .i(MetalArithmetic.wrap(0 &- a, t))
            case ("~", .i(let a)): return .i(MetalArithmetic.wrap(~a, t))
            default: return .i(truth(v) ? 0 : 1)   // "!"
            }
        case .binary(let op, let a, let b, let t):
            if op == "&&" { return .i(truth(eval(a)) && truth(eval(b)) ? 1 : 0) }
            if op == "||" { return .i(truth(eval(a)) || truth(eval(b)) ? 1 : 0) }
            return binary(op, eval(a), eval(b), operand: a.type, t)
        case .convert(let x, let t): return convert(eval(x), from: x.type, to: t)
        case .select(let c, let a, let b, _): return truth(eval(c)) ? eval(a) : eval(b)
        case .math(let name, let args, let t): return math(name, args.map { eval($0) }, t)
        }
    }

    func binary(_ op: String, _ x: V, _ y: V, operand: MetalScalar, _ t: MetalScalar) -> V {
        if operand.isFloat {
            let a = double(x, operand), b = double(y, operand)
            switch op {
            case "+": return .f(MetalArithmetic.round(a + b, t))
            case "-": return .f(MetalArithmetic.round(a - b, t))
            case "*": return .f(MetalArithmetic.round(a * b, t))
            case "/": return .f(MetalArithmetic.round(a / b, t))
            case "==": return .i(a == b ? 1 : 0)
            case "!=": return .i(a != b ? 1 : 0)
            case "<": return .i(a < b ? 1 : 0)
            case ">": return .i(a > b ? 1 : 0)
            case "<=": return .i(a <= b ? 1 : 0)
            default: return .i(a >= b ? 1 : 0)
            }
        }
        let a = int(x), b = int(y)
        let unsigned64 = operand == .u64
        func cmp(_ f: (UInt64, UInt64) -> Bool, _ g: (Int64, Int64) -> Bool) -> V {
            .i((unsigned64 ? f(UInt64(bitPattern: a), UInt64(bitPattern: b)) : g(a, b)) ? 1 : 0)
        }
        switch op {
        case "+": return .i(MetalArithmetic.wrap(a &+ b, t))
        case "-": return .i(MetalArithmetic.wrap(a &- b, t))
        case "*": return .i(MetalArithmetic.wrap(a &* b, t))
        case "/", "%":
            guard b != 0 else { return .i(0) }
            if unsigned64 {
                let (ua, ub) = (UInt64(bitPattern: a), UInt64(bitPattern: b))
                return .i(Int64(bitPattern: op == "/" ? ua / ub : ua % ub))
            }
            if a == Int64.min && b == -1 { return .i(op == "/" ? MetalArithmetic.wrap(a, t) : 0) }
            return .i(MetalArithmetic.wrap(op == "/" ? a / b : a % b, t))
        case "&": return .i(MetalArithmetic.wrap(a & b, t))
        case "|": return .i(MetalArithmetic.wrap(a | b, t))
        case "^": return .i(MetalArithmetic.wrap(a ^ b, t))
        case "<<": return .i(MetalArithmetic.wrap(a << (b & Int64(t.bits - 1)), t))
        case ">>":
            let s = b & Int64(t.bits - 1)
            if t.isSigned { return .i(a >> s) }
            return .i(MetalArithmetic.wrap(Int64(bitPattern: UInt64(bitPattern: a) >> UInt64(s)), t))
        case "==": return .i(a == b ? 1 : 0)
        case "!=": return .i(a != b ? 1 : 0)
        case "<": return cmp(<, <)
        case ">": return cmp(>, >)
        case "<=": return cmp(<=, <=)
        default: return cmp(>=, >=)
        }
    }

    func convert(_ v: V, from: MetalScalar, to t: MetalScalar) -> V {
        if t == .bool { return .i(from.isFloat ? (double(v, from) != 0 ? 1 : 0) : (int(v) != 0 ? 1 : 0)) }
        if t.isFloat { return .f(MetalArithmetic.round(double(v, from), t)) }
        if from.isFloat {
            // Saturating, NaN → 0 (llvm.fpto[su]i.sat), then the integer type.
            let x = double(v, from).rounded(.towardZero)
            guard !x.isNaN else { return .i(0) }
            let (lo, hi): (Double, Double)
            switch t {
            case .i8: (lo, hi) = (-128, 127)
            case .u8: (lo, hi) = (0, 255)
            case .i16: (lo, hi) = (-32768, 32767)
            case .u16: (lo, hi) = (0, 65535)
            case .i32: (lo, hi) = (-2147483648, 2147483647)
            case .u32: (lo, hi) = (0, 4294967295)
            case .i64: (lo, hi) = (-9.223372036854775808e18, 9.223372036854774784e18)
            default: (lo, hi) = (0, 1.8446744073709549568e19)
            }
            let c = Swift.min(Swift.max(x, lo), hi)
            return .i(t == .u64 ? Int64(bitPattern: UInt64(c)) : Int64(c))
        }
        return .i(MetalArithmetic.wrap(int(v), t))
    }

    func math(_ name: String, _ args: [V], _ t: MetalScalar) -> V {
        if !t.isFloat {
            let xs = args.map { int($0) }
            let unsigned64 = t == .u64
            func less(_ a: Int64, _ b: Int64) -> Bool { unsigned64 ? UInt64(bitPattern: a) < UInt64(bitPattern: b) : a < b }
            switch name {
            case "abs": return .i(t.isSigned ? MetalArithmetic.wrap(xs[0] < 0 ? 0 &- xs[0] : xs[0], t) : xs[0])
            case "min": return .i(less(xs[1], xs[0]) ? xs[1] : xs[0])
            case "max": return .i(less(xs[0], xs[1]) ? xs[1] : xs[0])
            default:   // clamp
                let lo = less(xs[0], xs[1]) ? xs[1] : xs[0]
                return .i(less(xs[2], lo) ? xs[2] : lo)
            }
        }
        let xs = args.map { double($0, t) }
        let x = xs[0]
        let r: Double
        switch name {
        case "exp": r = Foundation.exp(x)
        case "exp2": r = Foundation.exp2(x)
        case "log": r = Foundation.log(x)
        case "log2": r = Foundation.log2(x)
        case "sqrt": r = x.squareRoot()
        case "rsqrt": r = 1 / x.squareRoot()
        case "sin": r = Foundation.sin(x)
        case "cos": r = Foundation.cos(x)
        case "tanh": r = Foundation.tanh(x)
        case "floor": r = x.rounded(.down)
        case "ceil": r = x.rounded(.up)
        case "trunc": r = x.rounded(.towardZero)
        case "round": r = x.rounded(.toNearestOrAwayFromZero)
        case "rint": r = x.rounded(.toNearestOrEven)
        case "fabs", "abs": r = Swift.abs(x)
        case "min", "fmin": r = xs[1].isNaN ? x : (x.isNaN ? xs[1] : Swift.min(x, xs[1]))
        case "max", "fmax": r = xs[1].isNaN ? x : (x.isNaN ? xs[1] : Swift.max(x, xs[1]))
        case "fma": r = x * xs[1] + xs[2]   // the f32 product is exact in f64: one rounding, then the type's
        default: r = Swift.min(Swift.max(x, xs[1]), xs[2])   // clamp
        }
        return .f(MetalArithmetic.round(r, t))
    }
}
