import CLLVM
import LLVMKit

/// Element types as the kernels store them. Bools are one byte holding 0 or 1; bf16 is kept as its
/// 16 raw bits (an i16) and widened to f32 by a shift.
public enum ElementType: String, Sendable, CaseIterable {
    case f32, f16, bf16, f64, i8, u8, bool, i16, i32, i64, u32

    public var byteSize: Int {
        switch self {
        case .i8, .u8, .bool: return 1
        case .f16, .bf16, .i16: return 2
        case .f32, .i32, .u32: return 4
        case .f64, .i64: return 8
        }
    }

    public var isFloat: Bool { [.f32, .f16, .bf16, .f64].contains(self) }
    public var isSigned: Bool { [.i8, .i16, .i32, .i64].contains(self) }

    /// The IR type of one stored element.
    public func storage(_ b: Builder) -> IRType {
        switch self {
        case .f32: return b.f32
        case .f16: return b.f16
        case .f64: return b.f64
        case .bf16, .i16: return b.i16
        case .i8, .u8, .bool: return b.i8
        case .i32, .u32: return b.i32
        case .i64: return b.i64
        }
    }

    /// An integer type of the same width (what plain copies move).
    public static func bits(_ byteSize: Int) -> ElementType {
        switch byteSize {
        case 1: return .u8
        case 2: return .i16
        case 8: return .i64
        default: return .i32
        }
    }
}

/// Emission at one width: `width` lanes (a vector) or 1 (scalars, for tails). Kernels write their
/// arithmetic once against this and instantiate it for the vector body and the scalar tail.
public struct Lanes {
    public let b: Builder
    public let width: Int

    public init(_ b: Builder, _ width: Int) {
        self.b = b
        self.width = width
    }

    public var isScalar: Bool { width == 1 }
    /// `element` at this width.
    public func type(_ element: IRType) -> IRType { width == 1 ? element : b.vector(element, width) }
    public func splat(_ scalar: IRValue) -> IRValue { width == 1 ? scalar : b.splat(scalar, width) }
    public func f32(_ x: Float) -> IRValue { splat(b.f32(x)) }
    public func f64(_ x: Double) -> IRValue { splat(LLVMConstReal(b.f64, x)) }
    public func i32(_ n: Int) -> IRValue { splat(b.i32(n)) }
    public func i64(_ n: Int) -> IRValue { splat(b.i64(n)) }
    public func int(_ n: Int, _ element: IRType) -> IRValue { splat(LLVMConstInt(element, UInt64(bitPattern: Int64(n)), 1)) }
    public func zero(_ element: IRType) -> IRValue { b.zero(type(element)) }

    /// Loads `width` consecutive elements at `base[index]`.
    public func load(_ element: IRType, _ base: IRValue, _ index: IRValue) -> IRValue {
        b.load(type(element), b.gep(element, base, index), align: Support.alignment(element))
    }

    public func store(_ value: IRValue, _ element: IRType, _ base: IRValue, _ index: IRValue) {
        b.store(value, b.gep(element, base, index), align: Support.alignment(element))
    }

    /// `width` elements at `base[index + lane · stride]` (a gather for vectors).
    public func loadStrided(_ element: IRType, _ base: IRValue, _ index: IRValue, stride: IRValue) -> IRValue {
        if width == 1 { return b.load(element, b.gep(element, base, index), align: Support.alignment(element)) }
        let laneIndex = b.add(b.splat(index, width), b.mul(b.constVector((0..<width).map { b.i64($0) }), b.splat(stride, width)))
        let pointers = b.gep(element, base, laneIndex)
        let vecType = b.vector(element, width)
        let mask = b.splat(LLVMConstInt(b.i1, 1, 0), width)
        return b.intrinsic("llvm.masked.gather", overloads: [vecType, LLVMTypeOf(pointers)],
                           [pointers, b.i32(Support.alignment(element)), mask, LLVMGetPoison(vecType)])
    }

    /// One lane of a vector (the value itself for scalars).
    public func lane(_ v: IRValue, _ i: Int) -> IRValue { width == 1 ? v : b.extract(v, i) }

    /// `llvm.<name>` on this width (`llvm.floor`, `llvm.sqrt`, …).
    public func call(_ name: String, _ args: [IRValue]) -> IRValue {
        b.intrinsic(name, overloads: [LLVMTypeOf(args[0])], args)
    }

    /// `a · b + c` rounded once, with no fast-math flags (range reductions must not be reassociated).
    public func exactFMA(_ x: IRValue, _ y: IRValue, _ z: IRValue) -> IRValue {
        let v = b.intrinsic("llvm.fma", overloads: [LLVMTypeOf(x)], [x, y, z])
        LLVMSetFastMathFlags(v, 0)
        return v
    }

