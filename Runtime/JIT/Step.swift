import MLXCCodegen
import MLXCIR

/// One entry of a compiled execution plan.
enum Step {
    /// A compiled kernel launch.
    case kernel(KernelLaunch)
    /// Run-time integer and float arithmetic on rank-0 values (SymInts), done in Swift.
    case scalar(Node)
    /// A view that changes only the shape (reshape, squeeze, expand_dims, contiguous copy of a
    /// contiguous tensor): the result shares the operand's bytes.
    case view(Node)
    /// An op without a kernel yet: run by the reference executor on converted tensors.
    case fallback(Node, reason: String)
    /// `if`: runs one of two sub-plans.
    case branch(IfOp, origin: String?)
    /// Nothing to do at run time (its work was folded into another step).
    case skip(Node)
}

/// Everything needed to launch one kernel per call: the function, which values it reads and
/// writes, how to compute its run-time dims and result shapes from the operands, and how many
/// work items to split across threads.
final class KernelLaunch {
    let name: String
    let function: KernelFunction
    /// Values whose base pointers go into `buffers`, in order (operands, then results).
    let operands: [ValueID]
    let results: [ValueID]
    let resultDTypes: [DType]
    /// Result shapes from the operands' current tensors.
    let resultShapes: ([NativeTensor]) throws -> [[Int]]
    /// Run-time dims from the operands' tensors (and scalar values among them).
    let dims: ([NativeTensor]) -> [Int64]
    /// Work items (split across threads) and the grain of the split.
    let work: ([NativeTensor]) -> Int
    let grain: Int
    /// Results that are written in place into an operand's buffer (state updates): result → operand index.
    let inPlace: [Int: Int]
    let origin: String?
    /// The dtype each operand must have; checked per call, because values without a static type
    /// (MLX temporaries) are only known at run time. A mismatch runs `node` on the reference instead.
    let operandDTypes: [DType?]
    /// Whether the kernel handles this call's operands (layouts it has no code for, e.g. a
    /// broadcast that stays rank 6 after merging dims); when false, `node` runs on the reference instead.
    let accepts: (([NativeTensor]) -> Bool)?
    let node: Node
    /// What runs on the reference when the kernel cannot take a call: `node`, preceded (or
    /// followed) by the nodes whose work the kernel absorbed (a transpose it reads through).
    let fallbackNodes: [Node]
    /// Operands read from a load-time copy of their constant instead of the value itself (an f32 weight
    /// kept as f16, `ExactHalfWeights`), by operand index; empty when none.
    var constantOperands: [NativeTensor?] = []
    /// Shapes, dims and work in one call, and the per-call check (launches built by `Lowerings.launch`):
    /// `execute` then asks once instead of through `accepts`, `resultShapes`, `dims` and `work` in turn.
    var layout: (([NativeTensor]) -> CallLayout?)?
    var check: (([NativeTensor]) -> Bool)?
    // Scratch reused by every call, so launching allocates nothing.
    let bufferSlots: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    var dimSlots: UnsafeMutablePointer<Int64>
    var dimCapacity = 16

    init(name: String, function: KernelFunction, operands: [ValueID], results: [ValueID], resultDTypes: [DType],
         resultShapes: @escaping ([NativeTensor]) throws -> [[Int]], dims: @escaping ([NativeTensor]) -> [Int64],
         work: @escaping ([NativeTensor]) -> Int, grain: Int, inPlace: [Int: Int] = [:],
         operandDTypes: [DType?], accepts: (([NativeTensor]) -> Bool)? = nil, node: Node, fallbackNodes: [Node]? = nil) {
        self.name = name
        self.function = function
        self.operands = operands
        self.results = results
        self.resultDTypes = resultDTypes
        self.resultShapes = resultShapes
        self.dims = dims
        self.work = work
        self.grain = grain
        self.inPlace = inPlace
        self.origin = node.origin
        self.operandDTypes = operandDTypes
        self.accepts = accepts
        self.node = node
        self.fallbackNodes = fallbackNodes ?? [node]
        bufferSlots = .allocate(capacity: operands.count + results.count)
        dimSlots = .allocate(capacity: dimCapacity)
    }

    deinit {
        bufferSlots.deallocate()
        dimSlots.deallocate()
    }
}
