/// ExecuTorch's `schema/program.fbs` (namespace `executorch_flatbuffer`), decoded in full.
/// Field ids follow declaration order (FORMATS.md §1.5); union fields take two ids.

public struct Program: Sendable {
    public var version: UInt32
    public var executionPlans: [ExecutionPlan]
    /// Deprecated inline constants (`constant_buffer`), indexed like `constantSegment.offsets`.
    public var constantBuffer: [ByteView]
    public var backendDelegateData: [ByteView]
    public var segments: [DataSegment]
    public var constantSegment: SubsegmentOffsets?
    public var mutableDataSegments: [SubsegmentOffsets]
    public var namedData: [NamedData]
}

public struct ExecutionPlan: Sendable {
    public var name: String
    public var containerMeta: ContainerMetadata?
    public var values: [EValue]
    public var inputs: [Int]
    public var outputs: [Int]
    public var chains: [Chain]
    public var operators: [Operator]
    public var delegates: [BackendDelegate]
    public var nonConstBufferSizes: [Int64]
    public var nonConstBufferDevice: [NonConstBufferDevice]
}

public struct ContainerMetadata: Sendable {
    public var encodedInputs: String?
    public var encodedOutputs: String?
}

public enum ShapeDynamism: Int8, Sendable { case staticShape = 0, dynamicBound = 1, dynamicUnbound = 2 }
public enum TensorDataLocation: Int8, Sendable { case segment = 0, external = 1 }
public enum DeviceType: Int8, Sendable { case cpu = 0, cuda = 1 }
public enum DataLocation: Int8, Sendable { case inline = 0, segment = 1 }

public struct AllocationDetails: Sendable, Hashable {
    public var memoryID: UInt32
    public var offset: UInt64
}

public struct ExtraTensorInfo: Sendable {
    public var mutableDataSegmentsIndex: UInt64
    public var fullyQualifiedName: String?
    public var location: TensorDataLocation
    public var deviceType: DeviceType
    public var deviceIndex: Int8
}

public struct TensorValue: Sendable {
    /// Raw `ScalarType` code; `dtype` is nil when the code is one mlxc does not know.
    public var scalarType: Int8
    public var storageOffset: Int32
    public var sizes: [Int32]
    public var dimOrder: [UInt8]
    public var requiresGrad: Bool
    public var dataBufferIndex: UInt32
    public var allocation: AllocationDetails?
    public var layout: Int8
    public var dynamism: ShapeDynamism
    public var extra: ExtraTensorInfo?
    /// Byte offset of the table in the file, for diagnostics.
    public var position: Int
}

public enum EValue: Sendable {
    case none
    case null
    case int(Int64)
    case bool(Bool)
    case double(Double)
    case tensor(TensorValue)
    case string(String)
    /// Items are EValue indices (so lists can carry SymInts), not literal ints.
    case intList([Int64])
    case doubleList([Double])
    case boolList([Bool])
    case tensorList([Int32])
    /// EValue indices; -1 means None.
    case optionalTensorList([Int32])

    public var kindName: String {
        switch self {
        case .none: "None"; case .null: "Null"; case .int: "Int"; case .bool: "Bool"; case .double: "Double"
        case .tensor: "Tensor"; case .string: "String"; case .intList: "IntList"; case .doubleList: "DoubleList"
        case .boolList: "BoolList"; case .tensorList: "TensorList"; case .optionalTensorList: "OptionalTensorList"
        }
    }
}

public struct Operator: Sendable, Hashable {
    public var name: String
    public var overload: String
    /// `name.overload`, or `name` when the overload is empty — the key ExecuTorch resolves kernels by.
    public var qualifiedName: String { overload.isEmpty ? name : "\(name).\(overload)" }
}

public enum Instruction: Sendable {
    case kernelCall(opIndex: Int32, args: [Int32])
    case delegateCall(delegateIndex: Int32, args: [Int32])
    case move(from: Int32, to: Int32)
    case jumpFalse(condition: Int32, destination: Int32)
    case free(value: Int32)
}

public struct Frame: Sendable {
    public var filename: String?
    public var line: Int32
    public var name: String?
    public var context: String?
}

public struct Chain: Sendable {
    public var inputs: [Int32]
    public var outputs: [Int32]
    public var instructions: [Instruction]
    public var stacktrace: [[Frame]]
}

public struct CompileSpec: Sendable {
    public var key: String
    public var value: ByteView
}

public struct BackendDelegate: Sendable {
    public var id: String
    public var location: DataLocation
    public var index: UInt32
    public var compileSpecs: [CompileSpec]
}

public struct NonConstBufferDevice: Sendable {
    public var bufferIndex: Int32
    public var deviceType: DeviceType
    public var deviceIndex: Int8
}

public struct DataSegment: Sendable, Hashable {
    public var offset: UInt64
    public var size: UInt64
}

public struct SubsegmentOffsets: Sendable {
    public var segmentIndex: UInt32
    public var offsets: [UInt64]
}

public struct NamedData: Sendable {
    public var key: String
    public var segmentIndex: UInt32
}
