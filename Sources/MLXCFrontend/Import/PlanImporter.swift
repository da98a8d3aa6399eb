import MLXCIR

/// Turns one ExecutionPlan of a `.pte` into the graph IR. Kernel calls become IR ops (the ATen
/// translators in `ATen*.swift`); MLX delegate calls are inlined from their payload; other
/// delegates stay opaque `delegate_call` ops.
///
/// EValues are mutable slots; the IR is SSA. Each write to a tensor slot defines a new value,
/// except for state (KV caches and other mutable buffers), which ops update in place.
final class PlanImporter {
    let pte: PTEFile
    let plan: ExecutionPlan
    let planIndex: Int
    var graph: Graph
    /// The IR value each EValue slot currently holds.
    var current: [Int: ValueID] = [:]
    /// Int slots that some instruction writes (SymInts): read as values, not literals.
    var dynamicInts: Set<Int> = []
    /// Planned tensor slots that hold state across calls.
    var stateSlots: Set<Int> = []
    /// Upper bounds of dynamic input dims, used to mark the matching dims of other dynamic-bound tensors.
    var dynamicBounds: Set<Int> = []
    /// Computed values whose slot the exporter declared static-shaped (their sizes are facts, not bounds).
    var exporterStatic: Set<ValueID> = []
    /// The slot whose value the planned bytes at each allocation currently hold.
    var memoryHolder: [AllocationDetails: Int] = [:]
    /// "instruction N of chain C", for errors.
    var location = ""
    /// MLX mutable buffers by slot name, shared by every MLX delegate of the plan.
    var mlxState: [String: ValueID] = [:]
    /// Notes for `--remarks` (e.g. Metal kernels that cannot run on a CPU).
    var remarks: [String] = []
    /// Complex tensor slots as (real, imaginary) values (ATenSpectral.swift: the IR has no complex dtype).
    var complexParts: [Int: (re: ValueID, im: ValueID)] = [:]

    init(pte: PTEFile, planIndex: Int) {
        self.pte = pte
        self.planIndex = planIndex
        self.plan = pte.program.executionPlans[planIndex]
        self.graph = Graph(name: plan.name)
    }

    func fail(_ message: String) -> ImportError {
        ImportError(method: plan.name, location: location, message: message)
    }

    // MARK: driver

    func run() throws -> Graph {
        guard plan.chains.count <= 1 else {
            throw fail("\(plan.chains.count) chains; only single-chain plans are supported")
        }
        try prescan()
        for (position, ev) in plan.inputs.enumerated() {
            try checkIndex(ev, "ExecutionPlan.inputs[\(position)]")
            let type = try slotType(ev)
            let v = graph.addValue(type, .input(position: position), name: tensorName(ev) ?? "input\(position)")
            current[ev] = v
            graph.inputs.append(v)
            // Planned inputs hold their bytes until overwritten: a tensor the planner aliased onto them (a view
            // of the input it removed: optimum's Whisper decoder reads its token ids so) reads the input.
            if let memory = allocation(ev) { memoryHolder[memory] = ev }
        }
        if let chain = plan.chains.first {
            for (i, instruction) in chain.instructions.enumerated() {
                location = "instruction \(i) of chain 0"
                try translate(instruction, index: i)
            }
        }
        location = "ExecutionPlan.outputs"
        for ev in plan.outputs {
            try checkIndex(ev, "ExecutionPlan.outputs")
            graph.outputs.append(try read(ev))
        }
        if !dynamicBounds.isEmpty { refineDerivedBounds() }
        return graph
    }

    func checkIndex(_ ev: Int, _ what: String) throws {
        guard ev >= 0, ev < plan.values.count else {
            throw fail("\(what) refers to value \(ev), but the plan has \(plan.values.count) values")
        }
    }

