import MLXCFrontend
import MLXCIR

/// Runs a graph op by op with the plain-Swift reference kernels. It owns the program's state
/// (KV caches and other mutable buffers), which persists across `run` calls, and runs the
/// init block once when it is created.
public final class ReferenceExecutor {
    public let graph: Graph
    /// The program file holding constant and state bytes; nil for graphs whose constants are all literals (tests).
    let pte: PTEFile?
    /// Constants decoded once (weights are read from the mapping on first use).
    var constants: [ValueID: HostTensor] = [:]
    /// Mutable state, kept across calls.
    public internal(set) var state: [ValueID: HostTensor] = [:]
    /// Values the init block computed (kept for every call).
    var initValues: [ValueID: HostTensor] = [:]
    /// KV caches that `update_and_attend` keeps outside the graph.
    public let offGraphCache = OffGraphKVCache()
    /// Called with every value an op computes (after rounding to its dtype), in execution order.
    public var onValue: ((ValueID, HostTensor) -> Void)?

    public init(graph: Graph, pte: PTEFile? = nil) throws {
        self.graph = graph
        self.pte = pte
        try resetState()
        if let initBlock = graph.initBlock {
            var env = Environment(executor: self)
            try env.run(block: initBlock)
            initValues = env.values
        }
    }

    /// Zeroes the state (or restores its initial bytes), as at load time.
    public func resetState() throws {
        state = [:]
        for (i, info) in graph.values.enumerated() {
            guard case .state(let initial) = info.kind else { continue }
            let v = ValueID(i)
            guard let type = info.type, let shape = type.staticShape else {
                throw ReferenceError("state \(v) (\(info.name ?? "unnamed")) needs a static type, has \(info.type?.description ?? "none")")
            }
            if let initial {
                state[v] = try loadConstant(initial, type: TensorType(type.dtype, fixed: shape), name: info.name ?? "\(v)")
            } else {
                state[v] = HostTensor(dtype: type.dtype, shape: shape)
            }
        }
    }

    /// Runs the main block on `inputs` (one per graph input, in order) and returns the outputs.
    public func run(_ inputs: [HostTensor]) throws -> [HostTensor] {
        guard inputs.count == graph.inputs.count else {
            throw ReferenceError("method \(graph.name) takes \(graph.inputs.count) inputs, got \(inputs.count)")
        }
        try pte?.checkUnchanged()
        var env = Environment(executor: self)
        env.values = initValues
        for (position, (id, tensor)) in zip(graph.inputs, inputs).enumerated() {
            try checkInput(tensor, against: graph[id].type, position: position)
            env.values[id] = tensor
        }
        try env.run(block: 0)
        return try graph.outputs.map { try env.tensor($0) }
    }

    func checkInput(_ t: HostTensor, against type: TensorType?, position: Int) throws {
        try checkInput(dtype: t.dtype, shape: t.shape, against: type, position: position)
    }

    func checkInput(dtype: DType, shape: [Int], against type: TensorType?, position: Int) throws {
        guard let type else { return }
        guard dtype == type.dtype else {
            throw ReferenceError("input \(position): expected dtype \(type.dtype.name), got \(dtype.name)")
        }
        guard shape.count == type.rank else {
            throw ReferenceError("input \(position): expected shape \(type), got \(shape)")
        }
        for (d, n) in zip(type.shape, shape) {
            switch d {
            case .fixed(let k) where k != n:
                throw ReferenceError("input \(position): expected shape \(type), got \(shape)")
            case .dynamic(let lo, let hi) where n < lo || (hi.map { n > $0 } ?? false):
                throw ReferenceError("input \(position): dimension \(n) is outside \(d) of \(type)")
            default: break
            }
        }
    }

