import MLXCIR

/// Inlines one MLX delegate call into the importer's graph. MLX tensor slots (`Tid`) are laid out
/// as constants, inputs, outputs, mutable buffers, temporaries; scalar slots (`Vid`) hold run-time
/// ints/floats/bools. Constants come from `named_data`; mutable buffers become graph state shared
/// by name across delegates; the init chain becomes the graph's init block.
final class MLXInliner: MLXSlotResolver {
    let importer: PlanImporter
    let payload: MLXPayload
    let delegateIndex: Int
    let table: MLXGraphTable
    var tensors: [Int: ValueID] = [:]
    var scalars: [Int: ValueID] = [:]
    /// Which block nodes go to while decoding (main, init, or a control-flow body).
    var block = 0
    var context: String { "MLX delegate \(delegateIndex)" }

    init(importer: PlanImporter, payload: MLXPayload, delegateIndex: Int) {
        self.importer = importer
        self.payload = payload
        self.delegateIndex = delegateIndex
        self.table = payload.graph
    }

    var constantEnd: Int { Int(table.numConstantTensors) }
    var inputEnd: Int { constantEnd + Int(table.numInputTensors) }
    var outputEnd: Int { inputEnd + Int(table.numOutputTensors) }
    var mutableEnd: Int { outputEnd + Int(table.numMutableBufferTensors) }
    var tensorCount: Int { mutableEnd + Int(table.numTempTensors) }

    func fail(_ message: String) -> ImportError { importer.fail("\(context): \(message)") }

    func metaType(_ tid: Int) throws -> TensorType? {
        guard let meta = table.tensorMeta[safe: tid] else { return nil }
        guard let dt = DType(rawValue: meta.scalarType) else { throw fail("tensor_meta[\(tid)] has unknown ScalarType \(meta.scalarType)") }
        return TensorType(dt, meta.shape.map { d in
            d.value >= 0 ? .fixed(Int(d.value)) : .dynamic(min: Int(d.minValue), max: d.maxValue >= 0 ? Int(d.maxValue) : nil)
        })
    }

    func inline(args: [Int]) throws {
        // Each mutable buffer is listed in mutable_buffer_map; a larger count is corrupt (and must
        // not make the importer create billions of values).
        guard Int(table.numMutableBufferTensors) <= table.mutableBufferMap.count else {
            throw fail("the graph declares \(table.numMutableBufferTensors) mutable buffers but maps \(table.mutableBufferMap.count)")
        }
        let ni = table.inputMap.count, no = table.outputMap.count
        guard args.count == ni + no else {
            throw fail("the DelegateCall passes \(args.count) values but the payload maps \(ni) inputs and \(no) outputs")
        }
        // Named slots: constants (weights in named_data) and mutable buffers (state).
        for slot in table.namedSlots where slot.slot.slotType == .tensorSlot {
            let tid = Int(slot.slot.idx)
            guard tid < tensorCount else { throw fail("named slot \"\(slot.name)\" refers to tensor \(tid) of \(tensorCount)") }
            if tid < constantEnd {
                guard importer.pte.hasNamedData(slot.name) else {
                    throw fail("constant \"\(slot.name)\" (tensor \(tid)) is missing from the program's named_data")
                }
                tensors[tid] = importer.graph.addValue(try metaType(tid), .constant(.namedData(key: slot.name)), name: slot.name)
            } else if tid >= outputEnd && tid < mutableEnd {
                if let shared = importer.mlxState[slot.name] {
                    tensors[tid] = shared
                } else {
                    let v = importer.graph.addValue(try metaType(tid), .state(initial: nil), name: slot.name)
                    importer.mlxState[slot.name] = v
                    tensors[tid] = v
                }
            }
        }
        for tid in outputEnd..<mutableEnd where tensors[tid] == nil {
            let v = importer.graph.addValue(try metaType(tid), .state(initial: nil), name: "mlx\(delegateIndex).buffer\(tid)")
            tensors[tid] = v
        }
        // Inputs: the delegate's arguments, in input_map order.
        for (i, slot) in table.inputMap.enumerated() {
            let v = try importer.read(args[i])
            switch slot.slotType {
            case .tensorSlot: tensors[Int(slot.idx)] = v
            default: scalars[Int(slot.idx)] = v
            }
        }
        // The init chain runs once at load: it goes to the graph's init block.
        if table.initChainIdx >= 0 {
            let initIndex = Int(table.initChainIdx)
            guard initIndex < table.instructionChains.count else { throw fail("init_chain_idx \(initIndex) is out of range") }
            if importer.graph.initBlock == nil {
                importer.graph.blocks.append(Block(name: "init"))
                importer.graph.initBlock = importer.graph.blocks.count - 1
            }
            block = importer.graph.initBlock!
            try decodeChain(initIndex)
        }
        let main = Int(table.mainChainIdx)
        guard main < table.instructionChains.count else { throw fail("main_chain_idx \(main) is out of range") }
        block = 0
        try decodeChain(main)
        // Outputs: whatever the output slots hold now.
        for (j, slot) in table.outputMap.enumerated() {
            let idx = Int(slot.idx)
            let value = slot.slotType == .tensorSlot ? tensors[idx] : scalars[idx]
            guard let value else { throw fail("output \(j) (slot \(idx)) is never written by the payload") }
            importer.current[args[ni + j]] = value
        }
    }