    /// Finds SymInt slots and state slots before translating.
    func prescan() throws {
        for input in plan.inputs where input >= 0 && input < plan.values.count {
            if case .tensor(let t) = plan.values[input], t.dynamism != .staticShape {
                for s in t.sizes where s > 1 { dynamicBounds.insert(Int(s)) }
            }
        }
        guard let chain = plan.chains.first else { return }
        var written: Set<Int> = []
        // Memory that holds data at this point: several EValues may name the same planned bytes
        // (the exporter aliases a mutable buffer's later reads onto the buffer itself).
        var liveMemory: Set<AllocationDetails> = []
        // Planned inputs' bytes are live from the start: a read of them under another name is the input, not state.
        for input in plan.inputs {
            if case .tensor(let t) = plan.values[safe: input], let memory = t.allocation { liveMemory.insert(memory) }
        }
        for instruction in chain.instructions {
            // An opaque delegate reads what exists already and writes the rest of its arguments.
            if case .delegateCall(_, let args) = instruction {
                for a in args where !written.contains(Int(a)) {
                    guard case .tensor(let t) = plan.values[safe: Int(a)], t.dataBufferIndex == 0, !plan.inputs.contains(Int(a)) else { continue }
                    written.insert(Int(a))
                    if let memory = t.allocation { liveMemory.insert(memory) }
                }
                continue
            }
            guard case .kernelCall(let opIndex, let args) = instruction,
                  opIndex >= 0, Int(opIndex) < plan.operators.count, let last = args.last else { continue }
            let op = plan.operators[Int(opIndex)].qualifiedName
            if case .int = plan.values[safe: Int(last)] { dynamicInts.insert(Int(last)) }
            if let target = Self.inPlaceTarget[op], target < args.count {
                stateSlots.insert(Int(args[target]))
            }
            // A planned tensor read before anything writes it carries state from earlier calls.
            // `.out` variants list the out tensor twice (keyword argument, then return value).
            // Multi-output ops list their out tensors, then return them as one TensorList.
            let outputCount = Self.outputCount[op] ?? 1
            var outputs = Set(args.suffix(outputCount))
            if case .tensorList(let items) = plan.values[safe: Int(last)] {
                outputs = Set(args.dropLast().suffix(outputCount)).union(items).union([last])
            }
            for a in args where !outputs.contains(a) && !written.contains(Int(a)) {
                if case .tensor(let t) = plan.values[safe: Int(a)], let memory = t.allocation, !plan.inputs.contains(Int(a)),
                   !liveMemory.contains(memory) {
                    stateSlots.insert(Int(a))
                    liveMemory.insert(memory)
                }
            }
            for a in outputs {
                written.insert(Int(a))
                if case .tensor(let t) = plan.values[safe: Int(a)], let memory = t.allocation { liveMemory.insert(memory) }
            }
        }
    }

    /// Ops that write one of their arguments in place (argument position).
    static let inPlaceTarget: [String: Int] = [
        "aten::copy_": 0, "llama::update_cache.out": 1, "llama::update_cache_with_indices.out": 1,
        "aten::index_put_": 0,
    ]
    /// Ops with more than one output argument at the end.
    static let outputCount: [String: Int] = [
        "aten::native_layer_norm.out": 3, "aten::topk.values": 2, "aten::max.dim_max": 2, "aten::min.dim_min": 2,
        "aten::sort.values": 2, "aten::var_mean.correction_out": 2,
    ]

    // MARK: slots

    func evalue(_ ev: Int) throws -> EValue {
        try checkIndex(ev, "argument")
        return plan.values[ev]
    }

    func tensorValue(_ ev: Int) throws -> TensorValue {
        guard case .tensor(let t) = try evalue(ev) else {
            throw fail("value \(ev) should be a Tensor but is \(plan.values[ev].kindName)")
        }
        return t
    }

    func dtype(_ code: Int8, _ what: String) throws -> DType {
        guard let d = DType(rawValue: code) else { throw fail("\(what): unknown ScalarType \(code)") }
        return d
    }

    func slotType(_ ev: Int) throws -> TensorType? {
        switch try evalue(ev) {
        case .tensor(let t):
            let dims: [Dim] = t.sizes.map { s in
                if t.dynamism != .staticShape, s > 1, dynamicBounds.contains(Int(s)) { return .dynamic(min: 1, max: Int(s)) }
                return .fixed(Int(s))
            }
            guard t.sizes.allSatisfy({ $0 >= 0 }) else { throw fail("tensor value \(ev) has a negative size \(t.sizes)") }
            return TensorType(try dtype(t.scalarType, "tensor value \(ev)"), dims)
        case .int: return TensorType(.i64, [])
        case .double: return TensorType(.f64, [])
        case .bool: return TensorType(.bool, [])
        default: return nil
        }
    }

    func tensorName(_ ev: Int) -> String? {
        if case .tensor(let t) = plan.values[safe: ev] { return t.extra?.fullyQualifiedName }
        return nil
    }

