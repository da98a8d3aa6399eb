import FuzzSupport
import MLXCFrontend
import MLXCIR

/// An MLX delegate payload on its own: the MLX0 header, the MLXGraph flatbuffer, then every node
/// of every chain decoded into an op (slots checked against the graph's value count). The inliner
/// itself runs on payloads inside whole programs (target `pte`).
let mlxPayloadTarget = FuzzTarget(
    name: "mlx-payload",
    summary: "MLX0 delegate payload: header, MLXGraph flatbuffer, every node decoded",
    run: { bytes in
        let file = MappedFile(bytes: bytes, name: "fuzz.mlx")
        let payload = try MLXPayload(file.ownedView, space: "fuzz payload", fileOffset: 0)
        _ = try payload.nodeHistogram()
        let g = payload.graph
        let tensors = [g.numConstantTensors, g.numInputTensors, g.numOutputTensors, g.numMutableBufferTensors, g.numTempTensors]
        let resolver = CountingResolver(tensors: tensors.reduce(0) { $0 + Int($1) }, values: Int(g.numValues))
        for chain in payload.graph.instructionChains {
            for instruction in chain.instructions {
                guard let table = instruction.table else { continue }
                _ = try decodeMLXOp(tag: instruction.tag, table: table, resolver: resolver)
            }
        }
    },
    seeds: { fixtures, corpus in
        for (name, bytes) in try PTEProgramFuzz.payloads(MLXPayload.backendID, fixtures: fixtures) {
            try Seeds.write(bytes, name + ".mlx", to: corpus)
        }
    })

/// Resolves slots with the inliner's range checks: a tensor slot must be one of the graph's tensors
/// (constants, inputs, outputs, mutable buffers, temporaries), a value slot one of its values.
struct CountingResolver: MLXSlotResolver {
    var tensors: Int
    var values: Int

    func tensor(_ idx: UInt32, _ context: String, _ offset: Int, isResult: Bool) throws -> ValueID {
        guard Int(idx) < tensors else { throw FormatError(context, at: offset, "tensor slot \(idx) is not one of \(tensors) tensors") }
        return ValueID(Int(idx))
    }

    func scalar(_ idx: UInt32, _ context: String, _ offset: Int, isResult: Bool) throws -> ValueID {
        guard Int(idx) < values else { throw FormatError(context, at: offset, "value slot \(idx) is not one of \(values) values") }
        return ValueID(tensors + Int(idx))
    }

    func dtype(_ code: Int8, _ context: String, _ offset: Int) throws -> DType {
        guard let d = DType(rawValue: code) else { throw FormatError(context, at: offset, "unknown ScalarType \(code)") }
        return d
    }
}
