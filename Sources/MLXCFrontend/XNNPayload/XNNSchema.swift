/// Tables of ExecuTorch 1.5.1's XNNPACK delegate schema (`backends/xnnpack/serialization/schema.fbs`,
/// file identifier `XN01`, root `XNNGraph`). Field ids are declaration order; a union takes two ids
/// (its type byte, then the table).

/// `XNNDatatype` (a `short` in the schema).
public enum XNNDatatype: Int16, Sendable, CaseIterable {
    case invalid = 0, fp32, fp16, qint8, quint8, qint32, qcint8, qcint32, qcint4, qdint8, qbint4, qpint8, int32, pfp32, bf16

    public var name: String { "xnn_datatype_\(self)" }
}

/// `union XNodeUnion` member names by tag (index 0 is `NONE`), in schema order.
public let xnnNodeTypeNames: [String] = [
    "NONE", "XNNAdd", "XNNFullyConnected", "XNNSoftmax", "XNNSigmoid", "XNNStaticTranspose", "XNNClamp",
    "XNNConv2d", "XNNDiv", "XNNStaticResizeBilinear2D", "XNNStaticConstantPad", "XNNAvgPooling2d",
    "XNNMinimum", "XNNDepthwiseConv2d", "XNNMaxPooling2d", "XNNMultiply", "XNNSubtract", "XNNFloor",
    "XNNConvert", "XNNGlobalAvgPooling2d", "XNNStaticReshape", "XNNArgMaxPooling2d", "XNNSquareRoot",
    "XNNCeiling", "XNNHardswish", "XNNLeakyReLU", "XNNMaximum", "XNNNegate", "XNNSquare", "XNNELU",
    "XNNAbs", "XNNPReLU", "XNNConcatenate2", "XNNConcatenate3", "XNNConcatenate4", "XNNStaticSlice",
    "XNNScaledDotProductAttention", "XNNBatchMatrixMultiply", "XNNConcatenate5", "XNNConvTranspose2d",
    "XNNReciprocalSquareRoot", "XNNLog", "XNNGelu", "XNNTanh", "XNNExp", "XNNSin", "XNNCopy", "XNNCos",
]

/// The table layout each union member uses (several members share one table type).
enum XNNNodeLayout {
    case node2x1, node1x1, fullyConnected, transpose, conv, resize, pad, pooling, reshape, argMaxPooling,
         leakyReLU, elu, cat, slice, sdpa

    static func of(_ name: String) -> XNNNodeLayout {
        switch name {
        case "XNNAdd", "XNNDiv", "XNNMinimum", "XNNMultiply", "XNNSubtract", "XNNMaximum", "XNNPReLU",
             "XNNBatchMatrixMultiply": return .node2x1
        case "XNNFullyConnected": return .fullyConnected
        case "XNNStaticTranspose": return .transpose
        case "XNNConv2d", "XNNDepthwiseConv2d", "XNNConvTranspose2d": return .conv
        case "XNNStaticResizeBilinear2D": return .resize
        case "XNNStaticConstantPad": return .pad
        case "XNNAvgPooling2d", "XNNMaxPooling2d": return .pooling
        case "XNNStaticReshape": return .reshape
        case "XNNArgMaxPooling2d": return .argMaxPooling
        case "XNNLeakyReLU": return .leakyReLU
        case "XNNELU": return .elu
        case "XNNConcatenate2", "XNNConcatenate3", "XNNConcatenate4", "XNNConcatenate5": return .cat
        case "XNNStaticSlice": return .slice
        case "XNNScaledDotProductAttention": return .sdpa
        default: return .node1x1
        }
    }
}

/// `XNN_INVALID_VALUE_ID`: an absent optional input (a fully connected node without bias).
public let xnnInvalidValueID: UInt32 = .max

/// Value flags (`XNN_VALUE_FLAG_EXTERNAL_INPUT` / `_OUTPUT`).
public enum XNNValueFlag {
    public static let externalInput: UInt32 = 1
    public static let externalOutput: UInt32 = 2
}

