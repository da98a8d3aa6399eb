import Foundation
import MLXCFrontend
import MLXCIR

/// Runs a corpus of op-test cases (ExecuTorch's MLX op suite, exported by tools/export-mlx-op-tests):
/// each case directory holds `model.pte`, `input.bin`, `expected_output.bin` and `case.json`
/// (rtol, atol, skip_comparison, needs_metal). A case whose payload carries a Metal kernel runs when mlxc knows the
/// kernel (`KnownMetalKernels`), and is skipped naming it otherwise.
public enum Conformance {
    public enum Verdict: Equatable {
        case passed
        case failed(String)
        case skipped(String)
    }

    public struct CaseInfo: Decodable {
        public var rtol: Double?
        public var atol: Double?
        public var skip_comparison: Bool?
        public var needs_metal: Bool?
        /// "capacity,layers,kv_heads,head_dim,scalar_type" of the off-graph cache the case needs.
        public var kv_cache: String?
    }

    public static func run(caseDirectory dir: String, compiled: Bool = false) -> Verdict {
        let path = { (name: String) in (dir as NSString).appendingPathComponent(name) }
        var info = CaseInfo()
        if let data = FileManager.default.contents(atPath: path("case.json")) {
            info = (try? JSONDecoder().decode(CaseInfo.self, from: data)) ?? info
        }
        do {
            let pte = try PTEFile(path: path("model.pte"))
            let graph = try Importer.importMethod(pte).graph
            // Metal kernels mlxc knows were imported as native ops; the rest run as the Metal subset, unless their
            // source is outside it (the reason names the kernel, its fingerprint and the construct).
            let metal = graph.blocks.flatMap(\.nodes).compactMap { node -> String? in
                guard case .metalKernel(let k) = node.op else { return nil }
                do {
                    _ = try k.subsetProgram(inputTypes: k.inputs.map { graph.type($0) })
                    return nil
                } catch { return "\(error)" }
            }
            if let first = metal.first { return .skipped("needs \(first)") }
            try Verifier.verify(graph)
            let executor = try ReferenceExecutor(graph: graph, pte: pte)
            let runner: any ProgramExecutor = compiled ? try JITProgram(graph: graph, pte: pte, options: {
                var o = JITProgram.Options()
                o.threads = 1
                return o
            }()) : executor
            if let spec = info.kv_cache?.split(separator: ",").compactMap({ Int($0) }), spec.count == 5,
               let dtype = DType(rawValue: Int8(truncatingIfNeeded: spec[4])) {
                executor.offGraphCache.storageDType = dtype
                (runner as? JITProgram)?.reference.offGraphCache.storageDType = dtype
            }
            var inputs = try TensorFiles.readBin(path("input.bin"))
            for (i, id) in graph.inputs.enumerated() where i < inputs.count {
                if let want = graph[id].type?.dtype, want != inputs[i].dtype, want.isFloatingPoint, inputs[i].dtype.isFloatingPoint {
                    inputs[i] = inputs[i].converted(to: want)
                }
            }
            let outputs = try runner.run(inputs)
            if info.skip_comparison == true { return .passed }
            let expected = try TensorFiles.readBin(path("expected_output.bin"))
            guard outputs.count == expected.count else { return .failed("\(outputs.count) outputs, \(expected.count) expected") }
            for (j, (out, exp)) in zip(outputs, expected).enumerated() {
                if let problem = compare(out, exp, rtol: info.rtol ?? 1e-5, atol: info.atol ?? 1e-5) {
                    return .failed("output \(j): \(problem)")
                }
            }
            return .passed
        } catch {
            return .failed("\(error)")
        }
    }

    /// `numpy.allclose` semantics for floats (|out − expected| ≤ atol + rtol·|expected|, NaNs equal), exact for the rest.
    public static func compare(_ out: HostTensor, _ expected: HostTensor, rtol: Double, atol: Double) -> String? {
        guard out.shape == expected.shape else { return "shape \(out.shape), expected \(expected.shape)" }
        let exact = !expected.dtype.isFloatingPoint
        var worst = 0.0, worstAt = -1
        for i in 0..<out.count {
            let a = out.storage[i], e = expected.storage[i]
            if a.isNaN && e.isNaN { continue }
            if a == e { continue }
            let err = abs(a - e)
            let bound = exact ? 0 : atol + rtol * abs(e)
            if !(err <= bound), err - bound > worst || worstAt < 0 { worst = err - bound; worstAt = i }
        }
        guard worstAt >= 0 else { return nil }
        return "element \(worstAt): \(out.storage[worstAt]) vs expected \(expected.storage[worstAt]) (rtol \(rtol), atol \(atol))"
    }
}
