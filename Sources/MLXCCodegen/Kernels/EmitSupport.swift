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
    /// The lanes that exist in this iteration (a loop's last, partial vector); nil when all do.
    /// Loads and stores through this value are masked: absent lanes are neither read nor written.
    public let mask: IRValue?

    public init(_ b: Builder, _ width: Int, mask: IRValue? = nil) {
        self.b = b
        self.width = width
        self.mask = mask
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

    /// Loads `width` consecutive elements at `base[index]`; absent lanes (see `mask`) are `passthru` (default 0).
    public func load(_ element: IRType, _ base: IRValue, _ index: IRValue, passthru: IRValue? = nil) -> IRValue {
        let pointer = b.gep(element, base, index)
        let align = Support.alignment(element)
        guard let mask else { return b.load(type(element), pointer, align: align) }
        let vecType = type(element)
        return Support.intrinsic(b, "llvm.masked.load", overloads: [vecType, b.ptr],
                                 [pointer, b.i32(align), mask, passthru ?? zero(element)])
    }

    public func store(_ value: IRValue, _ element: IRType, _ base: IRValue, _ index: IRValue) {
        let pointer = b.gep(element, base, index)
        let align = Support.alignment(element)
        guard let mask else { return b.store(value, pointer, align: align) }
        _ = Support.intrinsic(b, "llvm.masked.store", overloads: [type(element), b.ptr], [value, pointer, b.i32(align), mask])
    }

    /// `width` elements at `base[index + lane · stride]` (a gather for vectors).
    public func loadStrided(_ element: IRType, _ base: IRValue, _ index: IRValue, stride: IRValue) -> IRValue {
        if width == 1 { return b.load(element, b.gep(element, base, index), align: Support.alignment(element)) }
        let laneIndex = b.add(b.splat(index, width), b.mul(iota(), b.splat(stride, width)))
        let pointers = b.gep(element, base, laneIndex)
        let vecType = b.vector(element, width)
        return Support.intrinsic(b, "llvm.masked.gather", overloads: [vecType, LLVMTypeOf(pointers)],
                                 [pointers, b.i32(Support.alignment(element)), mask ?? b.splat(LLVMConstInt(b.i1, 1, 0), width),
                                  b.zero(vecType)])
    }

    /// ⟨0, 1, …, width − 1⟩ as i64s.
    public func iota() -> IRValue { width == 1 ? b.i64(0) : b.constVector((0..<width).map { b.i64($0) }) }

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

    /// `for i in start..<end` in steps of `width`; the remaining elements (fewer than `width`) are
    /// one masked vector. `body(lanes, i)` is emitted twice: unmasked and with `lanes.mask`.
    public static func vectorLoop(_ b: Builder, _ start: IRValue, _ end: IRValue, width: Int, _ name: String,
                                  _ body: (Lanes, IRValue) -> Void) {
        guard width > 1 else { return b.loop(start, end, name) { i in body(Lanes(b, 1), i) } }
        let mainEnd = b.add(start, b.mul(b.sdiv(b.sub(end, start), b.i64(width)), b.i64(width)))
        b.loop(start, mainEnd, step: width, name) { i in body(Lanes(b, width), i) }
        let remaining = b.sub(end, mainEnd)
        ifThen(b, b.icmp(LLVMIntSGT, remaining, b.i64(0)), "\(name).tail") {
            body(Lanes(b, width, mask: tailMask(b, remaining, width: width)), mainEnd)
        }
    }

    /// The first `count` of `width` lanes.
    public static func tailMask(_ b: Builder, _ count: IRValue, width: Int) -> IRValue {
        b.icmp(LLVMIntSLT, Lanes(b, width).iota(), b.splat(count, width))
    }

    /// Lane j of the result is the sum of the lanes of `vectors[j]` (as many vectors as lanes, a
    /// power of two): a transpose-and-add tree, log2(width) levels of two shuffles and an add per pair,
    /// instead of one horizontal reduction per vector.
    /// Shuffle masks that add the two halves of every run of equal owners in x's and y's lanes (y's lanes numbered
    /// from `width`): lane i of the result sums lanes first[i] and second[i] and belongs to owners[i].
    static func halvingMasks(_ xOwners: [Int], _ yOwners: [Int], width: Int) -> (first: [Int], second: [Int], owners: [Int]) {
        var first: [Int] = [], second: [Int] = [], owners: [Int] = []
        for (o, offset) in [(xOwners, 0), (yOwners, width)] {
            var start = 0
            while start < width {
                var end = start
                while end < width && o[end] == o[start] { end += 1 }
                let half = (end - start) / 2
                for i in 0..<half {
                    first.append(offset + start + i)
                    second.append(offset + start + half + i)
                    owners.append(o[start])
                }
                start = end
            }
        }
        return (first, second, owners)
    }

    public static func sumEach(_ b: Builder, _ vectors: [IRValue], width: Int) -> IRValue {
        precondition(vectors.count == width && width > 1 && width & (width - 1) == 0)
        // Each item's lanes hold partial sums of `owners[lane]`, in runs of equal owners.
        var items: [(value: IRValue, owners: [Int])] = vectors.enumerated().map { ($1, [Int](repeating: $0, count: width)) }
        while items.count > 1 {
            var next: [(IRValue, [Int])] = []
            for p in stride(from: 0, to: items.count, by: 2) {
                let (x, y) = (items[p], items[p + 1])
                let (first, second, owners) = halvingMasks(x.owners, y.owners, width: width)
                next.append((b.fadd(b.shuffle(x.value, y.value, first), b.shuffle(x.value, y.value, second)), owners))
            }
            items = next
        }
        let order = (0..<width).map { j in items[0].owners.firstIndex(of: j)! }
        return b.shuffle(items[0].value, items[0].value, order)
    }

    /// The largest lane of a float vector, by a shuffle tree of compare-and-selects (LLVM's
    /// `vector.reduce.fmax` without no-NaN flags becomes a serial scalar chain).
    public static func reduceMax(_ b: Builder, _ v: IRValue) -> IRValue {
        var x = v
        var width = Int(LLVMGetVectorSize(LLVMTypeOf(v)))
        while width > 1 {
            width /= 2
            let lo = b.shuffle(x, x, Array(0..<width)), hi = b.shuffle(x, x, Array(width..<(2 * width)))
            x = b.select(b.fcmp(LLVMRealOGT, hi, lo), hi, lo)
        }
        return b.extract(x, 0)
    }

    /// True when every lane of an i1 vector is set.
    public static func all(_ b: Builder, _ v: IRValue) -> IRValue {
        intrinsic(b, "llvm.vector.reduce.and", overloads: [LLVMTypeOf(v)], [v])
    }

    /// An intrinsic call without fast-math flags (memory intrinsics, integer results).
    public static func intrinsic(_ b: Builder, _ name: String, overloads: [IRType], _ args: [IRValue]) -> IRValue {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        var types = overloads.map { Optional($0) }
        let decl = types.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(b.module.ref, id, $0.baseAddress, overloads.count) }!
        let fnType = types.withUnsafeMutableBufferPointer { LLVMIntrinsicGetType(LLVMGetModuleContext(b.module.ref), id, $0.baseAddress, overloads.count) }!
        return b.call(decl, fnType, args)
    }

    /// A call of a non-overloaded target intrinsic (x86's `vpmaddwd`, `vpdpbusd`, …) whose parameter types are taken
    /// from its declaration: operands of another vector shape of the same bits are bitcast, and so is the result, to
    /// `returns`.
    public static func intrinsicCasting(_ b: Builder, _ name: String, _ args: [IRValue], returns: IRType) -> IRValue {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        let decl = LLVMGetIntrinsicDeclaration(b.module.ref, id, nil, 0)!
        let fnType = LLVMGlobalGetValueType(decl)!
        var params = [LLVMTypeRef?](repeating: nil, count: Int(LLVMCountParamTypes(fnType)))
        params.withUnsafeMutableBufferPointer { LLVMGetParamTypes(fnType, $0.baseAddress) }
        let cast = zip(args, params).map { a, t in LLVMTypeOf(a) == t! ? a : b.bitcast(a, t!) }
        let r = b.call(decl, fnType, cast)
        return LLVMTypeOf(r) == returns ? r : b.bitcast(r, returns)
    }

    /// A number as it reads in a kernel name: shortest round-trip digits, "p" for the point, "m" for minus.
    public static func name(_ x: Double) -> String {
        var s = x == x.rounded() && Swift.abs(x) < 1e15 ? String(Int(x)) : String(x)
        s = s.replacingOccurrences(of: ".", with: "p").replacingOccurrences(of: "-", with: "m").replacingOccurrences(of: "+", with: "")
        return s
    }

    public static func name(_ x: Float) -> String {
        if x == x.rounded() && Swift.abs(x) < 1e7 { return name(Double(x)) }
        return String(x).replacingOccurrences(of: ".", with: "p").replacingOccurrences(of: "-", with: "m").replacingOccurrences(of: "+", with: "")
    }

    /// The widest power of two ≤ `lanes` that divides `n` (so rows of n split into whole vectors).
    public static func width(dividing n: Int, lanes: Int) -> Int {
        var w = lanes
        while w > 1 && n % w != 0 { w /= 2 }
        return w
    }
}
