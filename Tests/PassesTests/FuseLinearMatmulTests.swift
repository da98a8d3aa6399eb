import XCTest
import MLXCIR
@testable import MLXCPasses

/// fuse-linear on `matmul(x, transpose(W, [1, 0]))`, the form optimum's portable exports give
/// nn.Linear (`aten::permute_copy` + `aten::mm`): it is the linear without a bias, so it fuses like
/// the addmm (SwiGLU with its residual here, a lone product as an addmm the linear kernels take); a
/// runtime weight or an untransposed constant stays a matmul.
extension FuseLinearTests {
    func testMatmulOfATransposedConstantIsALinear() throws {
        let b = Body()
        func mm(_ w: Int) -> Int {
            let t = b.node("transpose(x: %\(w), perm: [1, 0])")
            return b.node("matmul(a: %0, b: %\(t))")
        }
        let gate = mm(2), act = b.node("silu(x: %\(gate))"), up = mm(3)
        let prod = b.node("multiply(a: %\(act), b: %\(up))"), sum = b.node("add(a: %1, b: %\(prod))")
        let lone = mm(4)
        let runtime = b.node("transpose(x: %7, perm: [1, 0])"), kept = b.node("matmul(a: %0, b: %\(runtime))")
        let (text, _) = try fused(b, outputs: [sum, lone, kept])
        XCTAssertEqual(text, """
        %\(sum) = fused_linear(x: %0, w: [%2, %3], biases: [], bias_of: [], epilogue: "swiglu", residual: %1) : ?
        %\(lone - 1) = transpose(x: %4, perm: [1, 0]) : ?
        %\(lone) = addmm(mat1: %0, mat2: %\(lone - 1), bias: none, alpha: 1.0, beta: 1.0) : ?
        %\(runtime) = transpose(x: %7, perm: [1, 0]) : ?
        %\(kept) = matmul(a: %0, b: %\(runtime)) : ?
        """)
    }
}
