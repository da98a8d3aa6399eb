import CLLVM
import LLVMKit

/// `out[m, n] = Σ_k x[m, k] · W[n, k] (+ bias[n])` where W, x, bias and out may each be f32, bf16
/// or f16: the same register-blocked loop as `LinearKernels.f32` (`LinearRows`), with every load
/// widened to f32 (W is read as stored, 2 bytes per weight for bf16/f16: decode is bound by the
/// weight stream, so the weights are never copied wider), f32 accumulation, and the sum (plus bias)
/// rounded once to the output dtype. buffers: [x, W, bias?, out]; dims: [M].
extension LinearKernels {
    public static func typed(k: Int, n: Int, weight: ElementType, activation: ElementType, bias: ElementType?,
                             output: ElementType, lanes: Int) -> KernelDefinition {
        precondition([weight, activation, output].allSatisfy(ElementType.activations.contains))
        let name = "linear_\(weight.tag)w_\(activation.tag)_k\(k)_n\(n)\(bias.map { "_bias\($0.tag)" } ?? "")_to\(output.tag)_v\(lanes)"
        return single(name: name, k: k, n: n, weight: weight, activation: activation, bias: bias, output: output, lanes: lanes)
    }
}
