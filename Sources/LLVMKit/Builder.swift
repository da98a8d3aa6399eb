import CLLVM

public typealias IRValue = LLVMValueRef
public typealias IRType = LLVMTypeRef

/// A thin layer over LLVM's IRBuilder for writing kernels: types, constants, arithmetic,
/// memory access, vector ops, intrinsics and structured loops. It builds into one module.
public final class Builder {
    public let module: Module
    public let ref: LLVMBuilderRef
    var ctx: LLVMContextRef { module.context.ref }

    public init(module: Module) {
        self.module = module
        ref = LLVMCreateBuilderInContext(module.context.ref)
    }

    deinit { LLVMDisposeBuilder(ref) }

    // MARK: types

    public var void: IRType { LLVMVoidTypeInContext(ctx) }
    public var i1: IRType { LLVMInt1TypeInContext(ctx) }
    public var i8: IRType { LLVMInt8TypeInContext(ctx) }
    public var i16: IRType { LLVMInt16TypeInContext(ctx) }
    public var i32: IRType { LLVMInt32TypeInContext(ctx) }
    public var i64: IRType { LLVMInt64TypeInContext(ctx) }
    public var f16: IRType { LLVMHalfTypeInContext(ctx) }
    public var bf16: IRType { LLVMBFloatTypeInContext(ctx) }
    public var f32: IRType { LLVMFloatTypeInContext(ctx) }
    public var f64: IRType { LLVMDoubleTypeInContext(ctx) }
    public var ptr: IRType { LLVMPointerTypeInContext(ctx, 0) }
    public func vector(_ element: IRType, _ lanes: Int) -> IRType { LLVMVectorType(element, UInt32(lanes)) }

    // MARK: functions and blocks

    /// Declares (or returns) a function; new functions get a first block and the builder is placed there.
    public func function(_ name: String, _ params: [IRType], returns: IRType? = nil) -> IRValue {
        var paramTypes = params.map { Optional($0) }
        let type = paramTypes.withUnsafeMutableBufferPointer {
            LLVMFunctionType(returns ?? void, $0.baseAddress, UInt32(params.count), 0)
        }
        let f = LLVMAddFunction(module.ref, name, type)!
        let entry = LLVMAppendBasicBlockInContext(ctx, f, "entry")
        LLVMPositionBuilderAtEnd(ref, entry)
        for i in 0..<params.count where LLVMGetTypeKind(params[i]) == LLVMPointerTypeKind {
            // Kernel buffers never alias each other (the memory planner guarantees it).
            addAttribute(f, index: UInt32(i + 1), "noalias")
        }
        return f
    }

    func addAttribute(_ f: IRValue, index: UInt32, _ name: String) {
        let kind = LLVMGetEnumAttributeKindForName(name, name.utf8.count)
        LLVMAddAttributeAtIndex(f, index, LLVMCreateEnumAttribute(ctx, kind, 0))
    }

    public func param(_ f: IRValue, _ i: Int) -> IRValue { LLVMGetParam(f, UInt32(i)) }

    public func block(_ f: IRValue, _ name: String) -> LLVMBasicBlockRef { LLVMAppendBasicBlockInContext(ctx, f, name) }
    public func position(at block: LLVMBasicBlockRef) { LLVMPositionBuilderAtEnd(ref, block) }
    public var currentBlock: LLVMBasicBlockRef { LLVMGetInsertBlock(ref) }
    public var currentFunction: IRValue { LLVMGetBasicBlockParent(currentBlock) }
    @discardableResult
    public func br(_ block: LLVMBasicBlockRef) -> IRValue { LLVMBuildBr(ref, block) }
    public func condBr(_ c: IRValue, _ t: LLVMBasicBlockRef, _ f: LLVMBasicBlockRef) { LLVMBuildCondBr(ref, c, t, f) }
    public func retVoid() { LLVMBuildRetVoid(ref) }
    public func ret(_ v: IRValue) { LLVMBuildRet(ref, v) }

    // MARK: constants

