import XCTest
import CLLVM
@testable import LLVMKit

final class JITTests: XCTestCase {
    /// Emits `out[i] = a[i] * b[i] + 1` over n elements, optimizes it with default<O3> and runs it.
    func buildKernel(_ context: Context, unrollLoops: Bool = true) -> Module {
        let module = Module(name: "test", context: context)
        let b = Builder(module: module)
        b.unrollLoops = unrollLoops
        let f = b.function("mul_add_f32", [b.ptr, b.ptr, b.ptr, b.i64])
        let (x, y, out, n) = (b.param(f, 0), b.param(f, 1), b.param(f, 2), b.param(f, 3))
        b.loop(b.i64(0), n) { i in
            let xv = b.load(b.f32, b.gep(b.f32, x, i)), yv = b.load(b.f32, b.gep(b.f32, y, i))
            b.store(b.fadd(b.fmul(xv, yv), b.f32(1)), b.gep(b.f32, out, i))
        }
        b.retVoid()
        return module
    }

    func testJITRunsAnOptimizedLoop() throws {
        let machine = try TargetMachine()
        let context = Context()
        let module = buildKernel(context)
        machine.configure(module.ref)
        try module.verify()
        try machine.optimize(module.ref)
        let jit = try JIT(machine: machine)
        try jit.add(module)
        typealias Kernel = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64) -> Void
        let kernel = unsafeBitCast(try jit.address(of: "mul_add_f32"), to: Kernel.self)
        let a = (0..<1000).map { Float($0) }, c = (0..<1000).map { Float($0) * 0.5 }
        var out = [Float](repeating: 0, count: 1000)
        kernel(a, c, &out, 1000)
        for i in 0..<1000 { XCTAssertEqual(out[i], a[i] * c[i] + 1) }
    }

    func testOptimizedAssemblyUsesHostVectors() throws {
        let machine = try TargetMachine()
        let module = buildKernel(Context())
        machine.configure(module.ref)
        try machine.optimize(module.ref)
        let asm = String(decoding: try machine.emit(module.ref, .assembly), as: UTF8.self)
        let register = machine.host.vectorBits == 512 ? "zmm" : machine.host.vectorBits == 256 ? "ymm" : "xmm"
        XCTAssertTrue(asm.contains(register), "expected \(register) registers in:\n\(asm.prefix(2000))")
    }

    /// A loop emitted with `unrollLoops` off keeps a well-formed "do not unroll" loop id through O3 (a loop id
    /// that is not self-referential would be dropped by LLVM, and the flag would silently do nothing).
    func testLoopsOfSelfUnrollingKernelsCarryUnrollDisable() throws {
        let machine = try TargetMachine()
        for unroll in [false, true] {
            let module = buildKernel(Context(), unrollLoops: unroll)
            machine.configure(module.ref)
            try module.verify()
            try machine.optimize(module.ref)
            let lines = module.text.split(separator: "\n").map(String.init)
            func id(_ line: String) -> String { String(line.prefix { $0 != " " }) }
            let options = lines.filter { $0.hasPrefix("!") && $0.hasSuffix("!{!\"llvm.loop.unroll.disable\"}") }.map(id)
            XCTAssertEqual(options.count, unroll ? 0 : 1, module.text)
            // The loop id naming that option has itself as first operand (`!N = distinct !{!N, …, !option, …}`).
            let loopIDs = lines.filter { line in
                line.hasPrefix("!") && line.contains("!{\(id(line)),") && options.contains { line.contains("\($0),") || line.contains("\($0)}") }
            }
            XCTAssertEqual(loopIDs.isEmpty, unroll, module.text)
        }
    }
}
