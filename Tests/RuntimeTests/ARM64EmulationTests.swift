import Foundation
import XCTest
import LLVMKit
import MLXCFrontend
import MLXCIR
import MLXCPasses
@testable import MLXCRuntime

/// ARM64 kernels checked under emulation: each committed fixture program is planned for
/// aarch64 (NEON, 4 f32 lanes) and every kernel of the plan compiled for it; the same plan's
/// kernels run on x86 on the fixture's inputs (their outputs held to eager PyTorch's, as
/// FixtureOutputsTests does) with every launch traced; the aarch64 kernels replay each launch
/// on its recorded inputs under qemu-aarch64 and their results must match x86's:
/// - integers, booleans, indices: exactly;
/// - f32: max |arm − x86| ≤ 4e-6 × max |x86| of the result (the same IR, but its float ops allow
///   reassociation and contraction, which the two backends use differently: measured ≤ 5.5e-7,
///   on k = 64 kernels, 1.8e-6 on the Whisper encoder's k = 256 4-bit matmul);
/// - bf16/f16 results: one step of their 8/11 significant bits, ≤ 2⁻⁷ × max |x86|.
/// Needs aarch64-linux-gnu-gcc and qemu-aarch64 (tools/setup); skips without them unless MLXC_ARM64=1.
final class ARM64EmulationTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct Outcome {
        var launches = 0, results = 0, identical = 0
        var kernels: Set<String> = []
        var worst: [String: Double] = [:]   // kernel → worst error relative to max |x86|
    }

    /// A step fixture (Tests/Fixtures/NAME: stepK.inputI.npy → stepK.outputJ.npy, eager's), traced.
    func check(_ name: String, cpu: String = "neoverse-n1", toolchain: ARM64Toolchain) throws -> Outcome {
        let dir = Self.fixtures.appendingPathComponent(name)
        let meta = (try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as? [String: Any]) ?? [:]
        let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path)
        let graph = try ProgramLoader.prepare(pte, method: nil)
        let arm = try HostTarget.named(triple: "aarch64-linux-gnu", cpu: cpu)
        let (x86, trace) = try tracedProgram(graph, pte, arm)
        let tolerance = (meta["dtype"] as? String) == "bf16" ? 2.5e-2 : 1e-4
        for k in 0..<((meta["steps"] as? Int) ?? 1) {
            var inputs: [HostTensor] = []
            for i in 0... {
                let path = dir.appendingPathComponent("step\(k).input\(i).npy").path
                guard FileManager.default.fileExists(atPath: path) else { break }
                var t = try TensorFiles.readNPY(path)
                if let want = graph[graph.inputs[i]].type?.dtype, want != t.dtype, want.isFloatingPoint { t = t.converted(to: want) }
                inputs.append(t)
            }
            for (j, out) in try x86.run(inputs).enumerated() {
                let expected = try TensorFiles.readNPY(dir.appendingPathComponent("step\(k).output\(j).npy").path)
                let scale = max(expected.storage.map(abs).max() ?? 0, 1e-12)
                let err = zip(out.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, tolerance * scale, "\(name) step \(k) output \(j) (4-lane plan on x86) vs eager")
            }
        }
        return try replay(name, graph, pte, x86, trace, arm, toolchain)
    }

    /// A zoo entry (Tests/Fixtures/zoo/NAME, an LLM written by ExecuTorch's scripts): the prompt and
    /// `steps` greedy tokens fed as generation plans them, each step's logits held to eager's
    /// (ZooTests' tolerances), traced.
    func checkZoo(_ name: String, steps: Int, cpu: String = "neoverse-n1", toolchain: ARM64Toolchain) throws -> Outcome {
        let dir = Self.fixtures.appendingPathComponent("zoo").appendingPathComponent(name)
        struct Entry: Decodable { var dtype: String; var logits_tolerance: Double? }
        struct Reference: Decodable { var prompt: [Int]; var greedy: [Int] }
        let entry = try JSONDecoder().decode(Entry.self, from: Data(contentsOf: dir.appendingPathComponent("entry.json")))
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("reference.json")))
        let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path)
        let graph = try ProgramLoader.prepare(pte, method: nil, passes: try PassManager(pipeline: PassRegistry.generationPipeline))
        let arm = try HostTarget.named(triple: "aarch64-linux-gnu", cpu: cpu)
        let (x86, trace) = try tracedProgram(graph, pte, arm)
        let model = try LanguageModel(executor: x86, graph: graph, pte: pte)
        let tolerance = entry.logits_tolerance ?? (entry.dtype == "fp32" ? 1e-4 : 4e-2)
        var logits = try model.feed(reference.prompt)
        for k in 0..<min(steps, reference.greedy.count) {
            let expected = try TensorFiles.readNPY(dir.appendingPathComponent("step\(k).logits.npy").path).storage
            let scale = max(expected.map(abs).max() ?? 0, 1e-12)
            let err = zip(logits, expected).map { abs(Double($0) - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(err, tolerance * scale, "\(name) step \(k) logits (4-lane plan on x86) vs eager")
            logits = try model.feed([reference.greedy[k]])
        }
        return try replay(name, graph, pte, x86, trace, arm, toolchain)
    }

    /// The program planned for the target (its lanes and instruction choices), compiled for x86 and
    /// tracing every launch.
    func tracedProgram(_ graph: Graph, _ pte: PTEFile, _ arm: HostTarget) throws -> (JITProgram, KernelLaunchTrace) {
        var options = JITProgram.Options()
        options.target = arm
        options.runPlanOnHost = true
        options.trace = KernelLaunchTrace()
        options.threads = 1
        return (try JITProgram(graph: graph, pte: pte, options: options), options.trace!)
    }

    /// Compiles the same plan for aarch64, replays the trace under qemu and compares with x86's results.
    func replay(_ name: String, _ graph: Graph, _ pte: PTEFile, _ x86: JITProgram, _ trace: KernelLaunchTrace,
                _ arm: HostTarget, _ toolchain: ARM64Toolchain) throws -> Outcome {
        XCTAssertEqual(trace.dropped, 0, "\(name): launches left out of the trace")
        XCTAssertEqual(x86.runtimeFallbacks, [:], "\(name): calls left to the reference")

        // aarch64: the same plan, compiled for the target.
        var armOptions = JITProgram.Options()
        armOptions.target = arm
        let armProgram = try JITProgram(graph: graph, pte: pte, options: armOptions)
        // The same plan, kernel for kernel; only the QD8 linear's sdot kernel ran on x86 as its portable
        // twin (`neon`: the same exact integer sums), so its launches replay on the sdot kernel.
        XCTAssertEqual(armProgram.kernelNames.map { $0.replacingOccurrences(of: "_neondot16", with: "_neon16") }, x86.kernelNames,
                       "\(name): the aarch64 plan differs from the traced one")
        XCTAssertEqual(armProgram.fusionStats.fallbackOps, 0, "\(name): ops on the reference executor")
        let object = try armProgram.library.objectCode(machine: TargetMachine(host: arm))

        let work = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-arm64-\(name)-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let exe = try toolchain.linkReplay(object: object, kernels: Array(zip(x86.kernelNames, armProgram.kernelNames)), in: work)
        let replayed = try toolchain.replay(exe, trace: trace.replayInput(), in: work)

        var outcome = Outcome()
        var offset = 0
        for (l, launch) in trace.launches.enumerated() {
            outcome.launches += 1
            outcome.kernels.insert(launch.kernel)
            for result in launch.results {
                let n = result.after.count
                guard offset + n <= replayed.count else { XCTFail("\(name): the replay wrote too little"); return outcome }
                let got = [UInt8](replayed[replayed.startIndex + offset ..< replayed.startIndex + offset + n])
                offset += n
                outcome.results += 1
                if launch.kernel.hasPrefix("dqlinear_") { try checkDynamicQuant(launch, got, name) }
                if got == result.after { outcome.identical += 1; continue }
                let count = n / max(result.dtype.byteSize, 1)
                let a = try got.withUnsafeBytes { try DTypeCodec.decode($0, result.dtype, count: count) }
                let x = try result.after.withUnsafeBytes { try DTypeCodec.decode($0, result.dtype, count: count) }
                let where_ = "\(name) launch \(l) \(launch.kernel) result slot \(result.slot) (\(result.dtype))"
                switch result.dtype {
                case .f32, .f64, .bf16, .f16:
                    let scale = max(x.map { $0.isFinite ? abs($0) : 0 }.max() ?? 0, 1e-30)
                    var err = 0.0
                    for (p, q) in zip(a, x) where !(p.isNaN && q.isNaN) && p != q { err = max(err, p.isFinite && q.isFinite ? abs(p - q) : .infinity) }
                    let bound = result.dtype == .f32 || result.dtype == .f64 ? 4e-6 : 0x1p-7
                    outcome.worst[launch.kernel] = max(outcome.worst[launch.kernel] ?? 0, err / scale)
                    XCTAssertLessThanOrEqual(err, bound * scale, "\(where_): max |arm − x86| \(err), max |x86| \(scale)")
                default:
                    let differing = zip(a, x).filter { $0 != $1 }.count
                    XCTAssertEqual(differing, 0, "\(where_): \(differing) of \(count) elements differ")
                }
            }
        }
        XCTAssertEqual(offset, replayed.count, "\(name): the replay wrote more than the trace's results")
        return outcome
    }

    /// XNNPACK's QD8 linear is integer-exact by definition: the aarch64 result (`smlal` sums) must be
    /// DynamicQuantDefinition's bit for bit, on the launch's own inputs.
    func checkDynamicQuant(_ launch: KernelLaunchTrace.Launch, _ got: [UInt8], _ name: String) throws {
        func field(_ p: String) -> Int? {
            launch.kernel.split(separator: "_").first { $0.hasPrefix(p) }.flatMap { Int($0.dropFirst(p.count)) }
        }
        let parts = launch.kernel.split(separator: "_")
        guard let wg = parts.first(where: { $0.hasPrefix("w") && $0.contains("g") }),
              let bits = Int(wg.dropFirst().split(separator: "g")[0]), let groupSize = Int(wg.split(separator: "g")[1]),
              let k = field("k"), let n = field("n") else { return XCTFail("\(launch.kernel): cannot read its shape") }
        let m = Int(launch.dims[0])
        func bytes(_ slot: Int) -> [UInt8] {
            let s = launch.slots[slot]
            return Array(launch.regions[s.region][s.offset..<(s.offset + s.bytes)])
        }
        func decode(_ slot: Int, _ dtype: DType) throws -> [Double] {
            try bytes(slot).withUnsafeBytes { try DTypeCodec.decode($0, dtype, count: launch.slots[slot].bytes / dtype.byteSize) }
        }
        let x = try decode(0, .f32).map(Float.init), scales = try decode(2, .f32).map(Float.init)
        let codes = DynamicQuantDefinition.codes(try decode(1, bits == 4 ? .u32 : .i8), bits: bits, n: n, k: k)
        let want = DynamicQuantDefinition.linear(x: Array(x.prefix(m * k)), m: m, k: k, codes: codes, n: n, scales: scales, groupSize: groupSize)
        let arm = got.withUnsafeBytes { Array($0.bindMemory(to: Float.self).prefix(m * n)) }
        XCTAssertEqual(arm.map(\.bitPattern), want.map(\.bitPattern), "\(name) \(launch.kernel): aarch64 vs the definition")
    }

    func report(_ name: String, _ o: Outcome) {
        let worst = o.worst.sorted { $0.value > $1.value }.prefix(3).map { String(format: "%@ %.1e", $0.key, $0.value) }
        print("ARM64 \(name): \(o.kernels.count) kernels, \(o.launches) launches, \(o.identical)/\(o.results) results bit-identical to x86"
              + (worst.isEmpty ? "" : "; worst: " + worst.joined(separator: ", ")))
    }

    func checkAll(_ names: [String], zoo: Bool = false, _ toolchain: ARM64Toolchain) throws {
        var total = Outcome()
        for name in names {
            let o = zoo ? try checkZoo(name, steps: 3, toolchain: toolchain) : try check(name, toolchain: toolchain)
            report(name, o)
            total.launches += o.launches; total.results += o.results; total.identical += o.identical
            total.kernels.formUnion(o.kernels)
        }
        print("ARM64 all: \(total.kernels.count) distinct kernels, \(total.launches) launches, "
              + "\(total.identical)/\(total.results) results bit-identical; kernels: \(total.kernels.sorted().joined(separator: " "))")
    }

    func testDenseFixturesUnderQEMU() throws {
        let toolchain = try ARM64Toolchain.require()
        try checkAll(["llama_mlx_fp32", "llama_mlx_bf16", "llama_mlx_4bit", "llama_mlx_8bit"], toolchain)
    }

    /// MoE (router top-k, gather_qmm over the chosen experts), Whisper's encoder (conv1d, GELU,
    /// LayerNorm, attention without RoPE), Gemma's sliding-window layers, XNNPACK's 8da4w MLP
    /// (QD8 dynamic-quant linear: NEON `smlal` integer sums).
    func testMoEWhisperGemmaFixturesUnderQEMU() throws {
        let toolchain = try ARM64Toolchain.require()
        try checkAll(["moe_mlx_4bit", "moe_mlx_bf16", "whisper_encoder_mlx_fp32", "whisper_encoder_mlx_4bit", "gemma_sliding_mlx_8bit",
                      "mlp_xnnpack_8da4w"], toolchain)
    }

    /// NVFP4 weights (FloatQuantized rows, bf16 activations) and an NVFP4 embedding, Qwen 3.5's
    /// Gated DeltaNet layers (conv1d state, recurrent state, gated delta rule) with MoE experts, and
    /// etLLM's XNNPACK 8da4w Llama (dynamic-quant linears, RoPE tables, custom SDPA), and etLLM's Qwen 3.5 (the
    /// gated delta rule in its heads-first layout, the state [B, H, Dk, Dv] read in place).
    func testZooNVFP4AndGatedDeltaUnderQEMU() throws {
        let toolchain = try ARM64Toolchain.require()
        try checkAll(["qwen3_mlx_bf16_nvfp4", "llama_mlx_fp32_nvfp4_embed", "qwen35moe_e16k8_mlx_bf16", "llama_xnnpack_custom_8da4w",
                      "etllm_qwen35_xnnpack_fp32"],
                     zoo: true, toolchain)
    }
}