    public func i64(_ n: Int) -> IRValue { LLVMConstInt(i64, UInt64(bitPattern: Int64(n)), 1) }
    public func i32(_ n: Int) -> IRValue { LLVMConstInt(i32, UInt64(bitPattern: Int64(n)), 1) }
    public func i8(_ n: Int) -> IRValue { LLVMConstInt(i8, UInt64(bitPattern: Int64(n)), 1) }
    public func f32(_ x: Float) -> IRValue { LLVMConstReal(f32, Double(x)) }
    public func splat(_ scalar: IRValue, _ lanes: Int) -> IRValue {
        let vecType = vector(LLVMTypeOf(scalar), lanes)
        if LLVMIsConstant(scalar) != 0 {
            var elements = [IRValue?](repeating: scalar, count: lanes)
            return elements.withUnsafeMutableBufferPointer { LLVMConstVector($0.baseAddress, UInt32(lanes)) }
        }
        let undef = LLVMGetPoison(vecType)
        let one = LLVMBuildInsertElement(ref, undef, scalar, i32(0), "")
        var mask = [IRValue?](repeating: i32(0), count: lanes)
        let zeros = mask.withUnsafeMutableBufferPointer { LLVMConstVector($0.baseAddress, UInt32(lanes)) }
        return LLVMBuildShuffleVector(ref, one, LLVMGetPoison(vecType), zeros, "splat")
    }
    public func constVector(_ values: [IRValue]) -> IRValue {
        var elements = values.map { Optional($0) }
        return elements.withUnsafeMutableBufferPointer { LLVMConstVector($0.baseAddress, UInt32(values.count)) }
    }
    public func zero(_ type: IRType) -> IRValue { LLVMConstNull(type) }

    // MARK: integer arithmetic

    public func add(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildAdd(ref, a, b, "") }
    public func sub(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildSub(ref, a, b, "") }
    public func mul(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildMul(ref, a, b, "") }
    public func sdiv(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildSDiv(ref, a, b, "") }
    public func srem(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildSRem(ref, a, b, "") }
    public func and(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildAnd(ref, a, b, "") }
    public func or(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildOr(ref, a, b, "") }
    public func lshr(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildLShr(ref, a, b, "") }
    public func shl(_ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildShl(ref, a, b, "") }
    public func icmp(_ p: LLVMIntPredicate, _ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildICmp(ref, p, a, b, "") }
    public func select(_ c: IRValue, _ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildSelect(ref, c, a, b, "") }
    public func zext(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildZExt(ref, v, t, "") }
    public func sext(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildSExt(ref, v, t, "") }
    public func trunc(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildTrunc(ref, v, t, "") }

    // MARK: float arithmetic

    public func fadd(_ a: IRValue, _ b: IRValue) -> IRValue { fast(LLVMBuildFAdd(ref, a, b, "")) }
    public func fsub(_ a: IRValue, _ b: IRValue) -> IRValue { fast(LLVMBuildFSub(ref, a, b, "")) }
    public func fmul(_ a: IRValue, _ b: IRValue) -> IRValue { fast(LLVMBuildFMul(ref, a, b, "")) }
    public func fdiv(_ a: IRValue, _ b: IRValue) -> IRValue { fast(LLVMBuildFDiv(ref, a, b, "")) }
    public func fneg(_ a: IRValue) -> IRValue { LLVMBuildFNeg(ref, a, "") }
    public func fcmp(_ p: LLVMRealPredicate, _ a: IRValue, _ b: IRValue) -> IRValue { LLVMBuildFCmp(ref, p, a, b, "") }
    public func sitofp(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildSIToFP(ref, v, t, "") }
    public func uitofp(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildUIToFP(ref, v, t, "") }
    public func fptosi(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildFPToSI(ref, v, t, "") }
    public func fpext(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildFPExt(ref, v, t, "") }
    public func fptrunc(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildFPTrunc(ref, v, t, "") }
    public func bitcast(_ v: IRValue, _ t: IRType) -> IRValue { LLVMBuildBitCast(ref, v, t, "") }

