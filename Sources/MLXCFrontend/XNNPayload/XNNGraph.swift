/// The `XNNGraph` table of an XNNPACK payload, decoded and checked: every value id a node or the
/// extern lists name exists, constants point into `constant_data`, quant params agree with the dims.
/// Errors name the node or value, its index and the field.
public struct XNNGraph: Sendable {
    public var version: String
    public var nodes: [XNNNode]
    public var values: [XNNValue]
    public var numExterns: Int
    public var inputIDs: [UInt32]
    public var outputIDs: [UInt32]
    /// Index 0 is reserved (non-constant values point there).
    public var constantData: [XNNConstantData]
    /// Value index by id.
    public var valueIndex: [UInt32: Int]

    public init(_ t: FBTable) throws {
        version = try t.string(0, "version") ?? ""
        constantData = try (t.vector(8, "constant_data", elementSize: 4)?.tables("ConstantDataOffset") ?? []).map { c in
            let key = try c.string(2, "named_key")
            return XNNConstantData(offset: try c.scalar(0, "offset", default: UInt64(0)), size: try c.scalar(1, "size", default: UInt64(0)),
                                   namedKey: (key?.isEmpty ?? true) ? nil : key)
        }
        let valueTables = try t.vector(2, "xvalues", elementSize: 4)?.tables("XValue") ?? []
        values = try valueTables.enumerated().map { try Self.value($1, index: $0) }
        let nodeTables = try t.vector(1, "xnodes", elementSize: 4)?.tables("XNode") ?? []
        nodes = try nodeTables.enumerated().map { try Self.node($1, index: $0) }
        numExterns = Int(try t.scalar(3, "num_externs", default: UInt32(0)))
        inputIDs = try t.vector(4, "input_ids", elementSize: 4)?.scalars(UInt32.self) ?? []
        outputIDs = try t.vector(5, "output_ids", elementSize: 4)?.scalars(UInt32.self) ?? []
        valueIndex = [:]
        try validate(t)
    }

    /// Node-type histogram (`XNNFullyConnected` → 7).
    public var nodeHistogram: [String: Int] { nodes.reduce(into: [:]) { $0[$1.name, default: 0] += 1 } }

    public func value(_ id: UInt32) -> XNNValue? { valueIndex[id].map { values[$0] } }

    // MARK: decoding

    static func value(_ x: FBTable, index: Int) throws -> XNNValue {
        let kind = try x.scalar(0, "xvalue_union_type", default: UInt8(0))
        guard kind == 1 || kind == 2, let member = try x.table(1, "xvalue_union", kind == 1 ? "XNNTensorValue" : "XNNQuantizedTensorValue") else {
            throw x.fb.error("XNNGraph.xvalues[\(index)].xvalue_union", x.positionOf(0),
                             kind == 1 || kind == 2 ? "the value table is missing" : "unknown XValueUnion tag \(kind) (this reader knows 1 XNNTensorValue, 2 XNNQuantizedTensorValue)")
        }
        let tensor = kind == 1 ? member : try member.requiredTable(0, "tensor_value", "XNNTensorValue")
        let ctx = "XNNGraph.xvalues[\(index)]"
        let dtCode = try tensor.scalar(0, "datatype", default: Int16(0))
        guard let datatype = XNNDatatype(rawValue: dtCode), datatype != .invalid else {
            throw tensor.fb.error("\(ctx).datatype", tensor.positionOf(0), "unknown or invalid XNNDatatype \(dtCode)")
        }
        let numDims = Int(try tensor.scalar(1, "num_dims", default: UInt32(0)))
        let dims = try tensor.vector(2, "dims", elementSize: 4)?.scalars(UInt32.self).map(Int.init) ?? []
        guard numDims == dims.count else {
            throw tensor.fb.error("\(ctx).num_dims", tensor.positionOf(1), "num_dims \(numDims) but dims has \(dims.count) entries")
        }
        var quant: XNNQuantParams?
        if kind == 2 {
            quant = try quantParams(member, ctx: ctx, dims: dims)
        }
        return XNNValue(datatype: datatype, dims: dims, constantBufferIndex: Int(try tensor.scalar(3, "constant_buffer_idx", default: UInt32(0))),
                        externalID: try tensor.scalar(4, "external_id", default: UInt32(0)), flags: try tensor.scalar(5, "flags", default: UInt32(0)),
                        id: try tensor.scalar(6, "id_out", default: UInt32(0)), quant: quant, position: x.position)
    }

