import Foundation
import MLXCIR

/// Inputs that stay the same over many calls (Whisper's cross-attention K/V: 2 × layers × [1, H, 1500, D]
/// for every decoded token of a window) are converted to native buffers once, not on every call.
extension JITProgram {
    /// Keeps `host` as input `position` for every later `run(_:)` that passes nil there.
    /// The buffer is reused when the next hold has the same dtype and shape.
    public func holdInput(_ position: Int, _ host: HostTensor) throws {
        guard position >= 0, position < graph.inputs.count else {
            throw ReferenceError("method \(graph.name) has no input \(position)")
        }
        let id = graph.inputs[position]
        try reference.checkInput(host, against: graph[id].type, position: position)
        let bytes = DTypeCodec.encode(host.storage, host.dtype)
        try bytes.withUnsafeBytes { try hold(position, dtype: host.dtype, shape: host.shape, bytes: $0.baseAddress!) }
    }

    /// `holdInput` from a tensor in its native bytes (another compiled program's output): copied, not decoded.
    public func holdInput(_ position: Int, native t: NativeTensor) throws {
        guard position >= 0, position < graph.inputs.count else {
            throw ReferenceError("method \(graph.name) has no input \(position)")
        }
        try reference.checkInput(dtype: t.dtype, shape: t.shape, against: graph[graph.inputs[position]].type, position: position)
        try hold(position, dtype: t.dtype, shape: t.shape, bytes: UnsafeRawPointer(t.data))
    }

    private func hold(_ position: Int, dtype: DType, shape: [Int], bytes: UnsafeRawPointer) throws {
        let id = graph.inputs[position]
        let count = shape.reduce(1, *) * dtype.byteSize
        if let held = baseValues[id.index], held.dtype == dtype, held.shape == shape, held.byteCount == count {
            // The same bytes again (a decoder held the same window's states): later calls may reuse what they computed.
            let started = DispatchTime.now().uptimeNanoseconds
            let same = memcmp(bytes, held.data, count) == 0
            reuse?.compareNanoseconds += DispatchTime.now().uptimeNanoseconds - started
            reuse?.comparedBytes += count
            guard !same else { return }
            held.data.copyMemory(from: bytes, byteCount: count)
            heldVersions[position, default: 0] += 1
            return
        }
        let t = NativeTensor(dtype: dtype, shape: shape, data: allocateOwned(count))
        t.data.copyMemory(from: bytes, byteCount: count)
        baseValues[id.index] = t
        heldVersions[position, default: 0] += 1
    }

    /// Runs the main block with nil inputs taken from `holdInput`.
    public func run(_ inputs: [HostTensor?]) throws -> [HostTensor] {
        try callMain(inputs.count) { position, id in try inputs[position].map { try arenaInput($0, position) } }
        return try mainOutputs().map { try $0.host() }
    }

    /// Runs the main block like `run(_:)` and lends the outputs to `body` in their native bytes, valid only inside
    /// `body` (the next call reuses the arena): a chain of compiled programs (Whisper's encoder → cross-K/V program →
    /// decoder: 12 [1, 8, 1500, 64] f32 tensors per window on Whisper base) passes them on without decoding every
    /// element to a Double and encoding it back.
    public func withOutputs<R>(_ inputs: [HostTensor?], _ body: ([NativeTensor]) throws -> R) throws -> R {
        try callMain(inputs.count) { position, id in try inputs[position].map { try arenaInput($0, position) } }
        return try body(try mainOutputs())
    }

    /// `withOutputs` on inputs in their native bytes (another program's outputs): copied into this call's arena.
    public func withOutputs<R>(native inputs: [NativeTensor], _ body: ([NativeTensor]) throws -> R) throws -> R {
        try callMain(inputs.count) { position, id in
            let t = inputs[position]
            try reference.checkInput(dtype: t.dtype, shape: t.shape, against: graph[id].type, position: position)
            let copy = NativeTensor(dtype: t.dtype, shape: t.shape, data: arena.allocate(t.byteCount))
            copy.data.copyMemory(from: t.data, byteCount: t.byteCount)
            return copy
        }
        return try body(try mainOutputs())
    }

    /// One call of the main block: `provide` gives each input's tensor, nil for a held one.
    func callMain(_ count: Int, _ provide: (_ position: Int, _ id: ValueID) throws -> NativeTensor?) throws {
        guard !plannedOnly else {
            throw ReferenceError("this program's kernels were planned for \(planTarget.triple) (\(planTarget.cpuName)): it cannot run here")
        }
        guard count == graph.inputs.count else {
            throw ReferenceError("method \(graph.name) takes \(graph.inputs.count) inputs, got \(count)")
        }
        try pte.checkUnchanged()
        arena.reset()
        values = baseValues
        var held = [Bool](repeating: false, count: count)
        for (position, id) in graph.inputs.enumerated() {
            if let t = try provide(position, id) {
                values[id.index] = t
                continue
            }
            held[position] = true
            guard baseValues[id.index] != nil else { throw ReferenceError("input \(position) of \(graph.name) was neither given nor held") }
        }
        beginReuse(held: held)
        try run(plan: 0)
        endReuse()
    }

    /// A host tensor as a call input in the arena.
    func arenaInput(_ host: HostTensor, _ position: Int) throws -> NativeTensor {
        try reference.checkInput(host, against: graph[graph.inputs[position]].type, position: position)
        let t = NativeTensor(dtype: host.dtype, shape: host.shape, data: arena.allocate(host.count * host.dtype.byteSize))
        t.store(host)
        return t
    }

    func mainOutputs() throws -> [NativeTensor] {
        try graph.outputs.map { id in
            guard let t = values[id.index] else { throw ReferenceError("output \(id) was never computed") }
            return t
        }
    }
}