    /// Reassociation and contraction let LLVM form FMAs and vector reductions; the kernels' stated
    /// tolerances allow it (no NaN/inf assumptions are made).
    func fast(_ v: IRValue) -> IRValue {
        if LLVMIsAInstruction(v) != nil {
            LLVMSetFastMathFlags(v, LLVMFastMathFlags(LLVMFastMathAllowReassoc | LLVMFastMathAllowContract))
        }
        return v
    }

    // MARK: memory

    public func gep(_ element: IRType, _ base: IRValue, _ index: IRValue) -> IRValue {
        var indices: [IRValue?] = [index]
        return indices.withUnsafeMutableBufferPointer { LLVMBuildInBoundsGEP2(ref, element, base, $0.baseAddress, 1, "") }
    }
    public func load(_ type: IRType, _ pointer: IRValue, align: Int = 4) -> IRValue {
        let v = LLVMBuildLoad2(ref, type, pointer, "")!
        LLVMSetAlignment(v, UInt32(align))
        return v
    }
    public func store(_ value: IRValue, _ pointer: IRValue, align: Int = 4) {
        let s = LLVMBuildStore(ref, value, pointer)
        LLVMSetAlignment(s, UInt32(align))
    }
    public func alloca(_ type: IRType) -> IRValue { LLVMBuildAlloca(ref, type, "") }

    // MARK: vectors

    public func extract(_ v: IRValue, _ lane: Int) -> IRValue { LLVMBuildExtractElement(ref, v, i32(lane), "") }
    public func insert(_ v: IRValue, _ x: IRValue, _ lane: Int) -> IRValue { LLVMBuildInsertElement(ref, v, x, i32(lane), "") }
    public func shuffle(_ a: IRValue, _ b: IRValue, _ mask: [Int]) -> IRValue {
        LLVMBuildShuffleVector(ref, a, b, constVector(mask.map { i32($0) }), "")
    }

    // MARK: intrinsics and calls

    /// Calls an overloaded intrinsic such as `llvm.fma` or `llvm.vector.reduce.fadd`.
    public func intrinsic(_ name: String, overloads: [IRType], _ args: [IRValue]) -> IRValue {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        var types = overloads.map { Optional($0) }
        let decl = types.withUnsafeMutableBufferPointer { LLVMGetIntrinsicDeclaration(module.ref, id, $0.baseAddress, overloads.count) }!
        let fnType = types.withUnsafeMutableBufferPointer { LLVMIntrinsicGetType(ctx, id, $0.baseAddress, overloads.count) }!
        var argv = args.map { Optional($0) }
        let call = argv.withUnsafeMutableBufferPointer { LLVMBuildCall2(ref, fnType, decl, $0.baseAddress, UInt32(args.count), "") }!
        return fast(call)
    }

    public func fma(_ a: IRValue, _ b: IRValue, _ c: IRValue) -> IRValue {
        intrinsic("llvm.fma", overloads: [LLVMTypeOf(a)], [a, b, c])
    }

    /// Horizontal sum of a float vector (reassociation allowed, so it lowers to a shuffle tree).
    public func reduceAdd(_ v: IRValue) -> IRValue {
        let element = LLVMGetElementType(LLVMTypeOf(v))!
        return intrinsic("llvm.vector.reduce.fadd", overloads: [LLVMTypeOf(v)], [LLVMConstReal(element, -0.0), v])
    }

    public func reduceMax(_ v: IRValue) -> IRValue { intrinsic("llvm.vector.reduce.fmax", overloads: [LLVMTypeOf(v)], [v]) }

    public func call(_ f: IRValue, _ type: IRType, _ args: [IRValue]) -> IRValue {
        var argv = args.map { Optional($0) }
        return argv.withUnsafeMutableBufferPointer { LLVMBuildCall2(ref, type, f, $0.baseAddress, UInt32(args.count), "") }
    }

    // MARK: loops

