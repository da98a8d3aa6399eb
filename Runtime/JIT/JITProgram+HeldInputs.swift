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
        if let held = baseValues[id.index], held.dtype == host.dtype, held.shape == host.shape, held.byteCount == bytes.count {
            // The same bytes again (a decoder held the same window's states): later calls may reuse what they computed.
            let started = DispatchTime.now().uptimeNanoseconds
            let same = bytes.withUnsafeBytes({ memcmp($0.baseAddress!, held.data, bytes.count) }) == 0
            reuse?.compareNanoseconds += DispatchTime.now().uptimeNanoseconds - started
            reuse?.comparedBytes += bytes.count
            guard !same else { return }
            bytes.withUnsafeBytes { held.data.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            heldVersions[position, default: 0] += 1
            return
        }
        let t = NativeTensor(dtype: host.dtype, shape: host.shape, data: allocateOwned(host.count * host.dtype.byteSize))
        t.store(host)
        baseValues[id.index] = t
        heldVersions[position, default: 0] += 1
    }

    /// Runs the main block with nil inputs taken from `holdInput`.
    public func run(_ inputs: [HostTensor?]) throws -> [HostTensor] {
        guard inputs.count == graph.inputs.count else {
            throw ReferenceError("method \(graph.name) takes \(graph.inputs.count) inputs, got \(inputs.count)")
        }
        try pte.checkUnchanged()
        arena.reset()
        values = baseValues
        var held = [Bool](repeating: false, count: inputs.count)
        for (position, (id, host)) in zip(graph.inputs, inputs).enumerated() {
            guard let host else {
                held[position] = true
                guard baseValues[id.index] != nil else { throw ReferenceError("input \(position) of \(graph.name) was neither given nor held") }
                continue
            }
            try reference.checkInput(host, against: graph[id].type, position: position)
            let t = NativeTensor(dtype: host.dtype, shape: host.shape, data: arena.allocate(host.count * host.dtype.byteSize))
            t.store(host)
            values[id.index] = t
        }
        beginReuse(held: held)
        try run(plan: 0)
        endReuse()
        return try graph.outputs.map { id in
            guard let t = values[id.index] else { throw ReferenceError("output \(id) was never computed") }
            return try t.host()
        }
    }
}
