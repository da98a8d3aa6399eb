import MLXCCodegen
import MLXCIR

/// Elementwise ops → `ElementwiseKernels` (strided maps): operands broadcast (NumPy rules) by
/// strides, collapsed to at most five dims per call.
extension Lowerings {
    static func binaryOp(_ op: Op) -> (ElementwiseKernels.Binary, a: ValueID, b: ValueID, out: ValueID)? {
        switch op {
        case .add(let o): return (.add, o.a, o.b, o.out)
        case .subtract(let o): return (.subtract, o.a, o.b, o.out)
        case .multiply(let o): return (.multiply, o.a, o.b, o.out)
        case .divide(let o): return (.divide, o.a, o.b, o.out)
        case .maximum(let o): return (.maximum, o.a, o.b, o.out)
        case .minimum(let o): return (.minimum, o.a, o.b, o.out)
        case .logAddExp(let o): return (.logAddExp, o.a, o.b, o.out)
        case .remainder(let o): return (.remainder, o.a, o.b, o.out)
        case .bitwiseAnd(let o): return (.bitwiseAnd, o.a, o.b, o.out)
        case .bitwiseOr(let o): return (.bitwiseOr, o.a, o.b, o.out)
        case .bitwiseXor(let o): return (.bitwiseXor, o.a, o.b, o.out)
        case .logicalAnd(let o): return (.logicalAnd, o.a, o.b, o.out)
        case .logicalOr(let o): return (.logicalOr, o.a, o.b, o.out)
        case .less(let o): return (.less, o.a, o.b, o.out)
        case .lessEqual(let o): return (.lessEqual, o.a, o.b, o.out)
        case .greater(let o): return (.greater, o.a, o.b, o.out)
        case .greaterEqual(let o): return (.greaterEqual, o.a, o.b, o.out)
        case .equal(let o): return (.equal, o.a, o.b, o.out)
        case .notEqual(let o): return (.notEqual, o.a, o.b, o.out)
        default: return nil
        }
    }

    static func unaryOp(_ op: Op) -> (ElementwiseKernels.Unary, x: ValueID, out: ValueID)? {
        switch op {
        case .exp(let o): return (.exp, o.x, o.out)
        case .sigmoid(let o): return (.sigmoid, o.x, o.out)
        case .silu(let o): return (.silu, o.x, o.out)
        case .tanh(let o): return (.tanh, o.x, o.out)
        case .erf(let o): return (.erf, o.x, o.out)
        case .sin(let o): return (.sin, o.x, o.out)
        case .cos(let o): return (.cos, o.x, o.out)
        case .sqrt(let o): return (.sqrt, o.x, o.out)
        case .log(let o): return (.log, o.x, o.out)
        case .log10(let o): return (.log10, o.x, o.out)
        case .log1p(let o): return (.log1p, o.x, o.out)
        case .rsqrt(let o): return (.rsqrt, o.x, o.out)
        case .reciprocal(let o): return (.reciprocal, o.x, o.out)
        case .neg(let o): return (.neg, o.x, o.out)
        case .abs(let o): return (.abs, o.x, o.out)
        case .square(let o): return (.square, o.x, o.out)
        case .logicalNot(let o): return (.logicalNot, o.x, o.out)
        case .round(let o) where o.decimals == 0: return (.round, o.x, o.out)
        case .gelu(let o):
            switch o.approximate {
            case "none", "": return (.geluErf, o.x, o.out)
            case "tanh": return (.geluTanh, o.x, o.out)
            default: return nil
            }
        default: return nil
        }
    }

    /// Output elements per share: enough that splitting pays for waking the other threads.
    static func elementwiseGrain(transcendental: Bool) -> Int { transcendental ? 2048 : 16384 }

    /// A map over broadcast operands: the output is their broadcast shape.
    static func mapLaunch(_ definition: KernelDefinition, _ node: Node, operands: [ValueID], out: ValueID,
                          resultDType: DType, operandDTypes: [DType?], grain: Int) -> LoweredKernel {
        launch(definition, node, operands: operands, results: [out], resultDTypes: [resultDType],
               operandDTypes: operandDTypes, grain: grain) { inputs in
            guard let shape = try? Broadcast.shape(inputs.map(\.shape)) else { return nil }
            var views: [(offset: Int, strides: [Int])] = []
            for t in inputs {
                guard let s = StridedLayout.broadcastStrides(t.shape, to: shape) else { return nil }
                views.append((0, s))
            }
            guard let dims = StridedLayout.mapDims(shape, views) else { return nil }
            return CallLayout(shapes: [shape], dims: dims, work: shape.reduce(1, *))
        }
    }