    /// The value a slot holds now, creating constants and state on first use.
    func read(_ ev: Int) throws -> ValueID {
        if complexParts[ev] != nil {
            throw fail("complex tensor value \(ev) read by an op that takes no complex input (complex values: _fft_r2c's result, transposed/squeezed, then abs)")
        }
        if let v = current[ev] { return v }
        let value = try evalue(ev)
        switch value {
        case .tensor(let t):
            let type = try slotType(ev)
            let name = t.extra?.fullyQualifiedName
            let v: ValueID
            if t.extra?.location == .external {
                guard let fqn = name else { throw fail("external tensor value \(ev) has no fully_qualified_name") }
                v = graph.addValue(type, t.allocation == nil ? .constant(.namedData(key: fqn)) : .state(initial: .namedData(key: fqn)), name: fqn)
            } else if t.dataBufferIndex > 0 && t.allocation == nil {
                guard let bytes = type?.maxByteCount else { throw fail("constant tensor value \(ev) has no byte size (sizes too large)") }
                _ = try pte.constantData(index: Int(t.dataBufferIndex), length: bytes, "constant tensor value \(ev)")
                v = graph.addValue(type, .constant(.constantBuffer(index: Int(t.dataBufferIndex))), name: name)
            } else if t.dataBufferIndex > 0 {
                v = graph.addValue(type, .state(initial: .mutableData(index: Int(t.dataBufferIndex))), name: name ?? "state\(ev)")
            } else if t.allocation != nil && stateSlots.contains(ev) {
                v = graph.addValue(type, .state(initial: nil), name: name ?? "state\(ev)")
                memoryHolder[t.allocation!] = ev
            } else if let memory = t.allocation, let holder = memoryHolder[memory], let aliased = current[holder] {
                // Another name for bytes an earlier instruction wrote (the exporter shares storage
                // between a tensor and its views): the same value, reshaped when the shape differs.
                let view = try reinterpret(aliased, as: type, slot: ev)
                current[ev] = view
                return view
            } else {
                throw fail("tensor value \(ev) is read before any instruction writes it and it has no data")
            }
            current[ev] = v
            return v
        case .int(let n):
            let v = graph.addValue(TensorType(.i64, []), .constant(.literal([Double(n)])))
            current[ev] = v
            return v
        case .double(let x):
            let v = graph.addValue(TensorType(.f64, []), .constant(.literal([x])))
            current[ev] = v
            return v
        case .bool(let b):
            let v = graph.addValue(TensorType(.bool, []), .constant(.literal([b ? 1 : 0])))
            current[ev] = v
            return v
        default:
            throw fail("value \(ev) (\(value.kindName)) cannot be used as a tensor")
        }
    }

    /// A fresh value for a slot an op writes (state slots are updated in place instead).
    func write(_ ev: Int) throws -> ValueID {
        if stateSlots.contains(ev) { return try read(ev) }
        if let memory = allocation(ev), let holder = memoryHolder[memory], holder != ev, let held = current[holder], isState(held) {
            // Writing through another name of a state buffer's bytes updates the state in place.
            current[ev] = held
            return held
        }
        let v = graph.addValue(try slotType(ev), .computed, name: tensorName(ev))
        if case .tensor(let t) = try evalue(ev), t.dynamism == .staticShape { exporterStatic.insert(v) }
        current[ev] = v
        if let memory = allocation(ev) { memoryHolder[memory] = ev }
        return v
    }

    /// `value` seen through another tensor's shape (same bytes): itself, or a reshape of it.
    func reinterpret(_ value: ValueID, as type: TensorType?, slot: Int) throws -> ValueID {
        guard let type, let held = graph.type(value), held.shape != type.shape else { return value }
        guard held.dtype == type.dtype else {
            throw fail("value \(slot) (\(type)) shares memory with \(held), a different dtype; reinterpreting bytes is not supported")
        }
        let dynamicDims = type.shape.filter { $0.fixedValue == nil }.count
        guard dynamicDims <= 1 else { throw fail("value \(slot) (\(type)) views shared memory with more than one dynamic dimension") }
        let shape: [IntOrValue] = type.shape.map { .literal(Int64($0.fixedValue ?? -1)) }
        let view = graph.addValue(type, .computed, name: tensorName(slot))
        emit(.reshape(ReshapeOp(x: value, out: view, shape: shape)))
        return view
    }

