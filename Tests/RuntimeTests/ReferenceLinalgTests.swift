import XCTest
import MLXCIR
@testable import MLXCRuntime

/// Expected values come from PyTorch (channels-first results transposed to MLX's channels-last
/// layout); the numbers are small integers, so every product and sum is exact.
final class ReferenceLinalgTests: XCTestCase {
    typealias K = KernelGraph

    func matmul(_ a: HostTensor, _ b: HostTensor) throws -> HostTensor {
        try K.eval([a, b]) { g, ids, out in g.op(.matmul(MatmulOp(a: ids[0], b: ids[1], out: out))) }
    }

    func testMatmul() throws {
        let a = K.t([2, 3], [1, 2, 3, 4, 5, 6]), b = K.t([3, 2], [1, 0, 0, 1, 1, 1])
        assertTensor(try matmul(a, b), [2, 2], [4, 5, 10, 11])
        // np.matmul(np.arange(12).reshape(2,1,2,3) - 5.0, np.arange(18).reshape(3,3,2) % 7 - 3.0): batch dims broadcast.
        let a4 = K.t([2, 1, 2, 3], (0..<12).map { Double($0) - 5 })
        let b3 = K.t([3, 3, 2], (0..<18).map { Double($0 % 7) - 3 })
        assertTensor(try matmul(a4, b3), [2, 3, 2, 2], [16, 4, 7, 4, -7, 16, -4, 7, 5, -7, -1, -4, -2, 4, -11, 4, -1, -2, 2, -11, -7, -1, -13, 2])
        // 1-D operands: a row on the left, a column on the right, the inserted dim removed.
        assertTensor(try matmul(K.t([3], [1, 1, 1]), b), [2], [2, 2])
        assertTensor(try matmul(a, K.t([3], [1, 0, -1])), [2], [-2, -2])
        assertTensor(try matmul(K.t([3], [1, 2, 3]), K.t([3], [4, 5, 6])), [], [32])
        // bf16 operands give a bf16 result, rounded once: 1 + 2^-9 is not a bf16.
        let r = try matmul(K.t([1, 2], [1, 1], .bf16), K.t([2, 1], [1, 0.001953125], .bf16))
        assertTensor(r, [1, 1], [1], .bf16)
        assertThrows(try self.matmul(a, a), mentioning: ["matmul", "[2, 3]"])
        // Integer codes times floats (a quantized weight whose scales an export dropped) is refused.
        assertThrows(try self.matmul(a, K.t([3, 2], [1, 0, 0, 1, 1, 1], .i8)), mentioning: ["matmul", "i8", "not a matrix product"])
        assertThrows(try self.matmul(K.t([], [1]), a), mentioning: ["matmul"])
        assertThrows(try self.matmul(K.t([2, 2, 3], [Double](repeating: 0, count: 12)), K.t([3, 3, 1], [Double](repeating: 0, count: 9))),
                     mentioning: ["matmul", "batch"])
    }

    func testAddmm() throws {
        let a = K.t([2, 3], [1, 2, 3, 4, 5, 6]), b = K.t([3, 2], [1, 0, 0, 1, 1, 1]), bias = K.t([2], [10, 20])
        // 2 · (a @ b) + 0.5 · bias, bias broadcast over rows.
        let r = try K.eval([a, b, bias]) { g, ids, out in
            g.op(.addmm(AddmmOp(mat1: ids[0], mat2: ids[1], out: out, bias: ids[2], alpha: 2, beta: 0.5)))
        }
        assertTensor(r, [2, 2], [13, 20, 25, 32])
        // Batched mat1 (a linear layer on [B, S, in]) with the bias broadcast.
        let x = K.t([2, 1, 3], [1, 2, 3, 4, 5, 6])
        let y = try K.eval([x, b, bias]) { g, ids, out in
            g.op(.addmm(AddmmOp(mat1: ids[0], mat2: ids[1], out: out, bias: ids[2], alpha: 1, beta: 1)))
        }
        assertTensor(y, [2, 1, 2], [14, 25, 20, 31])
        let plain = try K.eval([a, b]) { g, ids, out in g.op(.addmm(AddmmOp(mat1: ids[0], mat2: ids[1], out: out, bias: nil, alpha: 1, beta: 1))) }
        assertTensor(plain, [2, 2], [4, 5, 10, 11])
        assertThrows(try K.eval([a, b, K.t([3], [1, 2, 3])]) { g, ids, out in
            g.op(.addmm(AddmmOp(mat1: ids[0], mat2: ids[1], out: out, bias: ids[2], alpha: 1, beta: 1)))
        }, mentioning: ["addmm", "bias"])
    }

