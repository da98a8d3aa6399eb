import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// Qwen 3.5 MoE's GatedDeltaNet layers keep a conv state and a recurrent state across calls, which the program
/// itself zeroes when a call starts at position 0 (`state · (input_pos[0] ≠ 0)`). On the committed zoo program,
/// compiled: a prompt, three decode steps, then the same prompt again at position 0 gives the first call's logits
/// bit for bit (the states written by the steps in between are reset, and the writes persist across calls).
final class RecurrentStateResetTests: XCTestCase {
    func testPromptAtPositionZeroStartsFromCleanState() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/zoo/qwen35moe_e16k8_mlx_bf16")
        struct Reference: Decodable { var prompt: [Int]; var greedy: [Int] }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("reference.json")))
        let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path)
        let jit = try JITProgram(graph: try Importer.importMethod(pte).graph, pte: pte)
        func call(_ tokens: [Int], at position: Int) throws -> HostTensor {
            let t = HostTensor(dtype: .i64, shape: [1, tokens.count], storage: tokens.map(Double.init))
            let p = HostTensor(dtype: .i64, shape: [tokens.count], storage: (position..<(position + tokens.count)).map(Double.init))
            return try jit.run([t, p])[0]
        }
        let first = try call(reference.prompt, at: 0)
        var steps: [HostTensor] = []
        for k in 0..<3 { steps.append(try call([reference.greedy[k]], at: reference.prompt.count + k)) }
        XCTAssertNotEqual(steps[0].storage, first.storage, "decode steps see the state")
        let again = try call(reference.prompt, at: 0)
        XCTAssertEqual(again.storage, first.storage, "the prompt at position 0 after decoding")
    }

    /// etLLM's Qwen 3.5 (`llama::gated_delta_rule` between XNNPACK delegates; static shapes: one token per call,
    /// `input_pos` [1]) zeroes conv_state and recurrent_state itself (`buffer[:b].mul_(1 − (input_pos[0] == 0))`):
    /// the prompt fed token by token, three greedy steps, then the prompt again from position 0 gives the first
    /// pass's logits at every position, bit for bit.
    func testEtLLMPromptAtPositionZeroStartsFromCleanState() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/zoo/etllm_qwen35_xnnpack_fp32")
        struct Reference: Decodable { var prompt: [Int]; var greedy: [Int] }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: dir.appendingPathComponent("reference.json")))
        let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path)
        let jit = try JITProgram(graph: try Importer.importMethod(pte).graph, pte: pte)
        XCTAssertTrue(jit.kernelNames.contains { $0.contains("gated_delta") }, "\(jit.kernelNames)")
        func call(_ token: Int, at position: Int) throws -> HostTensor {
            try jit.run([HostTensor(dtype: .i64, shape: [1, 1], storage: [Double(token)]),
                         HostTensor(dtype: .i64, shape: [1], storage: [Double(position)])])[0]
        }
        let first = try reference.prompt.enumerated().map { try call($0.element, at: $0.offset) }
        var steps: [HostTensor] = []
        for k in 0..<3 { steps.append(try call(reference.greedy[k], at: reference.prompt.count + k)) }
        XCTAssertNotEqual(steps[0].storage, first.last!.storage, "decode steps see the state")
        let again = try reference.prompt.enumerated().map { try call($0.element, at: $0.offset) }
        for (k, (a, b)) in zip(again, first).enumerated() {
            XCTAssertEqual(a.storage, b.storage, "prompt position \(k) after decoding")
        }
    }
}