/// Quantization parameters of an `XNNQuantizedTensorValue` (`union XNNQuantParams`).
public enum XNNQuantParams: Sendable, Equatable {
    /// One scale per index of `channelDim`; scales inline, or in constant data `scaleBufferIndex` (f32).
    case perChannel(scales: [Float], channelDim: Int, scaleBufferIndex: UInt32, numScales: UInt32)
    case perTensor(scale: Float, zeroPoint: Int32)
    /// Quantized at run time per row; the last `numNonbatchDims` dims form a row.
    case perTokenDynamic(numNonbatchDims: Int)
    /// One scale per (channel, group of `groupSize` along the other dim): the blockwise 4-bit (8da4w)
    /// layout; scales inline, or bf16 in constant data `scaleBufferIndex`.
    case perChannelGroup(scales: [Float], channelDim: Int, groupSize: Int, scaleBufferIndex: UInt32, numScales: UInt32)

    public var name: String {
        switch self {
        case .perChannel: return "PerChannelQuant"
        case .perTensor: return "PerTensorQuant"
        case .perTokenDynamic: return "PerTokenDynamicQuant"
        case .perChannelGroup: return "PerChannelGroupQuant"
        }
    }
}

/// One `XValue`: an `XNNTensorValue`, or an `XNNQuantizedTensorValue` (the tensor plus its quant params).
public struct XNNValue: Sendable {
    public var datatype: XNNDatatype
    public var dims: [Int]
    /// Index into `XNNGraph.constant_data`; 0 for non-constant values.
    public var constantBufferIndex: Int
    public var externalID: UInt32
    public var flags: UInt32
    /// The id nodes and `input_ids`/`output_ids` use.
    public var id: UInt32
    public var quant: XNNQuantParams?
    /// Position of the XValue table (for errors).
    public var position: Int

    public var kindName: String { quant == nil ? "XNNTensorValue" : "XNNQuantizedTensorValue" }
    public var isExternalInput: Bool { flags & XNNValueFlag.externalInput != 0 }
    public var isExternalOutput: Bool { flags & XNNValueFlag.externalOutput != 0 }
}

/// Attributes of the nodes that have more than ids and flags.
public enum XNNNodeParams: Sendable, Equatable {
    case none
    case perm([Int])
    case newShape([Int])
    case slice(offsets: [Int], sizes: [Int])
    case axis(Int)
    case conv(XNNConvParams)
    case pooling(XNNPoolingParams)
    case resize(height: Int, width: Int)
    case pad(pre: [Int], post: [Int], value: Float)
    /// ELU's alpha or LeakyReLU's negative slope.
    case alpha(Float)
}

public struct XNNConvParams: Sendable, Equatable {
    /// top, right, bottom, left
    public var padding: [Int]
    public var kernel: [Int], subsampling: [Int], dilation: [Int], adjustment: [Int]
    public var groupInputChannels: Int, groupOutputChannels: Int, groups: Int
}

public struct XNNPoolingParams: Sendable, Equatable {
    /// top, right, bottom, left
    public var padding: [Int]
    public var pooling: [Int], stride: [Int], dilation: [Int]
}

/// One `XNode`: its member name, the value ids it reads and writes (schema order: a fully connected
/// node reads input, filter, bias; concatenation reads its N inputs; SDPA reads q, k, v, scale, mask).
public struct XNNNode: Sendable {
    public var tag: UInt8
    public var name: String
    public var inputs: [UInt32]
    /// Field names of `inputs`, for errors.
    public var inputFields: [String]
    public var outputs: [UInt32]
    public var flags: UInt32
    public var params: XNNNodeParams
    public var debugHandle: UInt32
    /// `output_min_max` (a fused clamp), nil when absent.
    public var outputMinMax: (min: Float, max: Float)?
    public var position: Int
}

/// `ConstantDataOffset`: bytes in the payload's constant segment, or a key of the program's named data.
public struct XNNConstantData: Sendable {
    public var offset: UInt64
    public var size: UInt64
    public var namedKey: String?
}
