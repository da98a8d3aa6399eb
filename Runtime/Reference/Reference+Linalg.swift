import MLXCIR

extension Environment {
    /// Reference kernels: Linalg ops. Returns false for ops of other families.
    mutating func executeLinalg(_ op: Op) throws -> Bool {
        switch op {
        case .matmul(let o):
            set(o.out, try LinalgKernels.matmul(try tensor(o.a), try tensor(o.b), "matmul"))
        case .addmm(let o):
            set(o.out, try LinalgKernels.addmm(try tensor(o.mat1), try tensor(o.mat2), bias: try optional(o.bias),
                                               alpha: o.alpha, beta: o.beta))
        case .conv1D(let o):
            set(o.out, try LinalgKernels.conv(try tensor(o.x), try tensor(o.w), stride: [o.stride], padding: [o.padding],
                                              dilation: [o.dilation], groups: o.groups, "conv1d"))
        case .conv2D(let o):
            set(o.out, try LinalgKernels.conv(try tensor(o.x), try tensor(o.w), stride: [o.strideH, o.strideW],
                                              padding: [o.paddingH, o.paddingW], dilation: [o.dilationH, o.dilationW],
                                              groups: o.groups, "conv2d"))
        case .conv3D(let o):
            set(o.out, try LinalgKernels.conv(try tensor(o.x), try tensor(o.w), stride: [o.strideD, o.strideH, o.strideW],
                                              padding: [o.paddingD, o.paddingH, o.paddingW],
                                              dilation: [o.dilationD, o.dilationH, o.dilationW], groups: o.groups, "conv3d"))
        case .convTranspose1D(let o):
            set(o.out, try LinalgKernels.convTranspose(try tensor(o.x), try tensor(o.w), stride: [o.stride], padding: [o.padding],
                                                       dilation: [o.dilation], outputPadding: [o.outputPadding],
                                                       groups: o.groups, "conv_transpose1d"))
        case .convTranspose2D(let o):
            set(o.out, try LinalgKernels.convTranspose(try tensor(o.x), try tensor(o.w), stride: [o.strideH, o.strideW],
                                                       padding: [o.paddingH, o.paddingW], dilation: [o.dilationH, o.dilationW],
                                                       outputPadding: [o.outputPaddingH, o.outputPaddingW],
                                                       groups: o.groups, "conv_transpose2d"))
        case .convTranspose3D(let o):
            set(o.out, try LinalgKernels.convTranspose(try tensor(o.x), try tensor(o.w), stride: [o.strideD, o.strideH, o.strideW],
                                                       padding: [o.paddingD, o.paddingH, o.paddingW],
                                                       dilation: [o.dilationD, o.dilationH, o.dilationW],
                                                       outputPadding: [o.outputPaddingD, o.outputPaddingH, o.outputPaddingW],
                                                       groups: o.groups, "conv_transpose3d"))
        case .gatherMm(let o):
            set(o.out, try LinalgKernels.gatherMm(try tensor(o.a), try tensor(o.b), lhs: try optional(o.lhsIndices),
                                                  rhs: try optional(o.rhsIndices)))
        default: return false
        }
        return true
    }
}

