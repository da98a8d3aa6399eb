import MLXCIR

/// `aten::max_pool2d_with_indices.out` (a portable export's max pool: ResNet's stem) over NCHW, as the XNNPACK
/// importer does XNNMaxPooling2d (`PoolingWindowTaps`): the input padded with −∞ on H and W, one strided window view
/// per tap and their running `maximum`. Ceil mode pads the bottom/right by what one more window needs,
/// as long as that window starts inside the image or the left padding (ATen's rule). The indices output is left
/// undefined: a later read of it is reported as an error (no export reads it in eval mode).
extension PlanImporter {
    static var poolingTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["aten::max_pool2d_with_indices.out"] = { imp, a in
            // (self, kernel_size, stride, padding, dilation, ceil_mode, *, out, indices)
            try imp.arity(a, 8, "max_pool2d_with_indices")
            let x = try imp.read(a[0])
            guard let type = imp.graph.type(x), type.rank == 4, let h = type.shape[2].fixedValue, let w = type.shape[3].fixedValue else {
                throw imp.fail("max_pool2d of a value that is not a fixed-size [N, C, H, W] tensor")
            }
            func pair(_ v: [Int], _ fallback: [Int]) -> [Int] { v.isEmpty ? fallback : (v.count == 1 ? [v[0], v[0]] : v) }
            let kernel = pair(try imp.literalInts(a[1]), [1, 1])
            let stride = pair(try imp.literalInts(a[2]), kernel), padding = pair(try imp.literalInts(a[3]), [0, 0])
            let dilation = pair(try imp.literalInts(a[4]), [1, 1]), ceil = try imp.boolArg(a[5])
            guard kernel.count == 2, stride.count == 2, padding.count == 2, dilation.count == 2,
                  (kernel + stride + dilation).allSatisfy({ $0 >= 1 }), padding.allSatisfy({ $0 >= 0 }) else {
                throw imp.fail("max_pool2d kernel \(kernel), stride \(stride), padding \(padding), dilation \(dilation)")
            }
            var extents: [(size: Int, before: Int, after: Int, out: Int)] = []
            for (i, size) in [h, w].enumerated() {
                let span = dilation[i] * (kernel[i] - 1) + 1
                let room = size + 2 * padding[i] - span
                guard room >= 0 else { throw imp.fail("a max_pool2d window of \(span) does not fit \(size) + 2·\(padding[i])") }
                var out = (ceil ? room + stride[i] - 1 : room) / stride[i] + 1
                if ceil && (out - 1) * stride[i] >= size + padding[i] { out -= 1 }
                let after = max(padding[i], (out - 1) * stride[i] + span - size - padding[i])
                extents.append((size, padding[i], after, out))
            }
            let window = PoolingWindowTaps(axes: (2, 3), kernel: kernel, stride: stride, dilation: dilation,
                                           outSize: extents.map(\.out), emit: { imp.emit($0) }, temporary: { imp.temporary(nil) })
            let padded = window.padded(x, before: extents.map(\.before), after: extents.map(\.after), value: -Double.infinity)
            imp.emit(window.reduce(padded, PoolingWindowTaps.maximum)(try imp.write(a[6])))
        }
        return t
    }
}