    /// `for i in start..<end (step)`: builds header/body/exit blocks with a phi; `body` receives `i` (i64).
    /// False while emitting a kernel that unrolls its own loops (register tiles, groups spelled out): its
    /// loops then carry `llvm.loop.unroll.disable`, since LLVM unrolling them again only multiplies the code
    /// it must optimize and allocate registers for (most of a cold start's compile time) without making it faster.
    public var unrollLoops = true

    /// Attaches the "do not unroll" loop metadata to a loop's back edge when `unrollLoops` is off.
    func markLatch(_ branch: IRValue) {
        guard !unrollLoops else { return }
        let disable = "llvm.loop.unroll.disable"
        var option: LLVMMetadataRef? = LLVMMDStringInContext2(ctx, disable, disable.utf8.count)
        let options = LLVMMDNodeInContext2(ctx, &option, 1)
        // A loop id is a node whose first operand is itself: made through a temporary placeholder.
        let placeholder = LLVMTemporaryMDNode(ctx, nil, 0)
        var operands: [LLVMMetadataRef?] = [placeholder, options]
        let loopID = LLVMMDNodeInContext2(ctx, &operands, 2)!
        LLVMMetadataReplaceAllUsesWith(placeholder, loopID)
        let kind = "llvm.loop"
        LLVMSetMetadata(branch, LLVMGetMDKindIDInContext(ctx, kind, UInt32(kind.utf8.count)), LLVMMetadataAsValue(ctx, loopID))
    }

    public func loop(_ start: IRValue, _ end: IRValue, step: Int = 1, _ name: String = "i", body: (IRValue) -> Void) {
        let f = currentFunction
        let preheader = currentBlock
        let header = block(f, "\(name).header"), bodyBlock = block(f, "\(name).body"), exit = block(f, "\(name).exit")
        br(header)
        position(at: header)
        let i = LLVMBuildPhi(ref, i64, name)!
        condBr(icmp(LLVMIntSLT, i, end), bodyBlock, exit)
        position(at: bodyBlock)
        body(i)
        let next = add(i, i64(step))
        let latch = currentBlock
        markLatch(br(header))
        var values: [IRValue?] = [start, next]
        var blocks: [LLVMBasicBlockRef?] = [preheader, latch]
        values.withUnsafeMutableBufferPointer { v in
            blocks.withUnsafeMutableBufferPointer { b in LLVMAddIncoming(i, v.baseAddress, b.baseAddress, 2) }
        }
        position(at: exit)
    }

    /// A loop that carries values (accumulators) from iteration to iteration; returns their final values.
    public func loop(_ start: IRValue, _ end: IRValue, step: Int = 1, carrying initial: [IRValue], _ name: String = "k",
                     body: (IRValue, [IRValue]) -> [IRValue]) -> [IRValue] {
        let f = currentFunction
        let preheader = currentBlock
        let header = block(f, "\(name).header"), bodyBlock = block(f, "\(name).body"), exit = block(f, "\(name).exit")
        br(header)
        position(at: header)
        let i = LLVMBuildPhi(ref, i64, name)!
        let carried = initial.map { LLVMBuildPhi(ref, LLVMTypeOf($0), "acc")! }
        condBr(icmp(LLVMIntSLT, i, end), bodyBlock, exit)
        position(at: bodyBlock)
        let updated = body(i, carried)
        let next = add(i, i64(step))
        let latch = currentBlock
        markLatch(br(header))
        func incoming(_ phi: IRValue, _ a: IRValue, _ b: IRValue) {
            var values: [IRValue?] = [a, b]
            var blocks: [LLVMBasicBlockRef?] = [preheader, latch]
            values.withUnsafeMutableBufferPointer { v in
                blocks.withUnsafeMutableBufferPointer { bb in LLVMAddIncoming(phi, v.baseAddress, bb.baseAddress, 2) }
            }
        }
        incoming(i, start, next)
        for (phi, (a, b)) in zip(carried, zip(initial, updated)) { incoming(phi, a, b) }
        position(at: exit)
        return carried
    }
}