    static func quantParams(_ q: FBTable, ctx: String, dims: [Int]) throws -> XNNQuantParams {
        let tag = try q.scalar(1, "quant_params_type", default: UInt8(0))
        let names = ["", "PerChannelQuant", "PerTensorQuant", "PerTokenDynamicQuant", "PerChannelGroupQuant"]
        guard (1...4).contains(tag), let p = try q.table(2, "quant_params", names[Int(tag)]) else {
            throw q.fb.error("\(ctx).quant_params", q.positionOf(1), (1...4).contains(tag) ? "the quant params table is missing"
                             : "unknown XNNQuantParams tag \(tag) (this reader knows 1...4)")
        }
        func channel(_ id: Int) throws -> Int {
            let c = Int(try p.scalar(id, "channel_dim", default: Int32(0)))
            guard dims.indices.contains(c) else {
                throw p.fb.error("\(ctx).quant_params.channel_dim", p.positionOf(id), "channel_dim \(c) of a \(dims.count)-d tensor \(dims)")
            }
            return c
        }
        switch tag {
        case 1:
            let c = try channel(1)
            let scales = try p.vector(0, "scale", elementSize: 4)?.floats() ?? []
            let numScales = try p.scalar(3, "num_scales", default: UInt32(0))
            let count = scales.isEmpty ? Int(numScales) : scales.count
            guard count == dims[c] else {
                throw p.fb.error("\(ctx).quant_params.scale", p.positionOf(scales.isEmpty ? 3 : 0),
                                 "\(count) scales for \(dims[c]) channels (dim \(c) of \(dims))")
            }
            return .perChannel(scales: scales, channelDim: c, scaleBufferIndex: try p.scalar(2, "scale_buffer_idx", default: UInt32(0)), numScales: numScales)
        case 2:
            return .perTensor(scale: try p.float(0, "scale"), zeroPoint: try p.scalar(1, "zero_point", default: Int32(0)))
        case 3:
            let n = Int(try p.scalar(0, "num_nonbatch_dims", default: Int32(0)))
            guard n >= 0, n <= dims.count else {
                throw p.fb.error("\(ctx).quant_params.num_nonbatch_dims", p.positionOf(0), "\(n) non-batch dims of a \(dims.count)-d tensor")
            }
            return .perTokenDynamic(numNonbatchDims: n)
        default:
            let c = try channel(1)
            let group = Int(try p.scalar(2, "group_size", default: Int32(1)))
            guard dims.count == 2, group > 0, dims[1 - c] % group == 0 else {
                throw p.fb.error("\(ctx).quant_params.group_size", p.positionOf(2), "group size \(group) does not divide the input channels of \(dims)")
            }
            let scales = try p.vector(0, "scale", elementSize: 4)?.floats() ?? []
            let numScales = try p.scalar(5, "num_scales", default: UInt32(0))
            let count = scales.isEmpty ? Int(numScales) : scales.count
            guard count == dims[c] * (dims[1 - c] / group) else {
                throw p.fb.error("\(ctx).quant_params.scale", p.positionOf(scales.isEmpty ? 5 : 0),
                                 "\(count) scales for \(dims[c]) channels x \(dims[1 - c] / group) groups of \(group)")
            }
            return .perChannelGroup(scales: scales, channelDim: c, groupSize: group,
                                    scaleBufferIndex: try p.scalar(4, "scale_buffer_idx", default: UInt32(0)), numScales: numScales)
        }
    }