    /// The dtype both operands of a binary op share (inferred; f32 when nothing is known).
    static func commonDType(_ values: [ValueID], _ c: LoweringContext) -> DType? {
        let known = Set(values.compactMap { c.dtype($0) })
        if known.count > 1 { return nil }
        return known.first ?? .f32
    }

    static func elementwise(_ node: Node, _ c: LoweringContext) -> LoweredKernel? {
        if let (op, a, b, out) = binaryOp(node.op) {
            guard let dtype = commonDType([a, b], c), let t = ElementType(dtype),
                  let resultType = ElementwiseKernels.binaryResult(op, t),
                  let definition = ElementwiseKernels.binary(op, t, lanes: c.lanes) else { return nil }
            if op == .remainder {
                // Integer remainder by zero throws in the reference; only constant divisors without zeros.
                guard let divisor = c.constant(b), let host = try? divisor.host(), !host.storage.contains(0) else { return nil }
            }
            let resultDType = resultType == .bool ? DType.bool : dtype
            return mapLaunch(definition, node, operands: [a, b], out: out, resultDType: resultDType,
                             operandDTypes: [dtype, dtype], grain: elementwiseGrain(transcendental: false))
        }
        if let (op, x, out) = unaryOp(node.op) {
            let dtype = c.dtype(x) ?? .f32
            guard let t = ElementType(dtype), let resultType = ElementwiseKernels.unaryResult(op, t),
                  let definition = ElementwiseKernels.unary(op, t, lanes: c.lanes) else { return nil }
            return mapLaunch(definition, node, operands: [x], out: out, resultDType: resultType == .bool ? .bool : dtype,
                             operandDTypes: [dtype], grain: elementwiseGrain(transcendental: op.isTranscendental))
        }
        switch node.op {
        case .where(let o):
            let condDType = c.dtype(o.condition) ?? .bool
            guard let dtype = commonDType([o.x, o.y], c), let t = ElementType(dtype), let ct = ElementType(condDType),
                  ElementwiseKernels.convertible.contains(ct) || ct == .f32 else { return nil }
            let definition = ElementwiseKernels.select(condition: ct, t, lanes: c.lanes)
            return mapLaunch(definition, node, operands: [o.condition, o.x, o.y], out: o.out, resultDType: dtype,
                             operandDTypes: [condDType, dtype, dtype], grain: elementwiseGrain(transcendental: false))
        case .clip(let o):
            guard let dtype = c.dtype(o.x), let t = ElementType(dtype), ElementType.activations.contains(t) || (!t.isFloat && t != .bool),
                  o.aMin == nil || c.dtype(o.aMin!) == dtype, o.aMax == nil || c.dtype(o.aMax!) == dtype else { return nil }
            let definition = ElementwiseKernels.clip(t, hasMin: o.aMin != nil, hasMax: o.aMax != nil, lanes: c.lanes)
            let operands = [o.x] + [o.aMin, o.aMax].compactMap { $0 }
            return mapLaunch(definition, node, operands: operands, out: o.out, resultDType: dtype,
                             operandDTypes: operands.map { _ in dtype }, grain: elementwiseGrain(transcendental: false))
        case .asType(let o):
            let source = c.dtype(o.x) ?? .f32
            guard let s = ElementType(source), let t = ElementType(o.scalarType),
                  ElementwiseKernels.convertible.contains(s), ElementwiseKernels.convertible.contains(t) else { return nil }
            let definition = ElementwiseKernels.convert(from: s, to: t, lanes: c.lanes)
            return mapLaunch(definition, node, operands: [o.x], out: o.out, resultDType: o.scalarType,
                             operandDTypes: [source], grain: elementwiseGrain(transcendental: false))
        default:
            return nil
        }
    }
}
