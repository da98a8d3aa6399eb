import MLXCIR

/// Inlines one XNNPACK delegate call into the importer's graph. The call's argument `e` is the XNN
/// value whose `external_id` is `e` (XNNExecutor binds `args[external_id]`); inputs are read from
/// the plan, outputs become fresh values of their plan slots. Each node goes through the translator
/// of its family (`XNNInliner+Elementwise`, `+Shape`, `+Linear`); constants are zero-copy views of the
/// program's named data. Value types come from shape inference, except external outputs, which keep
/// their plan slot's type (dynamic dims included): XNN dims are the export's upper bounds.
final class XNNInliner {
    let importer: PlanImporter
    let payload: XNNPayload
    let delegateIndex: Int
    var graph: XNNGraph { payload.graph }
    /// IR value of each XNN value id, once defined.
    var values: [UInt32: ValueID] = [:]
    /// The f32 rows each `qdint8` Convert output quantizes (per row over the last axis), for the
    /// quantized fully connected nodes that read it (`dynamic_quant_linear` quantizes them itself).
    var dynamicQuantRows: [UInt32: ValueID] = [:]
    /// Plan values of the external outputs, made before the nodes that write them.
    var externalOutputs: [UInt32: ValueID] = [:]
    /// "XNNPACK delegate 3 node 5 (XNNFullyConnected)", for errors and IR origins.
    var origin = ""

    init(importer: PlanImporter, payload: XNNPayload, delegateIndex: Int) {
        self.importer = importer
        self.payload = payload
        self.delegateIndex = delegateIndex
    }

    func fail(_ message: String) -> ImportError { importer.fail("XNNPACK delegate \(delegateIndex)\(origin.isEmpty ? "" : " " + origin): \(message)") }

    func inline(args: [Int]) throws {
        for (field, ids) in [("input_ids", graph.inputIDs), ("output_ids", graph.outputIDs)] {
            for id in ids {
                let e = Int(graph.value(id)!.externalID)
                guard e < args.count else {
                    throw fail("\(field) value \(id) has external id \(e) but the DelegateCall passes \(args.count) arguments")
                }
            }
        }
        guard graph.inputIDs.count + graph.outputIDs.count == args.count else {
            throw fail("the DelegateCall passes \(args.count) values but the payload has \(graph.inputIDs.count) inputs and \(graph.outputIDs.count) outputs")
        }
        for id in graph.inputIDs { values[id] = try importer.read(args[Int(graph.value(id)!.externalID)]) }
        for id in graph.outputIDs { externalOutputs[id] = try importer.write(args[Int(graph.value(id)!.externalID)]) }
        for (i, node) in graph.nodes.enumerated() {
            origin = "node \(i) (\(node.name))"
            try translate(node)
        }
        origin = ""
        for id in graph.outputIDs where values[id] == nil {
            throw fail("output value \(id) is never written by a node")
        }
    }

    func emit(_ op: Op) { importer.graph.append(op, origin: "XNNPACK delegate \(delegateIndex) \(origin)") }

    /// A fresh value for a value id a node writes.
    func result(_ id: UInt32) throws -> ValueID {
        guard values[id] == nil else { throw fail("value \(id) is written twice") }
        let v = externalOutputs[id] ?? importer.graph.addValue(nil, .computed)
        values[id] = v
        return v
    }

    /// The IR value for a value id a node reads: defined earlier, or a constant.
    func operand(_ id: UInt32, _ field: String) throws -> ValueID {
        if let v = values[id] { return v }
        guard let x = graph.value(id) else { throw fail("\(field): value id \(id) is not defined") }
        guard x.constantBufferIndex > 0 else { throw fail("\(field): value \(id) is read before any node writes it") }
        guard let dtype = Self.floatDType(x.datatype) else {
            throw fail("\(field): constant value \(id) of \(x.datatype.name) is only read as a quantized weight")
        }
        let v = try constant(x.constantBufferIndex, TensorType(dtype, x.dims.map { .fixed($0) }), field)
        values[id] = v
        return v
    }

    static func floatDType(_ d: XNNDatatype) -> DType? {
        switch d {
        case .fp32: return .f32
        case .fp16: return .f16
        case .bf16: return .bf16
        case .int32: return .i32
        default: return nil
        }
    }

    /// Constant data entry `index` viewed as `type` (a named-data key of the program, checked to exist
    /// and to hold at least the type's bytes).
    func constant(_ index: Int, _ type: TensorType, _ field: String) throws -> ValueID {
        let location = try payload.constant(index, "\(origin).\(field)")
        guard case .named(let key) = location else {
            throw fail("\(field): constant \(index) lives in the payload's own constant data, which mlxc cannot reference yet (re-export with ExecuTorch ≥ 0.7, which writes named data)")
        }
        guard importer.pte.hasNamedData(key) else { throw fail("\(field): constant \"\(key)\" is missing from the program's named_data") }
        let need = type.maxByteCount ?? 0
        let have = Int(graph.constantData[index].size)
        guard have >= need else { throw fail("\(field): constant \"\(key)\" holds \(have) bytes, \(type) needs \(need)") }
        return importer.graph.addValue(type, .constant(.namedData(key: key)), name: key)
    }

    func scalar(_ x: Double, _ dtype: DType = .f32) -> ValueID {
        importer.graph.addValue(TensorType(dtype, []), .constant(.literal([x])))
    }

    func rank(_ id: UInt32) -> Int { graph.value(id)?.dims.count ?? 0 }

    func translate(_ node: XNNNode) throws {
        let handled = try translateElementwise(node) || translateShape(node) || translateLinear(node) || translateConv(node)
            || translatePooling(node)
        guard handled else { throw fail("\(node.name) is not supported by the importer yet") }
    }
}