    func allocation(_ ev: Int) -> AllocationDetails? {
        if case .tensor(let t) = plan.values[safe: ev] { return t.allocation }
        return nil
    }

    func isState(_ v: ValueID) -> Bool {
        if case .state = graph[v].kind { return true }
        return false
    }

    // MARK: scalar arguments

    func intArg(_ ev: Int) throws -> IntOrValue {
        switch try evalue(ev) {
        case .int(let n): return dynamicInts.contains(ev) ? .value(try read(ev)) : .literal(n)
        case .none, .null: throw fail("value \(ev) is None where an int is required")
        default: throw fail("value \(ev) should be an Int but is \(plan.values[ev].kindName)")
        }
    }

    func literalInt(_ ev: Int) throws -> Int {
        guard case .literal(let n) = try intArg(ev) else { throw fail("value \(ev) must be a constant int, but it is computed at run time") }
        return Int(n)
    }

    func optionalInt(_ ev: Int) throws -> IntOrValue? {
        switch try evalue(ev) {
        case .none, .null: return nil
        default: return try intArg(ev)
        }
    }

    func intList(_ ev: Int) throws -> [IntOrValue] {
        switch try evalue(ev) {
        case .intList(let items): return try items.map { try intArg(Int($0)) }
        case .none, .null: return []
        default: throw fail("value \(ev) should be an IntList but is \(plan.values[ev].kindName)")
        }
    }

    func literalInts(_ ev: Int) throws -> [Int] {
        try intList(ev).map {
            guard case .literal(let n) = $0 else { throw fail("value \(ev) must hold constant ints") }
            return Int(n)
        }
    }

    func doubleArg(_ ev: Int) throws -> Double {
        switch try evalue(ev) {
        case .double(let x): return x
        case .int(let n): return Double(n)
        case .bool(let b): return b ? 1 : 0
        default: throw fail("value \(ev) should be a number but is \(plan.values[ev].kindName)")
        }
    }

    func optionalDouble(_ ev: Int) throws -> Double? {
        switch try evalue(ev) {
        case .none, .null: return nil
        default: return try doubleArg(ev)
        }
    }

    func boolArg(_ ev: Int) throws -> Bool {
        switch try evalue(ev) {
        case .bool(let b): return b
        case .int(let n): return n != 0
        default: throw fail("value \(ev) should be a Bool but is \(plan.values[ev].kindName)")
        }
    }

    func optionalTensor(_ ev: Int) throws -> ValueID? {
        switch try evalue(ev) {
        case .none, .null: return nil
        default: return try read(ev)
        }
    }

    func tensorList(_ ev: Int) throws -> [ValueID?] {
        switch try evalue(ev) {
        case .tensorList(let items): return try items.map { try read(Int($0)) }
        case .optionalTensorList(let items):
            return try items.map { i in
                if i < 0 { return nil }
                if case .null = try evalue(Int(i)) { return nil }
                if case .none = try evalue(Int(i)) { return nil }
                return try read(Int(i))
            }
        default: throw fail("value \(ev) should be a TensorList but is \(plan.values[ev].kindName)")
        }
    }

    func optionalDType(_ ev: Int) throws -> DType? {
        switch try evalue(ev) {
        case .none, .null: return nil
        case .int(let n): return try dtype(Int8(truncatingIfNeeded: n), "value \(ev)")
        default: throw fail("value \(ev) should be a ScalarType but is \(plan.values[ev].kindName)")
        }
    }

    /// A scalar operand (`Scalar other`) as a rank-0 constant of the tensor's dtype.
    func scalarOperand(_ ev: Int, like tensor: ValueID) throws -> ValueID {
        if case .int = try evalue(ev), dynamicInts.contains(ev) { return try read(ev) }
        let x = try doubleArg(ev)
        let dt = graph.type(tensor)?.dtype ?? .f32
        return graph.addValue(TensorType(dt, []), .constant(.literal([x])))
    }

    func emit(_ op: Op) {
        graph.append(op, origin: location)
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { index >= 0 && index < count ? self[index] : nil }
}

/// A program the importer cannot turn into IR: names the method, the instruction and why.
public struct ImportError: Error, CustomStringConvertible {
    public var method: String
    public var location: String
    public var message: String
    public var description: String {
        "method \"\(method)\"" + (location.isEmpty ? "" : ", \(location)") + ": \(message)"
    }
}