    static func node(_ x: FBTable, index: Int) throws -> XNNNode {
        let tag = try x.scalar(0, "xnode_union_type", default: UInt8(0))
        guard tag >= 1, Int(tag) < xnnNodeTypeNames.count else {
            throw x.fb.error("XNNGraph.xnodes[\(index)].xnode_union", x.positionOf(0),
                             "unknown XNodeUnion tag \(tag) (this reader knows 1...\(xnnNodeTypeNames.count - 1))")
        }
        let name = xnnNodeTypeNames[Int(tag)]
        let ctx = "XNNGraph.xnodes[\(index)] (\(name))"
        guard let t = try x.table(1, "xnode_union", name) else {
            throw x.fb.error(ctx, x.positionOf(1), "the node table is missing")
        }
        func u(_ id: Int, _ field: String) throws -> UInt32 { try t.scalar(id, field, default: UInt32(0)) }
        func ints(_ id: Int, _ field: String) throws -> [Int] { try t.vector(id, field, elementSize: 4)?.scalars(UInt32.self).map(Int.init) ?? [] }
        func counted(_ countID: Int, _ vectorID: Int, _ field: String) throws -> [Int] {
            let xs = try ints(vectorID, field), n = Int(try u(countID, "num_dims"))
            guard n == xs.count else { throw t.fb.error("\(ctx).num_dims", t.positionOf(countID), "num_dims \(n) but \(field) has \(xs.count) entries") }
            return xs
        }
        var node = XNNNode(tag: tag, name: name, inputs: [], inputFields: [], outputs: [], flags: 0, params: .none,
                           debugHandle: try x.scalar(2, "debug_handle", default: UInt32(0)), outputMinMax: nil, position: x.position)
        func io(_ ins: [(Int, String)], _ outs: [Int], flags: Int) throws {
            node.inputs = try ins.map { try u($0.0, $0.1) }
            node.inputFields = ins.map(\.1)
            node.outputs = try outs.map { try u($0, "output_id") }
            node.flags = try u(flags, "flags")
        }
        switch XNNNodeLayout.of(name) {
        case .node2x1: try io([(0, "input1_id"), (1, "input2_id")], [2], flags: 3)
        case .node1x1: try io([(0, "input_id")], [1], flags: 2)
        case .fullyConnected: try io([(0, "input1_id"), (1, "filter_id"), (2, "bias_id")], [3], flags: 4)
        case .transpose:
            try io([(2, "input_id")], [3], flags: 4)
            node.params = .perm(try counted(0, 1, "perm"))
        case .reshape:
            try io([(2, "input_id")], [3], flags: 4)
            node.params = .newShape(try counted(0, 1, "new_shape"))
        case .slice:
            try io([(3, "input_id")], [4], flags: 5)
            let offsets = try counted(0, 1, "offsets"), sizes = try counted(0, 2, "sizes")
            node.params = .slice(offsets: offsets, sizes: sizes)
        case .cat:
            let n = Int(name.last!.wholeNumberValue!)
            let fields = [(1, "input1_id"), (2, "input2_id"), (3, "input3_id"), (4, "input4_id"), (7, "input5_id")]
            try io(Array(fields.prefix(n)), [5], flags: 6)
            node.params = .axis(Int(try u(0, "axis")))
        case .conv:
            try io([(15, "input1_id"), (16, "filter_id"), (17, "bias_id")], [18], flags: 19)
            let p = try (0..<15).map { Int(try u($0, "conv parameter \($0)")) }
            node.params = .conv(XNNConvParams(padding: Array(p[0..<4]), kernel: [p[4], p[5]], subsampling: [p[6], p[7]], dilation: [p[8], p[9]],
                                              adjustment: [p[13], p[14]], groupInputChannels: p[10], groupOutputChannels: p[11], groups: p[12]))
        case .pooling:
            try io([(10, "input_id")], [11], flags: 12)
            let p = try (0..<10).map { Int(try u($0, "pooling parameter \($0)")) }
            node.params = .pooling(XNNPoolingParams(padding: Array(p[0..<4]), pooling: [p[4], p[5]], stride: [p[6], p[7]], dilation: [p[8], p[9]]))
        case .argMaxPooling:
            try io([(6, "input_id")], [7, 8], flags: 9)
            let p = try (0..<6).map { Int(try u($0, "pooling parameter \($0)")) }
            node.params = .pooling(XNNPoolingParams(padding: Array(p[0..<4]), pooling: [p[4], p[5]], stride: [p[4], p[5]], dilation: [1, 1]))
        case .resize:
            try io([(2, "input_id")], [3], flags: 4)
            node.params = .resize(height: Int(try u(0, "new_height")), width: Int(try u(1, "new_width")))
        case .pad:
            try io([(3, "input_id")], [4], flags: 5)
            node.params = .pad(pre: try ints(0, "pre_paddings"), post: try ints(1, "post_paddings"), value: try t.float(2, "padding_value"))
        case .leakyReLU, .elu:
            try io([(1, "input_id")], [2], flags: 3)
            node.params = .alpha(try t.float(0, name == "XNNELU" ? "alpha" : "negative_slope"))
        case .sdpa:
            try io([(0, "query_id"), (1, "key_id"), (2, "value_id"), (3, "scale_id"), (4, "mask_id")], [5], flags: 6)
        }
        if let mm = try x.table(3, "output_min_max", "OutputMinMax") {
            node.outputMinMax = (try mm.float(0, "output_min"), try mm.float(1, "output_max"))
        }
        return node
    }

