/// A user Metal kernel checked and typed (`MetalChecker`): what the reference interpreter and the CPU compiler run.
/// One thread's body over the launch grid; names resolved to the kernel's buffers, their shapes, the grid builtins,
/// template constants and local slots; every expression typed by C++'s rules (integer promotion, usual arithmetic
/// conversions); half/bfloat arithmetic is computed in f32 and rounded to the type after each operation.
public enum MetalScalar: String, Hashable, Sendable {
    case bool, i8, u8, i16, u16, i32, u32, i64, u64, f16, bf16, f32

    public var isFloat: Bool { self == .f16 || self == .bf16 || self == .f32 }
    public var isSigned: Bool { [.i8, .i16, .i32, .i64].contains(self) }
    public var bits: Int {
        switch self {
        case .bool: return 1
        case .i8, .u8: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .i64, .u64: return 64
        }
    }

    public init?(typeName: String) {
        switch typeName {
        case "bool": self = .bool
        case "char", "int8_t": self = .i8
        case "uchar", "uint8_t": self = .u8
        case "short", "int16_t": self = .i16
        case "ushort", "uint16_t": self = .u16
        case "int", "int32_t": self = .i32
        case "uint", "uint32_t": self = .u32
        case "long", "int64_t": self = .i64
        case "ulong", "uint64_t", "size_t": self = .u64
        case "half": self = .f16
        case "bfloat", "bfloat16_t": self = .bf16
        case "float": self = .f32
        default: return nil
        }
    }

    public init?(_ d: DType) {
        switch d {
        case .bool: self = .bool
        case .i8: self = .i8
        case .u8: self = .u8
        case .i16: self = .i16
        case .i32: self = .i32
        case .i64: self = .i64
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f32: self = .f32
        case .u16: self = .u16
        case .u32: self = .u32
        case .u64: self = .u64
        default: return nil
        }
    }
}

/// The thread-position builtins MLX declares when the body names them (`uint3` ones read with .x/.y/.z).
public enum MetalBuiltin: String, Hashable, Sendable, CaseIterable {
    case threadPositionInGrid = "thread_position_in_grid"
    case threadsPerGrid = "threads_per_grid"
    case gridSize = "grid_size"
    case threadPositionInThreadgroup = "thread_position_in_threadgroup"
    case threadgroupPositionInGrid = "threadgroup_position_in_grid"
    case threadsPerThreadgroup = "threads_per_threadgroup"
    case threadgroupsPerGrid = "threadgroups_per_grid"
    case threadIndexInThreadgroup = "thread_index_in_threadgroup"

    public var isVector: Bool { self != .threadIndexInThreadgroup }
}

public indirect enum MetalValue: Hashable, Sendable {
    case int(Int64, MetalScalar)
    case float(Double, MetalScalar)
    case local(Int, MetalScalar)
    /// Component `axis` (0…2) of a builtin (uint).
    case builtin(MetalBuiltin, axis: Int)
    /// Element `index` (i64) of buffer `buffer` (inputs first, then outputs).
    case load(buffer: Int, index: MetalValue, MetalScalar)
    /// `<input>_shape[d]` (int) and `<input>_strides[d]` (int64_t, row-contiguous strides); d an i64.
    case shape(input: Int, dim: MetalValue)
    case stride(input: Int, dim: MetalValue)
    /// "-", "~", "!" (the operand already of the result type; "!" on bool).
    case unary(String, MetalValue, MetalScalar)
    /// Arithmetic/bitwise/shift ops on operands of the result type; comparisons on a common type → bool;
    /// "&&", "||" on bools, evaluated short-circuit.
    case binary(String, MetalValue, MetalValue, MetalScalar)
    case convert(MetalValue, MetalScalar)
    case select(MetalValue, MetalValue, MetalValue, MetalScalar)
    /// A math builtin (`exp`, `sqrt`, `min`, `clamp`, `fma`, …) on operands of the result type.
    case math(String, [MetalValue], MetalScalar)

    public var type: MetalScalar {
        switch self {
        case .int(_, let t), .float(_, let t), .local(_, let t), .load(_, _, let t), .unary(_, _, let t), .binary(_, _, _, let t),
             .convert(_, let t), .select(_, _, _, let t), .math(_, _, let t): return t
        case .builtin: return .u32
        case .shape: return .i32
        case .stride: return .i64
        }
    }
}

public indirect enum MetalStatement: Hashable, Sendable {
    case set(local: Int, MetalValue)
    case store(buffer: Int, index: MetalValue, MetalValue)
    case ifElse(MetalValue, [MetalStatement], [MetalStatement])
    /// `while (condition) { body; step }` (`continue` runs the step).
    case loop(condition: MetalValue, body: [MetalStatement], step: [MetalStatement])
    case returnThread
    case breakLoop
    case continueLoop
}

public struct MetalProgram: Hashable, Sendable {
    public var body: [MetalStatement]
    /// Each local slot's type.
    public var locals: [MetalScalar]
    /// Element types of the buffers (inputs, then outputs) and the inputs' ranks (for shapes and strides).
    public var buffers: [MetalScalar]
    public var inputRanks: [Int]
    public var outputCount: Int
}