    func testConv1DStrideDilationGroups() throws {
        // torch.nn.functional.conv1d(x NCL [2,4,7], w [6,2,3], stride=2, padding=1, dilation=2, groups=2)
        let x = K.t([2, 7, 4], [2, -3, 3, 2, 1, -2, 2, 1, 0, 2, 1, -3, -2, 1, 0, -1, -1, 3, 0, 3, -3, 0, 3, 0, -3, 1, -2, -3, 2, 0, -3, 1, 2, -3, -3, 2, 2, -1, -3, -1, -2, 0, 1, 0, -3, -1, 0, 3, 3, -1, 1, 2, -3, -3, -2, 3])
        let w = K.t([6, 3, 2], [-1, 1, 1, 2, 2, 1, 1, -2, -1, 0, 2, 1, 2, -1, 0, 0, -1, 0, 1, 2, 2, 0, -2, -1, 1, -1, 0, 1, -1, 0, 0, -1, -1, -1, 1, 2])
        let y = try K.eval([x, w]) { g, ids, out in
            g.op(.conv1D(Conv1DOp(x: ids[0], w: ids[1], out: out, stride: 2, padding: 1, dilation: 2, groups: 2)))
        }
        assertTensor(y, [2, 3, 6], [-6, -4, 2, 5, 1, -5, -9, 1, 7, -2, -3, 3, 0, -1, -5, 4, 1, -2, -8, -6, 2, -8, 1, 2, -2, 15, 4, -1, -6, 2, 3, -5, -4, 3, 3, -3])
        // 4 input channels do not split into 3 groups of the weight's 2.
        assertThrows(try K.eval([x, w]) { g, ids, out in
            g.op(.conv1D(Conv1DOp(x: ids[0], w: ids[1], out: out, stride: 1, padding: 0, dilation: 1, groups: 3)))
        }, mentioning: ["conv1d", "group"])
    }

    func testConv2D() throws {
        // torch conv2d(x [1,2,5,4], w [3,2,3,2], stride=(2,1), padding=(1,0), dilation=(1,2))
        let x = K.t([1, 5, 4, 2], [-2, 3, -2, 0, 1, 3, 1, 2, -3, 1, -3, -2, -1, 2, 2, -3, -1, 0, 2, -1, -1, 3, -2, -2, 2, 3, 3, -3, -3, 1, -3, 1, 1, 3, -1, -1, 1, 3, -2, 1])
        let w = K.t([3, 3, 2, 2], [2, 1, -2, -2, 1, 0, 2, 1, -2, 1, -1, 2, 0, -2, 0, 0, 0, 2, 2, 1, -2, -1, 0, 2, 1, 0, 2, 0, -2, 0, 0, 0, 2, -1, 1, 1])
        let y = try K.eval([x, w]) { g, ids, out in
            g.op(.conv2D(Conv2DOp(x: ids[0], w: ids[1], out: out, strideH: 2, strideW: 1, paddingH: 1, paddingW: 0,
                                  dilationH: 1, dilationW: 2, groups: 1)))
        }
        assertTensor(y, [1, 3, 2, 3], [15, 20, -2, -2, 6, -1, -3, -6, -4, -14, -5, 4, 17, 5, -6, 3, 1, -1])
        // A kernel wider than the padded input.
        assertThrows(try K.eval([K.t([1, 1, 1, 2], [1, 2]), w]) { g, ids, out in
            g.op(.conv2D(Conv2DOp(x: ids[0], w: ids[1], out: out, strideH: 1, strideW: 1, paddingH: 0, paddingW: 0,
                                  dilationH: 1, dilationW: 1, groups: 1)))
        }, mentioning: ["conv2d"])
    }

    func testConv3D() throws {
        // torch conv3d(x [1,1,3,3,3], w [2,1,2,2,2], stride=2, padding=1)
        let x = K.t([1, 3, 3, 3, 1], [-3, -1, -2, 2, 2, 1, 3, 3, -2, -3, -3, 2, 3, 3, 1, 3, 3, -3, -3, 3, -3, 3, 2, 3, -1, -2, 0])
        let w = K.t([2, 2, 2, 2, 1], [2, -1, 2, -1, 2, -1, 0, -1, -1, 2, 2, -2, 2, 2, -1, 0])
        let y = try K.eval([x, w]) { g, ids, out in
            g.op(.conv3D(Conv3DOp(x: ids[0], w: ids[1], out: out, strideD: 2, strideH: 2, strideW: 2, paddingD: 1, paddingH: 1,
                                  paddingW: 1, dilationD: 1, dilationH: 1, dilationW: 1, groups: 1)))
        }
        assertTensor(y, [1, 2, 2, 2, 2], [3, 0, 2, 1, -5, 4, 5, 3, 6, 6, -5, -13, -8, 6, 15, 23])
    }