    /// Chains other than main and init are bodies of `if`/`scan` nodes: decoded into blocks on demand.
    var chainBlocks: [Int: Int] = [:]

    /// Chains being decoded, to reject a body that (directly or not) contains itself.
    var chainStack: [Int] = []

    func decodeChain(_ index: Int) throws {
        guard index >= 0, index < table.instructionChains.count else {
            throw fail("chain index \(index) is out of range (\(table.instructionChains.count) chains)")
        }
        guard !chainStack.contains(index) else {
            throw fail("chain \(index) contains itself through \(chainStack.map(String.init).joined(separator: " -> "))")
        }
        chainStack.append(index)
        defer { chainStack.removeLast() }
        let chain = table.instructionChains[index]
        for (i, instruction) in chain.instructions.enumerated() {
            let origin = "\(context) chain \(index) instruction \(i)"
            guard let node = instruction.table else {
                throw fail("chain \(index) instruction \(i) has no node (union tag \(instruction.tag))")
            }
            pendingResults = []
            // A scan's `sliced` slots are written by the loop itself: read before anything writes them.
            lenientReads = instruction.tag == Self.scanTag
            defer { lenientReads = false }
            var op = try decodeMLXOp(tag: instruction.tag, table: node, resolver: self)
            lenientReads = false
            // Results were decoded as placeholders so that an in-place node (`out` == `dst`) reads the
            // old value and writes a new one. Now give each result its value.
            if !pendingResults.isEmpty {
                var assigned: [ValueID: ValueID] = [:]
                for (placeholder, isTensor, idx) in pendingResults {
                    assigned[placeholder] = try writeSlot(idx, tensor: isTensor)
                }
                op = op.mapValues { assigned[$0] ?? $0 }
            }
            if case .if(var branch) = op {
                try inlineBranches(&branch, origin: origin)
                op = .if(branch)
            } else if case .scan(let scan) = op {
                for nativeOp in try importScan(scan, origin: origin) { importer.graph.append(nativeOp, origin: origin, block: block) }
                continue
            }
            if case .metalKernel(let k) = op {
                if let native = try KnownMetalKernels.native(k, graph: &importer.graph, origin: "chain \(index) instruction \(i)", fail: fail) {
                    for nativeOp in native { importer.graph.append(nativeOp, origin: origin, block: block) }
                    continue
                }
                // Not a known kernel: its source runs as the Metal subset (MetalProgram), or is named with what is outside it.
                do {
                    _ = try k.subsetProgram(inputTypes: k.inputs.map { importer.graph.type($0) })
                } catch {
                    importer.remarks.append("\(origin): \(error)")
                }
            }
            importer.graph.append(op, origin: origin, block: block)
        }
    }

    var pendingResults: [(ValueID, Bool, Int)] = []
    /// While decoding a scan: a tensor slot read before anything writes it (the loop's slices) gets a new value.
    var lenientReads = false