/// Matrix products and convolutions, accumulated in Double (the executor rounds the result).
enum LinalgKernels {
    /// NumPy/MLX matmul: a [..., M, K] @ b [..., K, N] with batch dims broadcast; a 1-D `a` is a row
    /// and a 1-D `b` a column, their inserted dim removed from the result.
    static func matmul(_ a: HostTensor, _ b: HostTensor, _ op: String) throws -> HostTensor {
        // Integer codes times floats is no product ATen or MLX defines: it is what a quantized weight
        // looks like once an export dropped its scales (torchao's IntxUnpackedToInt8Tensor lowered with
        // no backend, e.g. etLLM's 8da4w without XNNPACK). Computing it would be silent garbage.
        if a.dtype.isFloatingPoint != b.dtype.isFloatingPoint {
            throw ReferenceError("\(op): operands are \(a.dtype) \(a.shape) and \(b.dtype) \(b.shape): integer codes times floats is not a matrix product (a quantized weight exported without its scales?)")
        }
        guard a.rank >= 1, b.rank >= 1 else { throw ReferenceError("\(op): operands must have at least one dim, got \(a.shape) and \(b.shape)") }
        let a2 = a.rank == 1 ? a.reshaped([1, a.count]) : a
        let b2 = b.rank == 1 ? b.reshaped([b.count, 1]) : b
        let (m, k) = (a2.shape[a2.rank - 2], a2.shape[a2.rank - 1])
        let (k2, n) = (b2.shape[b2.rank - 2], b2.shape[b2.rank - 1])
        guard k == k2 else { throw ReferenceError("\(op): inner dims differ, \(a.shape) @ \(b.shape)") }
        let batch: [Int]
        do { batch = try Broadcast.shape(Array(a2.shape.dropLast(2)), Array(b2.shape.dropLast(2))) } catch {
            throw ReferenceError("\(op): batch dims of \(a.shape) and \(b.shape) do not broadcast")
        }
        let ae = try Broadcast.expand(a2, to: batch + [m, k]), be = try Broadcast.expand(b2, to: batch + [k, n])
        let batchCount = batch.reduce(1, *)
        var out = [Double](repeating: 0, count: batchCount * m * n)
        for bi in 0..<batchCount {
            product(ae.storage, aBase: bi * m * k, be.storage, bBase: bi * k * n, into: &out, outBase: bi * m * n, m: m, k: k, n: n)
        }
        var shape = batch + [m, n]
        if a.rank == 1 { shape.remove(at: shape.count - 2) }
        if b.rank == 1 { shape.removeLast() }
        return HostTensor(dtype: Broadcast.promote(a.dtype, b.dtype), shape: shape, storage: out)
    }

