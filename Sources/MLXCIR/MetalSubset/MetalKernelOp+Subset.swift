/// A user Metal kernel (one the known-kernel registry does not replace) compiled for the CPU: its body checked as
/// the Metal subset (`MetalParser`, `MetalChecker`) against the interface MLX's `metal_kernel` declares around the
/// source — the inputs as `const device T*` with `<name>_shape`, `<name>_strides`, `<name>_ndim`, the outputs as
/// `device T*`, the template parameters, the grid builtins. Errors are one line naming the kernel, its fingerprint
/// and the construct.
extension MetalKernelOp {
    public func subsetProgram(inputTypes: [TensorType?]) throws -> MetalProgram {
        do {
            guard header?.allSatisfy(\.isWhitespace) ?? true else {
                throw MetalSubsetError("a header (code before the kernel function) is outside the supported Metal subset")
            }
            guard !atomicOutputs else { throw MetalSubsetError("atomic outputs are outside the supported Metal subset") }
            guard inputNames.count == inputs.count, outputNames.count == outputs.count, outputDtypes.count == outputs.count else {
                throw MetalSubsetError("\(inputs.count) inputs / \(outputs.count) outputs but \(inputNames.count) input names, \(outputNames.count) output names and \(outputDtypes.count) output dtypes")
            }
            guard grid.count == 3, threadgroup.count == 3 else {
                throw MetalSubsetError("grid \(grid.count) and threadgroup \(threadgroup.count) dims, 3 each expected")
            }
            var types: [MetalScalar] = [], ranks: [Int] = []
            for (name, type) in zip(inputNames, inputTypes) {
                guard let t = type else { throw MetalSubsetError("input '\(name)' has no known type") }
                guard let s = MetalScalar(t.dtype) else { throw MetalSubsetError("input '\(name)' is \(t.dtype.name), which the subset has no type for") }
                types.append(s)
                ranks.append(t.rank)
            }
            let outputTypes = try zip(outputNames, outputDtypes).map { name, d -> MetalScalar in
                guard let s = MetalScalar(d) else { throw MetalSubsetError("output '\(name)' is \(d.name), which the subset has no type for") }
                return s
            }
            var constants: [String: MetalValue] = [:], aliases: [String: MetalScalar] = [:]
            guard templateArgKinds.count == templateArgNames.count, templateArgValues.count == templateArgNames.count else {
                throw MetalSubsetError("template_arg_names/kinds/values of different lengths")
            }
            for (name, (kind, value)) in zip(templateArgNames, zip(templateArgKinds, templateArgValues)) {
                switch kind {
                case 0: constants[name] = .int(Int64(value), .i32)
                case 1: constants[name] = .int(value != 0 ? 1 : 0, .bool)
                case 2:
                    guard let d = DType(rawValue: Int8(clamping: value)), let s = MetalScalar(d) else {
                        throw MetalSubsetError("template dtype '\(name)' = \(value) has no subset type")
                    }
                    aliases[name] = s
                default: throw MetalSubsetError("template parameter '\(name)' of kind \(kind)")
                }
            }
            let body = try MetalParser.parse(source, typeNames: Set(aliases.keys))
            return try MetalChecker.check(body, .init(inputNames: inputNames, inputTypes: types, inputRanks: ranks,
                                                      outputNames: outputNames, outputTypes: outputTypes,
                                                      constants: constants, typeAliases: aliases))
        } catch let e as MetalSubsetError {
            throw MetalSubsetError("metal_kernel \"\(name)\" (source fingerprint \(fingerprint)): \(e.message)")
        }
    }
}