    // MARK: checks

    mutating func validate(_ t: FBTable) throws {
        let fb = t.fb
        for (i, v) in values.enumerated() {
            let ctx = "XNNGraph.xvalues[\(i)]"
            guard valueIndex[v.id] == nil else {
                throw fb.error("\(ctx).id_out", v.position, "value id \(v.id) is defined twice (also by xvalues[\(valueIndex[v.id]!)])")
            }
            valueIndex[v.id] = i
            guard v.constantBufferIndex < max(constantData.count, 1) else {
                throw fb.error("\(ctx).constant_buffer_idx", v.position, "constant \(v.constantBufferIndex) but constant_data has \(constantData.count) entries")
            }
            switch v.quant {
            case .perChannel(let s, _, let idx, _)?, .perChannelGroup(let s, _, _, let idx, _)?:
                guard !s.isEmpty || (idx > 0 && Int(idx) < constantData.count) else {
                    throw fb.error("\(ctx).quant_params.scale_buffer_idx", v.position,
                                   "no inline scales and scale buffer \(idx) is not in constant_data (\(constantData.count) entries)")
                }
            default: break
            }
        }
        for (i, n) in nodes.enumerated() {
            let ctx = "XNNGraph.xnodes[\(i)] (\(n.name))"
            for (id, field) in zip(n.inputs, n.inputFields) where !(id == xnnInvalidValueID && ["bias_id", "mask_id", "scale_id"].contains(field)) {
                guard valueIndex[id] != nil else { throw fb.error("\(ctx).\(field)", n.position, "value id \(id) is not defined (the graph has \(values.count) values)") }
            }
            for id in n.outputs where valueIndex[id] == nil {
                throw fb.error("\(ctx).output_id", n.position, "value id \(id) is not defined (the graph has \(values.count) values)")
            }
            let rank = value(n.inputs[0])?.dims.count ?? 0
            switch n.params {
            case .perm(let p):
                guard p.sorted() == Array(0..<p.count) else { throw fb.error("\(ctx).perm", n.position, "\(p) is not a permutation") }
            case .axis(let a):
                guard a < max(rank, 1) else { throw fb.error("\(ctx).axis", n.position, "axis \(a) of a \(rank)-d input") }
            case .slice(let offsets, _):
                guard offsets.count == rank else { throw fb.error("\(ctx).offsets", n.position, "\(offsets.count) offsets for a \(rank)-d input") }
            default: break
            }
        }
        for (list, field, flag) in [(inputIDs, "input_ids", XNNValueFlag.externalInput), (outputIDs, "output_ids", XNNValueFlag.externalOutput)] {
            for (j, id) in list.enumerated() {
                guard let v = value(id) else { throw fb.error("XNNGraph.\(field)[\(j)]", t.position, "value id \(id) is not defined") }
                guard v.flags & flag != 0 else {
                    throw fb.error("XNNGraph.\(field)[\(j)]", v.position, "value id \(id) is not flagged external \(flag == 1 ? "input" : "output")")
                }
            }
        }
    }
}