    /// out[outBase + i*n + j] = Σ_p a[aBase + i*k + p] * b[bBase + p*n + j], summed in order of p
    /// (rows of b streamed for locality; the caller has checked every range).
    static func product(_ a: [Double], aBase: Int, _ b: [Double], bBase: Int, into out: inout [Double], outBase: Int,
                        m: Int, k: Int, n: Int) {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    for i in 0..<m {
                        let row = outBase + i * n
                        for j in 0..<n { po[row + j] = 0 }
                        for p in 0..<k {
                            let av = pa[aBase + i * k + p]
                            let bRow = bBase + p * n
                            for j in 0..<n { po[row + j] += av * pb[bRow + j] }
                        }
                    }
                }
            }
        }
    }

    /// MLX `addmm`: alpha · (mat1 @ mat2) + beta · bias, the bias broadcast to the product's shape.
    static func addmm(_ mat1: HostTensor, _ mat2: HostTensor, bias: HostTensor?, alpha: Double, beta: Double) throws -> HostTensor {
        var r = try matmul(mat1, mat2, "addmm")
        guard let bias else {
            if alpha != 1 { r.storage = r.storage.map { alpha * $0 } }
            return r
        }
        let c: HostTensor
        do { c = try Broadcast.expand(bias, to: r.shape) } catch {
            throw ReferenceError("addmm: bias \(bias.shape) does not broadcast to the product \(r.shape) of \(mat1.shape) @ \(mat2.shape)")
        }
        for i in 0..<r.count { r.storage[i] = alpha * r.storage[i] + beta * c.storage[i] }
        r.dtype = Broadcast.promote(r.dtype, bias.dtype)
        return r
    }

    /// Checks an MLX-layout convolution: x [N, *spatial, C], w [O, *kernel, C/groups].
    static func convShapes(_ x: HostTensor, _ w: HostTensor, dims: Int, groups: Int, params: [[Int]], _ op: String) throws
        -> (batch: Int, spatial: [Int], channels: Int, out: Int, kernel: [Int], groupChannels: Int) {
        guard x.rank == dims + 2, w.rank == dims + 2 else {
            throw ReferenceError("\(op): input \(x.shape) and weight \(w.shape) must both have rank \(dims + 2)")
        }
        let c = x.shape[dims + 1], o = w.shape[0], cg = w.shape[dims + 1]
        guard groups >= 1, cg * groups == c, o % groups == 0 else {
            throw ReferenceError("\(op): input \(x.shape) and weight \(w.shape) do not fit \(groups) group(s)")
        }
        for p in params where p.count != dims {
            throw ReferenceError("\(op): parameter \(p) does not give one value per spatial dim")
        }
        return (x.shape[0], Array(x.shape[1...dims]), c, o, Array(w.shape[1...dims]), cg)
    }

    /// MLX `conv1d/2d/3d` (cross-correlation, symmetric zero padding): out [N, *out_spatial, O].
    static func conv(_ x: HostTensor, _ w: HostTensor, stride: [Int], padding: [Int], dilation: [Int], groups: Int,
                     _ op: String) throws -> HostTensor {
        let dims = stride.count
        let s = try convShapes(x, w, dims: dims, groups: groups, params: [stride, padding, dilation], op)
        guard stride.allSatisfy({ $0 >= 1 }), dilation.allSatisfy({ $0 >= 1 }), padding.allSatisfy({ $0 >= 0 }) else {
            throw ReferenceError("\(op): invalid stride \(stride), padding \(padding) or dilation \(dilation)")
        }
        var outSpatial: [Int] = []
        for d in 0..<dims {
            let span = s.spatial[d] + 2 * padding[d] - dilation[d] * (s.kernel[d] - 1) - 1
            guard span >= 0 else {
                throw ReferenceError("\(op): kernel \(s.kernel) (dilation \(dilation)) is larger than the padded input \(x.shape)")
            }
            outSpatial.append(span / stride[d] + 1)
        }
        let outShape = [s.batch] + outSpatial + [s.out]
        var out = [Double](repeating: 0, count: outShape.reduce(1, *))
        let xStrides = x.strides, wStrides = w.strides
        let outPerGroup = s.out / groups
        let kernelPositions = positions(s.kernel)
        let outPositions = positions(outSpatial)
        var flat = 0
        var at = [Int](repeating: 0, count: dims)
        for nb in 0..<s.batch {
            for pos in outPositions {
                for oc in 0..<s.out {
                    let g = oc / outPerGroup
                    var acc = 0.0
                    for kp in kernelPositions {
                        var xOffset = nb * xStrides[0], inside = true
                        for d in 0..<dims {
                            at[d] = pos[d] * stride[d] - padding[d] + kp[d] * dilation[d]
                            if at[d] < 0 || at[d] >= s.spatial[d] { inside = false; break }
                            xOffset += at[d] * xStrides[d + 1]
                        }
                        guard inside else { continue }
                        var wOffset = oc * wStrides[0]
                        for d in 0..<dims { wOffset += kp[d] * wStrides[d + 1] }
                        let xBase = xOffset + g * s.groupChannels
                        for c in 0..<s.groupChannels { acc += x.storage[xBase + c] * w.storage[wOffset + c] }
                    }
                    out[flat] = acc
                    flat += 1
                }
            }
        }
        return HostTensor(dtype: Broadcast.promote(x.dtype, w.dtype), shape: outShape, storage: out)
    }

    /// MLX `conv_transpose1d/2d/3d`: x [N, *spatial, C], w [O, *kernel, C/groups]; input position i and
    /// kernel tap k feed output position i·stride + k·dilation − padding, whose size is
    /// (in − 1)·stride − 2·padding + dilation·(kernel − 1) + 1 + output_padding.
    static func convTranspose(_ x: HostTensor, _ w: HostTensor, stride: [Int], padding: [Int], dilation: [Int],
                              outputPadding: [Int], groups: Int, _ op: String) throws -> HostTensor {
        let dims = stride.count
        let s = try convShapes(x, w, dims: dims, groups: groups, params: [stride, padding, dilation, outputPadding], op)
        guard stride.allSatisfy({ $0 >= 1 }), dilation.allSatisfy({ $0 >= 1 }), padding.allSatisfy({ $0 >= 0 }),
              outputPadding.allSatisfy({ $0 >= 0 }) else {
            throw ReferenceError("\(op): invalid stride \(stride), padding \(padding), dilation \(dilation) or output padding \(outputPadding)")
        }
        var outSpatial: [Int] = []
        for d in 0..<dims {
            let size = (s.spatial[d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (s.kernel[d] - 1) + 1 + outputPadding[d]
            guard size >= 0 else { throw ReferenceError("\(op): padding \(padding) leaves no output for input \(x.shape)") }
            outSpatial.append(size)
        }
        let outShape = [s.batch] + outSpatial + [s.out]
        var out = [Double](repeating: 0, count: outShape.reduce(1, *))
        let xStrides = x.strides, wStrides = w.strides, outStrides = HostTensor.strides(outShape)
        let outPerGroup = s.out / groups
        let kernelPositions = positions(s.kernel)
        let inPositions = positions(s.spatial)
        for nb in 0..<s.batch {
            for ip in inPositions {
                var xOffset = nb * xStrides[0]
                for d in 0..<dims { xOffset += ip[d] * xStrides[d + 1] }
                for kp in kernelPositions {
                    var outOffset = nb * outStrides[0], inside = true
                    for d in 0..<dims {
                        let p = ip[d] * stride[d] + kp[d] * dilation[d] - padding[d]
                        if p < 0 || p >= outSpatial[d] { inside = false; break }
                        outOffset += p * outStrides[d + 1]
                    }
                    guard inside else { continue }
                    var wOffset = 0
                    for d in 0..<dims { wOffset += kp[d] * wStrides[d + 1] }
                    for oc in 0..<s.out {
                        let xBase = xOffset + (oc / outPerGroup) * s.groupChannels
                        let wBase = oc * wStrides[0] + wOffset
                        var acc = 0.0
                        for c in 0..<s.groupChannels { acc += x.storage[xBase + c] * w.storage[wBase + c] }
                        out[outOffset + oc] += acc
                    }
                }
            }
        }
        return HostTensor(dtype: Broadcast.promote(x.dtype, w.dtype), shape: outShape, storage: out)
    }

    /// Every multi-index of `shape`, row-major.
    static func positions(_ shape: [Int]) -> [[Int]] {
        var result: [[Int]] = []
        let count = shape.reduce(1, *)
        guard count > 0 else { return [] }
        result.reserveCapacity(count)
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            result.append(index)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return result
    }

    /// MLX `gather_mm`: a [..., M, K] @ b [..., K, N] where the result's batch entry e multiplies matrix
    /// lhs[e] of a's flattened batch by matrix rhs[e] of b's (absent indices default to arange over that
    /// operand's batch shape); lhs and rhs broadcast to B and the result is B + [M, N]. Without
    /// either index array it is a plain matmul.
    static func gatherMm(_ a: HostTensor, _ b: HostTensor, lhs: HostTensor?, rhs: HostTensor?) throws -> HostTensor {
        if lhs == nil && rhs == nil { return try matmul(a, b, "gather_mm") }
        guard a.rank >= 1, b.rank >= 1 else { throw ReferenceError("gather_mm: operands must have at least one dim, got \(a.shape) and \(b.shape)") }
        let a2 = a.rank == 1 ? a.reshaped([1, a.count]) : a
        let b2 = b.rank == 1 ? b.reshaped([b.count, 1]) : b
        let (m, k) = (a2.shape[a2.rank - 2], a2.shape[a2.rank - 1])
        let (k2, n) = (b2.shape[b2.rank - 2], b2.shape[b2.rank - 1])
        guard k == k2 else { throw ReferenceError("gather_mm: inner dims differ, \(a.shape) @ \(b.shape)") }
        let aBatchShape = Array(a2.shape.dropLast(2)), bBatchShape = Array(b2.shape.dropLast(2))
        let aBatches = aBatchShape.reduce(1, *), bBatches = bBatchShape.reduce(1, *)
        let li = lhs ?? HostTensor(dtype: .u32, shape: aBatchShape, storage: (0..<aBatches).map(Double.init))
        let ri = rhs ?? HostTensor(dtype: .u32, shape: bBatchShape, storage: (0..<bBatches).map(Double.init))
        let batch: [Int]
        do { batch = try Broadcast.shape(li.shape, ri.shape) } catch {
            throw ReferenceError("gather_mm: lhs indices \(li.shape) and rhs indices \(ri.shape) do not broadcast")
        }
        let l = try Broadcast.expand(li, to: batch), r = try Broadcast.expand(ri, to: batch)
        var out = [Double](repeating: 0, count: l.count * m * n)
        for e in 0..<l.count {
            let (ai, bi) = (l.storage[e], r.storage[e])
            guard ai >= 0, ai < Double(aBatches), ai == ai.rounded() else {
                throw ReferenceError("gather_mm: lhs index \(ai) is outside the \(aBatches) matrices of \(a.shape)")
            }
            guard bi >= 0, bi < Double(bBatches), bi == bi.rounded() else {
                throw ReferenceError("gather_mm: rhs index \(bi) is outside the \(bBatches) matrices of \(b.shape)")
            }
            product(a2.storage, aBase: Int(ai) * m * k, b2.storage, bBase: Int(bi) * k * n, into: &out, outBase: e * m * n, m: m, k: k, n: n)
        }
        var shape = batch + [m, n]
        if a.rank == 1 { shape.remove(at: shape.count - 2) }
        if b.rank == 1 { shape.removeLast() }
        return HostTensor(dtype: Broadcast.promote(a.dtype, b.dtype), shape: shape, storage: out)
    }
}