    func testConvTranspose1D() throws {
        // torch conv_transpose1d(x [1,4,3], w [4,3,3], stride=2, padding=1, output_padding=1, groups=2); the weight
        // rearranged to MLX's [C_out, K, C_in/groups] the way the MLX backend does it.
        let x = K.t([1, 3, 4], [0, -2, -3, -2, 1, 3, 2, 1, 0, 1, 2, 0])
        let w = K.t([6, 3, 2], [-2, 2, 2, 2, 1, -1, -1, -2, -2, 0, -2, 2, 1, 1, -2, -2, 0, 1, -1, -1, -1, -1, 0, -1, 2, 2, 2, -1, -2, -1, 0, -2, 1, -2, -1, 1])
        let y = try K.eval([x, w]) { g, ids, out in
            g.op(.convTranspose1D(ConvTranspose1DOp(x: ids[0], w: ids[1], out: out, stride: 2, padding: 1, dilation: 1, outputPadding: 1, groups: 2)))
        }
        assertTensor(y, [1, 6, 6], [-4, 0, 4, 5, -4, 1, 6, -11, 2, -1, 14, -1, 8, -2, -8, -3, 3, 0, 0, 2, 4, -3, -1, -1, 2, 0, -2, -2, 4, 2, -1, 2, 1, 0, -4, -2])
        // torch conv_transpose1d(x [2,2,4], w [2,3,2], stride=3, padding=2, dilation=2)
        let x2 = K.t([2, 4, 2], [-1, 0, 2, 2, 1, 2, 3, -3, 0, -1, 0, 0, -1, 2, 0, 2])
        let w2 = K.t([3, 2, 2], [1, 0, 1, -1, 2, 0, 1, -2, -1, 2, -2, 2])
        let y2 = try K.eval([x2, w2]) { g, ids, out in
            g.op(.convTranspose1D(ConvTranspose1DOp(x: ids[0], w: ids[1], out: out, stride: 3, padding: 2, dilation: 2, outputPadding: 0, groups: 1)))
        }
        assertTensor(y2, [2, 8, 3], [-1, -1, 2, 2, 4, 2, 0, 0, 0, 0, -2, 0, 1, 2, 3, 0, 0, 0, -1, -3, 2, 3, 6, -9, 1, 2, -2, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -2, 5, 0, 0, 0, -3, -5, 6, 0, 0, 4])
    }

    func testConvTranspose2D() throws {
        // torch conv_transpose2d(x [1,2,2,3], w [2,1,3,2], stride=(2,1), padding=(1,0), output_padding=(1,0), dilation=(1,2))
        let x = K.t([1, 2, 3, 2], [-2, -3, 2, 1, -1, 2, -3, 2, 3, -1, 3, 3])
        let w = K.t([1, 3, 2, 2], [2, -2, -2, -1, -2, 1, -2, 0, -1, -1, -2, 2])
        let y = try K.eval([x, w]) { g, ids, out in
            g.op(.convTranspose2D(ConvTranspose2DOp(x: ids[0], w: ids[1], out: out, strideH: 2, strideW: 1, paddingH: 1, paddingW: 0,
                                                    dilationH: 1, dilationW: 2, outputPaddingH: 1, outputPaddingW: 0, groups: 1)))
        }
        assertTensor(y, [1, 4, 5, 1], [1, -3, 8, -4, 2, -5, 5, 1, -7, -3, 8, -7, 3, -6, -6, 1, -2, 4, -8, 0])
    }

    func testGatherMm() throws {
        // out[e] = a[lhs[e]] @ b[rhs[e]] with a = np.arange(6).reshape(2,1,3) - 2, b = np.arange(18).reshape(3,3,2) % 5 - 2
        let a = K.t([2, 1, 3], (0..<6).map { Double($0) - 2 })
        let b = K.t([3, 3, 2], (0..<18).map { Double($0 % 5) - 2 })
        let gm = { (lhs: HostTensor?, rhs: HostTensor?) in
            try K.eval([a, b] + [lhs, rhs].compactMap { $0 }) { g, ids, out in
                var next = 2
                func take(_ t: HostTensor?) -> ValueID? {
                    guard t != nil else { return nil }
                    defer { next += 1 }
                    return ids[next]
                }
                let l = take(lhs), r = take(rhs)
                g.op(.gatherMm(GatherMmOp(a: ids[0], b: ids[1], out: out, lhsIndices: l, rhsIndices: r, sortedIndices: false, sortedIndicesFlag: nil)))
            }
        }
        assertTensor(try gm(K.t([3], [0, 1, 1], .u32), K.t([3], [2, 0, 1], .u32)), [3, 1, 2], [-2, 0, 4, -5, -5, 1])
        // Only rhs indices: lhs defaults to a's own batch index (arange over [2]) and broadcasts against rhs [2].
        assertTensor(try gm(nil, K.t([2], [2, 0], .u32)), [2, 1, 2], [-2, 0, 4, -5])
        assertThrows(try gm(K.t([1], [2], .u32), K.t([1], [0], .u32)), mentioning: ["gather_mm", "lhs index 2"])
        assertThrows(try gm(K.t([1], [0], .u32), K.t([1], [-1], .i32)), mentioning: ["gather_mm", "rhs index -1"])
    }
}