    public func fmin(_ x: IRValue, _ y: IRValue) -> IRValue { b.select(b.fcmp(LLVMRealOLT, y, x), y, x) }
    public func fmax(_ x: IRValue, _ y: IRValue) -> IRValue { b.select(b.fcmp(LLVMRealOGT, y, x), y, x) }
}

/// Control flow and integer helpers shared by the kernels.
public enum Support {
    static func alignment(_ element: IRType) -> Int {
        switch LLVMGetTypeKind(element) {
        case LLVMDoubleTypeKind: return 8
        case LLVMFloatTypeKind: return 4
        case LLVMHalfTypeKind, LLVMBFloatTypeKind: return 2
        case LLVMIntegerTypeKind: return max(1, Int(LLVMGetIntTypeWidth(element)) / 8)
        default: return 1
        }
    }

    public static func smin(_ b: Builder, _ x: IRValue, _ y: IRValue) -> IRValue { b.select(b.icmp(LLVMIntSLT, x, y), x, y) }
    public static func smax(_ b: Builder, _ x: IRValue, _ y: IRValue) -> IRValue { b.select(b.icmp(LLVMIntSGT, x, y), x, y) }

    /// `if cond { body }`.
    public static func ifThen(_ b: Builder, _ cond: IRValue, _ name: String = "if", _ body: () -> Void) {
        let f = b.currentFunction
        let then = b.block(f, "\(name).then"), done = b.block(f, "\(name).end")
        b.condBr(cond, then, done)
        b.position(at: then)
        body()
        b.br(done)
        b.position(at: done)
    }

    /// `cond ? then() : otherwise()` for values computed in either arm (merged with phis).
    public static func ifElse(_ b: Builder, _ cond: IRValue, _ name: String = "sel",
                              then: () -> [IRValue], otherwise: () -> [IRValue]) -> [IRValue] {
        let f = b.currentFunction
        let t = b.block(f, "\(name).then"), e = b.block(f, "\(name).else"), done = b.block(f, "\(name).end")
        b.condBr(cond, t, e)
        b.position(at: t)
        let tv = then()
        let tEnd = b.currentBlock
        b.br(done)
        b.position(at: e)
        let ev = otherwise()
        let eEnd = b.currentBlock
        b.br(done)
        b.position(at: done)
        return zip(tv, ev).map { x, y in
            let phi = LLVMBuildPhi(b.ref, LLVMTypeOf(x), "")!
            var values: [IRValue?] = [x, y]
            var blocks: [LLVMBasicBlockRef?] = [tEnd, eEnd]
            values.withUnsafeMutableBufferPointer { v in
                blocks.withUnsafeMutableBufferPointer { bb in LLVMAddIncoming(phi, v.baseAddress, bb.baseAddress, 2) }
            }
            return phi
        }
    }

    /// Runs exactly one of `cases` by `selector` (an i64 in 0..<cases.count).
    public static func switchOn(_ b: Builder, _ selector: IRValue, _ name: String, _ cases: [() -> Void]) {
        precondition(!cases.isEmpty)
        if cases.count == 1 { cases[0](); return }
        let f = b.currentFunction
        let done = b.block(f, "\(name).end")
        let blocks = cases.indices.map { b.block(f, "\(name).\($0)") }
        let sw = LLVMBuildSwitch(b.ref, selector, blocks[0], UInt32(cases.count - 1))
        for i in 1..<cases.count { LLVMAddCase(sw, b.i64(i), blocks[i]) }
        for (i, body) in cases.enumerated() {
            b.position(at: blocks[i])
            body()
            b.br(done)
        }
        b.position(at: done)
    }

    /// `for i in start..<end` in steps of `width`, then the remaining elements one at a time:
    /// `body(lanes, i)` is emitted once for the vector width and once for scalars.
    public static func vectorLoop(_ b: Builder, _ start: IRValue, _ end: IRValue, width: Int, _ name: String,
                                  _ body: (Lanes, IRValue) -> Void) {
        if width > 1 {
            let span = b.sub(end, start)
            let mainEnd = b.add(start, b.mul(b.sdiv(span, b.i64(width)), b.i64(width)))
            b.loop(start, mainEnd, step: width, name) { i in body(Lanes(b, width), i) }
            b.loop(mainEnd, end, "\(name)t") { i in body(Lanes(b, 1), i) }
        } else {
            b.loop(start, end, name) { i in body(Lanes(b, 1), i) }
        }
    }

    /// The widest power of two ≤ `lanes` that divides `n` (so rows of n split into whole vectors).
    public static func width(dividing n: Int, lanes: Int) -> Int {
        var w = lanes
        while w > 1 && n % w != 0 { w /= 2 }
        return w
    }
}
