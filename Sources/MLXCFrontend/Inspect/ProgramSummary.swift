import MLXCIR

/// What `mlxc inspect` reports about a program, straight from the file (no import, no IR):
/// methods, their inputs and outputs, operator and delegate histograms, segments and state.
public struct ProgramSummary: Codable, Sendable {
    public struct TensorSummary: Codable, Sendable {
        public var value: Int
        public var kind: String
        public var dtype: String?
        public var sizes: [Int]?
        public var dynamic: Bool?
        public var name: String?
    }

    public struct DelegateSummary: Codable, Sendable {
        public var index: Int
        public var id: String
        public var location: String
        public var payloadBytes: Int
        public var calls: Int
        /// For MLX payloads: node-type histograms of the main chain and of every chain.
        public var mlxMainChainNodes: [String: Int]?
        public var mlxAllNodes: [String: Int]?
        public var mlxChains: Int?
        public var mlxInstructions: [Int]?
        public var mlxConstants: Int?
        public var mlxMutableBuffers: [String]?
        /// For XNNPACK payloads: node-type and value-kind histograms, external ids, constant entries.
        public var xnnNodes: [String: Int]?
        public var xnnValues: [String: Int]?
        public var xnnInputIDs: [Int]?
        public var xnnOutputIDs: [Int]?
        public var xnnConstants: Int?
    }

    public struct MethodSummary: Codable, Sendable {
        public var name: String
        public var values: Int
        public var instructions: [Int]
        public var inputs: [TensorSummary]
        public var outputs: [TensorSummary]
        /// `name.overload` → number of KernelCall instructions, exactly as spelled in the file.
        public var operators: [String: Int]
        public var delegates: [DelegateSummary]
        public var nonConstBufferSizes: [Int64]
        public var mutableBuffers: [TensorSummary]
    }

    public var path: String
    public var fileBytes: Int
    public var identifier: String
    public var programBytes: Int
    public var segmentBase: Int
    public var segments: [[UInt64]]
    public var constantBuffers: Int
    public var constantBytes: Int
    public var namedData: Int
    public var namedDataBytes: Int
    public var mutableDataSegments: Int
    public var externalDataFiles: [String]
    public var methods: [MethodSummary]

    public init(_ pte: PTEFile) throws {
        let p = pte.program
        path = pte.path
        fileBytes = pte.file.view.count
        identifier = pte.identifier
        programBytes = Int(pte.header?.programSize ?? UInt64(fileBytes))
        segmentBase = pte.segmentBase
        segments = p.segments.map { [$0.offset, $0.size] }
        constantBuffers = max((p.constantSegment?.offsets.count ?? p.constantBuffer.count) - 1, 0)
        if let cs = p.constantSegment, cs.offsets.count > 1 {
            constantBytes = Int(try pte.segment(Int(cs.segmentIndex), "Program.constant_segment").count)
        } else {
            constantBytes = p.constantBuffer.reduce(0) { $0 + $1.count }
        }
        namedData = p.namedData.count
        // Several keys may share one segment; count each segment once.
        let namedSegments = Set(p.namedData.map(\.segmentIndex))
        namedDataBytes = try namedSegments.reduce(0) { $0 + (try pte.segment(Int($1), "Program.named_data").count) }
        mutableDataSegments = p.mutableDataSegments.count
        externalDataFiles = pte.externalData.map(\.path)
        methods = try p.executionPlans.indices.map { try Self.method(pte, $0) }
    }

    static func tensor(_ plan: ExecutionPlan, _ ev: Int, kind: String) -> TensorSummary {
        guard let value = plan.values[safe: ev] else { return TensorSummary(value: ev, kind: "invalid") }
        switch value {
        case .tensor(let t):
            return TensorSummary(value: ev, kind: kind, dtype: DType(rawValue: t.scalarType)?.executorchName ?? "ScalarType(\(t.scalarType))",
                                 sizes: t.sizes.map(Int.init), dynamic: t.dynamism != .staticShape,
                                 name: t.extra?.fullyQualifiedName)
        default:
            return TensorSummary(value: ev, kind: value.kindName)
        }
    }

    static func method(_ pte: PTEFile, _ index: Int) throws -> MethodSummary {
        let plan = pte.program.executionPlans[index]
        var operators: [String: Int] = [:]
        var delegateCalls: [Int: Int] = [:]
        for chain in plan.chains {
            for instruction in chain.instructions {
                switch instruction {
                case .kernelCall(let op, _):
                    let name = plan.operators[safe: Int(op)]?.qualifiedName ?? "<invalid op_index \(op)>"
                    operators[name, default: 0] += 1
                case .delegateCall(let d, _):
                    delegateCalls[Int(d), default: 0] += 1
                default: break
                }
            }
        }
        let delegates: [DelegateSummary] = try plan.delegates.enumerated().map { i, d in
            let context = "ExecutionPlan[\(plan.name)].delegates[\(i)] (\(d.id))"
            let payload = try pte.delegatePayload(d, context)
            var s = DelegateSummary(index: i, id: d.id, location: d.location == .segment ? "segment" : "inline",
                                    payloadBytes: payload.count, calls: delegateCalls[i] ?? 0)
            if d.id == MLXPayload.backendID {
                let mlx = try MLXPayload(payload, space: context, fileOffset: pte.fileOffset(of: payload))
                let g = mlx.graph
                s.mlxMainChainNodes = try mlx.nodeHistogram(chain: Int(g.mainChainIdx) < g.instructionChains.count ? Int(g.mainChainIdx) : nil)
                s.mlxAllNodes = try mlx.nodeHistogram()
                s.mlxChains = g.instructionChains.count
                s.mlxInstructions = g.instructionChains.map(\.instructions.count)
                s.mlxConstants = Int(g.numConstantTensors)
                let start = Int(g.numConstantTensors) + Int(g.numInputTensors) + Int(g.numOutputTensors)
                let mutableRange = start ..< start + Int(g.numMutableBufferTensors)
                s.mlxMutableBuffers = g.namedSlots.filter { $0.slot.slotType == .tensorSlot && mutableRange.contains(Int($0.slot.idx)) }.map(\.name)
            } else if d.id == XNNPayload.backendID {
                let g = try XNNPayload(payload, space: context, fileOffset: pte.fileOffset(of: payload)).graph
                s.xnnNodes = g.nodeHistogram
                s.xnnValues = g.values.reduce(into: [:]) { $0[$1.kindName, default: 0] += 1 }
                s.xnnInputIDs = g.inputIDs.map(Int.init)
                s.xnnOutputIDs = g.outputIDs.map(Int.init)
                s.xnnConstants = g.constantData.count
            }
            return s
        }
        let importer = PlanImporter(pte: pte, planIndex: index)
        try importer.prescan()
        var mutable = importer.stateSlots.sorted().map { tensor(plan, $0, kind: "state") }
        for (ev, value) in plan.values.enumerated() {
            if case .tensor(let t) = value, t.allocation != nil, t.dataBufferIndex > 0, !importer.stateSlots.contains(ev) {
                mutable.append(tensor(plan, ev, kind: "state"))
            }
        }
        return MethodSummary(
            name: plan.name, values: plan.values.count, instructions: plan.chains.map(\.instructions.count),
            inputs: plan.inputs.map { tensor(plan, $0, kind: "input") },
            outputs: plan.outputs.map { tensor(plan, $0, kind: "output") },
            operators: operators, delegates: delegates, nonConstBufferSizes: plan.nonConstBufferSizes,
            mutableBuffers: mutable)
    }
}