    /// Decodes both branches of an `if` into blocks of their own. Every slot a branch writes gets a
    /// merged value after the `if`: each branch ends by copying its final value (or, if it did not
    /// write the slot, the value from before the `if`) into it — a phi made of copies, so the
    /// graph stays SSA and the JIT turns the copies into aliases.
    func inlineBranches(_ branch: inout IfOp, origin: String) throws {
        let outer = block
        let before = (tensors: tensors, scalars: scalars)
        func decodeInto(_ chain: Int) throws -> (block: Int, tensors: [Int: ValueID], scalars: [Int: ValueID]) {
            (tensors, scalars) = before
            importer.graph.blocks.append(Block(name: "mlx\(delegateIndex).chain\(chain)"))
            let index = importer.graph.blocks.count - 1
            block = index
            try decodeChain(chain)
            return (index, tensors, scalars)
        }
        let thenSide = try decodeInto(branch.thenChainIdx)
        let elseSide = try decodeInto(branch.elseChainIdx)
        (tensors, scalars) = before
        block = outer
        func merge(_ slots: Set<Int>, _ then: [Int: ValueID], _ else_: [Int: ValueID], _ prior: [Int: ValueID], tensor: Bool) throws -> [Int: ValueID] {
            var merged: [Int: ValueID] = [:]
            for slot in slots.sorted() {
                let a = then[slot], b = else_[slot]
                if a == b { if let a { merged[slot] = a }; continue }
                let type = tensor ? try metaType(slot) : nil
                let m = importer.graph.addValue(type, .computed)
                for (side, value) in [(thenSide.block, a ?? prior[slot]), (elseSide.block, b ?? prior[slot])] {
                    guard let value else { continue }   // undefined on this path: later reads there are the program's bug
                    importer.graph.append(.idCopy(IdCopyOp(x: value, out: m)), origin: "\(origin) (merge of slot \(slot))", block: side)
                }
                merged[slot] = m
            }
            return merged
        }
        let tensorSlots = Set(thenSide.tensors.keys).union(elseSide.tensors.keys).filter { thenSide.tensors[$0] != before.tensors[$0] || elseSide.tensors[$0] != before.tensors[$0] }
        let scalarSlots = Set(thenSide.scalars.keys).union(elseSide.scalars.keys).filter { thenSide.scalars[$0] != before.scalars[$0] || elseSide.scalars[$0] != before.scalars[$0] }
        for (slot, v) in try merge(tensorSlots, thenSide.tensors, elseSide.tensors, before.tensors, tensor: true) { tensors[slot] = v }
        for (slot, v) in try merge(scalarSlots, thenSide.scalars, elseSide.scalars, before.scalars, tensor: false) { scalars[slot] = v }
        branch.thenChainIdx = thenSide.block
        branch.elseChainIdx = elseSide.block
    }

    func writeSlot(_ idx: Int, tensor: Bool) throws -> ValueID {
        try newSlotValue(idx, tensor: tensor)
    }

    func newSlotValue(_ idx: Int, tensor: Bool) throws -> ValueID {
        if tensor {
            if idx >= outputEnd && idx < mutableEnd, let state = tensors[idx] { return state } // in-place state update
            // Constants without named data are computed by the init chain (e.g. affine biases).
            // The init chain may also rewrite loaded constants (e.g. repacking); the main chain may not.
            guard idx >= constantEnd || tensors[idx] == nil || block == importer.graph.initBlock else {
                throw fail("a node writes constant tensor \(idx), which has named data")
            }
            let v = importer.graph.addValue(try metaType(idx), .computed)
            tensors[idx] = v
            return v
        }
        let v = importer.graph.addValue(nil, .computed)
        scalars[idx] = v
        return v
    }

    // MARK: MLXSlotResolver

    func tensor(_ idx: UInt32, _ context: String, _ offset: Int, isResult: Bool) throws -> ValueID {
        let tid = Int(idx)
        guard tid < tensorCount else {
            throw FormatError(context, at: offset, "tensor slot \(tid) is out of range (the graph has \(tensorCount) tensors)")
        }
        if isResult { return placeholder(tid, tensor: true) }
        if let v = tensors[tid] { return v }
        if lenientReads {
            let v = importer.graph.addValue(try metaType(tid), .computed)
            tensors[tid] = v
            return v
        }
        throw FormatError(context, at: offset, "tensor slot \(tid) is read before anything writes it")
    }

    func scalar(_ idx: UInt32, _ context: String, _ offset: Int, isResult: Bool) throws -> ValueID {
        let vid = Int(idx)
        guard vid < Int(table.numValues) else {
            throw FormatError(context, at: offset, "value slot \(vid) is out of range (the graph has \(table.numValues) values)")
        }
        if isResult { return placeholder(vid, tensor: false) }
        if let v = scalars[vid] { return v }
        throw FormatError(context, at: offset, "value slot \(vid) is read before anything writes it")
    }

    func dtype(_ code: Int8, _ context: String, _ offset: Int) throws -> DType {
        guard let d = DType(rawValue: code) else { throw FormatError(context, at: offset, "unknown ScalarType \(code)") }
        return d
    }

    func placeholder(_ idx: Int, tensor: Bool) -> ValueID {
        let p = ValueID(-1 - pendingResults.count)
        pendingResults.append((p, tensor, idx))
        return p
    }
}