    func constant(_ v: ValueID) throws -> HostTensor {
        if let c = constants[v] { return c }
        let info = graph[v]
        guard case .constant(let source) = info.kind else { throw ReferenceError("\(v) is not a constant") }
        let t: HostTensor
        if case .literal(let xs) = source {
            let type = info.type ?? TensorType(.f32, [])
            let shape = type.shape.compactMap(\.fixedValue)
            t = HostTensor(dtype: type.dtype, shape: xs.count == 1 && shape.reduce(1, *) != 1 ? [] : shape, storage: xs).rounded()
        } else {
            guard let type = info.type, let shape = type.staticShape else {
                throw ReferenceError("constant \(v) (\(info.name ?? "")) has no static type")
            }
            t = try loadConstant(source, type: TensorType(type.dtype, fixed: shape), name: info.name ?? "\(v)")
        }
        constants[v] = t
        return t
    }

    func loadConstant(_ source: ConstantSource, type: TensorType, name: String) throws -> HostTensor {
        let shape = type.shape.compactMap(\.fixedValue)
        let count = shape.reduce(1, *)
        let length = count * type.dtype.byteSize
        func file() throws -> PTEFile {
            guard let pte else { throw ReferenceError("\(name) needs data from the program file (\(source)), but the executor has none") }
            return pte
        }
        let bytes: ByteView
        switch source {
        case .constantBuffer(let index): bytes = try file().constantData(index: index, length: length, "constant \(name)")
        case .mutableData(let index): bytes = try file().mutableData(index: index, length: length, "state \(name)")
        case .namedData(let key):
            bytes = try file().namedData(key)
            guard bytes.count >= length else {
                throw ReferenceError("named data \"\(key)\" holds \(bytes.count) bytes; \(type) needs \(length)")
            }
        case .literal(let xs): return HostTensor(dtype: type.dtype, shape: [], storage: xs)
        }
        return HostTensor(dtype: type.dtype, shape: shape, storage: try DTypeCodec.decode(bytes.bytes, type.dtype, count: count))
    }
}

/// The values of one call: what each op reads and writes.
struct Environment {
    let executor: ReferenceExecutor
    var values: [ValueID: HostTensor] = [:]
    var location = ""

    init(executor: ReferenceExecutor) { self.executor = executor }

    func tensor(_ v: ValueID) throws -> HostTensor {
        if let t = values[v] { return t }
        if let s = executor.state[v] { return s }
        if case .constant = executor.graph[v].kind { return try executor.constant(v) }
        throw ReferenceError("\(location): \(v) has no value yet")
    }

    func optional(_ v: ValueID?) throws -> HostTensor? { try v.map { try tensor($0) } }

    func int(_ x: IntOrValue) throws -> Int {
        switch x {
        case .literal(let n): return Int(n)
        case .value(let v): return Int(Int64(clampingToInt: try tensor(v).item()))
        }
    }

    func double(_ x: FloatOrValue) throws -> Double {
        switch x {
        case .literal(let d): return d
        case .value(let v): return try tensor(v).item()
        }
    }

    /// Stores a result, rounded to its dtype. Writes to state update the persistent buffer.
    mutating func set(_ v: ValueID, _ t: HostTensor) {
        let r = t.rounded()
        if executor.state[v] != nil { executor.state[v] = r } else { values[v] = r }
        executor.onValue?(v, r)
    }

    mutating func run(block: Int) throws {
        for (n, node) in executor.graph.blocks[block].nodes.enumerated() {
            location = "\(executor.graph.blocks[block].name) node \(n) \(node.op.name)" + (node.origin.map { " (\($0))" } ?? "")
            do {
                try execute(node.op)
            } catch let e as ReferenceError {
                if e.message.hasPrefix(location) { throw e }
                throw ReferenceError("\(location): \(e.message)")
            }
        }
    }

    mutating func execute(_ op: Op) throws {
        if try executeElementwise(op) { return }
        if try executeShape(op) { return }
        if try executeReduction(op) { return }
        if try executeIndexing(op) { return }
        if try executeLinalg(op) { return }
        if try executeLLM(op) { return }
        if try executeQuantized(op) { return }
        if try executeDequantizeAffine(op) { return }
        if try executeScalar(op) { return }
        if try executeControlFlow(op) { return }
        if try executeFused(op) { return }
        if try executeGatedDelta(op) { return }
        if try executeGGUF(op) { return }
        if try executeDynamicQuant(op) { return }
        if try executeMetalKernel(op) { return }
        throw ReferenceError("unsupported op \(op.name)")
    }
}
