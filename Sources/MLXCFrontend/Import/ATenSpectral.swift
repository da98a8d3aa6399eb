import Foundation
import MLXCIR

/// The short-time Fourier transform as portable kernels spell `torch.stft` (ExecuTorch's mel preprocessor program:
/// `unfold_copy` → `_fft_r2c` → complex `transpose_copy`/`squeeze_copy` → `abs`). The IR has no complex dtype, so a
/// complex tensor lives at import as two real values (real, imaginary parts) kept per slot in `complexParts`:
/// `_fft_r2c` over the last axis is two matmuls with constant DFT tables (cos, −sin; exact in double, stored f32),
/// view ops apply to both parts, and `abs` gives √(re² + im²). Any other op reading a complex slot is refused naming it.
extension PlanImporter {
    static var spectralTranslators: [String: ATenTranslator] {
        var t: [String: ATenTranslator] = [:]
        t["aten::unfold_copy.out"] = { imp, a in
            // (self, dimension, size, step, out): windows of `size` every `step` along the last axis → [..., F, size].
            try imp.arity(a, 5, "unfold")
            let x = try imp.read(a[0])
            guard let type = imp.graph.type(x) else { throw imp.fail("unfold of a value of unknown type") }
            let dim = imp.axis(try imp.literalInt(a[1]), of: x), size = try imp.literalInt(a[2]), step = try imp.literalInt(a[3])
            guard dim == type.rank - 1 else { throw imp.fail("unfold along axis \(dim) of a rank-\(type.rank) tensor (only the last axis is supported)") }
            guard size > 0, step > 0 else { throw imp.fail("unfold with size \(size), step \(step)") }
            let out = try imp.write(a.last!)
            let frames = imp.graph.type(out)?.shape[safe: dim] ?? .dynamic(min: 1, max: Int.max)
            // F = (L - size) / step + 1 windows; window f reads x[f·step + j], j < size.
            let length = imp.temporary(TensorType(.i64, [])), span = imp.temporary(TensorType(.i64, []))
            let count = imp.temporary(TensorType(.i64, [])), stop = imp.temporary(TensorType(.i64, []))
            let last = imp.temporary(TensorType(.i64, []))
            imp.emit(.symSize(SymSizeOp(a: x, dim: dim, out: length)))
            imp.emit(.subtractInt(SubtractIntOp(a: .value(length), b: .literal(Int64(size)), out: span)))
            imp.emit(.floorDivideInt(FloorDivideIntOp(a: .value(span), b: .literal(Int64(step)), out: last)))
            imp.emit(.addInt(AddIntOp(a: .value(last), b: .literal(1), out: count)))
            imp.emit(.multiplyInt(MultiplyIntOp(a: .value(count), b: .literal(Int64(step)), out: stop)))
            let starts = imp.temporary(TensorType(.i64, [frames]))
            imp.emit(.arange(ARangeOp(out: starts, start: .literal(0), stop: .value(stop), step: .literal(Int64(step)), scalarType: .i64)))
            let offsets = imp.graph.addValue(TensorType(.i64, fixed: [1, size]), .constant(.literal((0..<size).map(Double.init))))
            let column = imp.temporary(TensorType(.i64, [frames, .fixed(1)]))
            imp.emit(.expandDims(ExpandDimsOp(x: starts, out: column, axis: 1)))
            let index = imp.temporary(TensorType(.i64, [frames, .fixed(size)]))
            imp.emit(.add(AddOp(a: column, b: offsets, out: index)))
            imp.emit(.take(TakeOp(x: x, out: out, index: .value(index), axis: dim)))
        }
        t["aten::_fft_r2c.out"] = { imp, a in
            // (self, dim[], normalization, onesided, out)
            try imp.arity(a, 5, "_fft_r2c")
            let x = try imp.read(a[0])
            guard let type = imp.graph.type(x), type.dtype == .f32 || type.dtype == .f64 else { throw imp.fail("_fft_r2c of a non-float tensor") }
            let dims = try imp.literalInts(a[1]).map { imp.axis($0, of: x) }
            guard dims == [type.rank - 1] else { throw imp.fail("_fft_r2c over axes \(dims) (only the last axis is supported)") }
            guard let n = type.shape.last?.fixedValue, n > 0 else { throw imp.fail("_fft_r2c over an axis of dynamic length") }
            let norm = try imp.literalInt(a[2])
            guard (0...2).contains(norm) else { throw imp.fail("_fft_r2c normalization \(norm)") }
            let onesided = try imp.boolArg(a[3])
            let k = onesided ? n / 2 + 1 : n
            let scale = [1.0, 1.0 / Double(n).squareRoot(), 1.0 / Double(n)][norm]
            // X[k] = Σ x[j]·e^(−2πi·jk/n): re = x·C, im = x·S with C[j, k] = cos(2π·jk/n), S[j, k] = −sin(2π·jk/n).
            var cosTable = [Double](repeating: 0, count: n * k), sinTable = cosTable
            for j in 0..<n {
                for f in 0..<k {
                    let angle = 2 * Double.pi * Double((j * f) % n) / Double(n)
                    cosTable[j * k + f] = cos(angle) * scale
                    sinTable[j * k + f] = -sin(angle) * scale
                }
            }
            let outShape = Array(type.shape.dropLast()) + [.fixed(k)]
            var parts: [ValueID] = []
            for table in [cosTable, sinTable] {
                let c = imp.graph.addValue(TensorType(type.dtype, fixed: [n, k]), .constant(.literal(table)))
                let part = imp.temporary(TensorType(type.dtype, outShape))
                imp.emit(.matmul(MatmulOp(a: x, b: c, out: part)))
                parts.append(part)
            }
            imp.complexParts[a.last!] = (parts[0], parts[1])
        }
        t["aten::transpose_copy.int_out"] = complexView(fallback: shapeTranslators["aten::transpose_copy.int_out"]!) { imp, a, x in
            guard let type = imp.graph.type(x) else { throw imp.fail("transpose of a value of unknown rank") }
            var perm = Array(0..<type.rank)
            perm.swapAt(imp.axis(try imp.literalInt(a[1]), of: x), imp.axis(try imp.literalInt(a[2]), of: x))
            return ({ v, out in .transpose(TransposeOp(x: v, out: out, perm: perm)) }, TensorType(type.dtype, perm.map { type.shape[$0] }))
        }
        for name in ["aten::squeeze_copy.dims_out", "aten::squeeze_copy.dim_out"] {
            t[name] = complexView(fallback: shapeTranslators[name]!) { imp, a, x in
                let dims = name.hasSuffix("dims_out") ? try imp.literalInts(a[1]) : [try imp.literalInt(a[1])]
                let axes = dims.map { imp.axis($0, of: x) }
                guard let type = imp.graph.type(x) else { throw imp.fail("squeeze of a value of unknown rank") }
                // Only size-1 axes go (torch leaves others in place).
                let gone = Set(axes.filter { type.shape[safe: $0]?.fixedValue == 1 })
                let shape = type.shape.enumerated().filter { !gone.contains($0.offset) }.map(\.element)
                return ({ v, out in .squeeze(SqueezeOp(x: v, out: out, dims: gone.sorted())) }, TensorType(type.dtype, shape))
            }
        }
        t["aten::abs.out"] = { imp, a in
            guard let (re, im) = imp.complexParts[a[0]] else { return try elementwiseTranslators["aten::abs.out"]!(imp, a) }
            let type = imp.graph.type(re)
            let re2 = imp.temporary(type), im2 = imp.temporary(type), sum = imp.temporary(type)
            imp.emit(.multiply(MultiplyOp(a: re, b: re, out: re2)))
            imp.emit(.multiply(MultiplyOp(a: im, b: im, out: im2)))
            imp.emit(.add(AddOp(a: re2, b: im2, out: sum)))
            imp.emit(.sqrt(SqrtOp(x: sum, out: try imp.write(a.last!))))
        }
        return t
    }

    /// A view op that also takes a complex input: `make` gives the op for one part and its output's type;
    /// real inputs go to the op's usual translator.
    static func complexView(fallback: @escaping ATenTranslator,
                            make: @escaping (PlanImporter, [Int], ValueID) throws -> ((ValueID, ValueID) -> Op, TensorType)) -> ATenTranslator {
        { imp, a in
            guard let (re, im) = imp.complexParts[a[0]] else { return try fallback(imp, a) }
            let (op, type) = try make(imp, a, re)
            var parts: [ValueID] = []
            for part in [re, im] {
                let out = imp.temporary(type)
                imp.emit(op(part, out))
                parts.append(out)
            }
            imp.complexParts[a.last!] = (parts[0], parts[1])
        }
    }
}
