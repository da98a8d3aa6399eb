import Foundation
import MLXCIR

/// What a call's input was, to tell whether the next call's is the same: a held input's version (bumped only
/// when `holdInput` stores different bytes), or a passed input's dtype, shape and bytes.
enum InputSignature: Equatable {
    case held(version: Int)
    case passed(DType, [Int], [UInt8])
}

/// `CrossCallReuse` at run time: which inputs changed since the last call that completed, the values kept from
/// the reusable steps, and how much skipping saved.
final class ReuseState {
    let analysis: CrossCallReuse
    /// The last call completed: every reusable step's kept values are stored.
    var valid = false
    /// Skips allowed during the current call (`valid` when it started).
    var active = false
    /// Inputs (bit = position) that differ from the last completed call's.
    var changed: UInt64 = ~0
    var signatures: [Int: InputSignature] = [:]
    /// Inputs seen unchanged from one call to the next at least once: only steps reading no other input keep their
    /// results (an encoder whose features change on every call keeps nothing).
    var repeated: UInt64 = 0
    /// `repeated` when the current call started (what it keeps), and when the last one started (what it kept).
    var keeping: UInt64 = 0
    var keptLastCall: UInt64 = 0
    /// Kept values: owned copies, or the value itself when its bytes outlive the call (state, constants, held inputs).
    var kept: [ValueID: NativeTensor] = [:]
    var buffers: [ValueID: (pointer: UnsafeMutableRawPointer, bytes: Int)] = [:]
    var skippedSteps = 0
    var compareNanoseconds: UInt64 = 0
    var comparedBytes = 0

    init(_ analysis: CrossCallReuse) { self.analysis = analysis }
    deinit { for (p, _) in buffers.values { p.deallocate() } }

    /// Whether a step reading inputs `m` may be skipped in this call: none changed, and its results were kept.
    func mayReuse(_ m: UInt64) -> Bool { active && m & changed == 0 && m & ~keptLastCall == 0 }

    func skips(_ step: Int) -> Bool {
        guard let m = analysis.stepInputs[step], mayReuse(m) else { return false }
        skippedSteps += 1
        return true
    }

    /// Whether this call keeps the results of a step reading inputs `m`.
    func keeps(_ step: Int) -> Bool {
        guard let m = analysis.stepInputs[step] else { return false }
        return m & ~keeping == 0
    }
}

extension JITProgram {
    /// Steps of the main plan that calls with unchanged inputs skip (0 when reuse is off or finds nothing).
    public var reusableStepCount: Int { reuse?.analysis.reusableSteps ?? 0 }
    /// Reusable steps that overwrite a state whole (a cross-attention K/V cache written from the inputs).
    public var reusableStateWrites: Int { reuse?.analysis.stateOverwrites ?? 0 }
    /// Step runs skipped so far because their inputs had not changed.
    public var reusedStepRuns: Int { reuse?.skippedSteps ?? 0 }
    /// Time and bytes spent comparing inputs with the previous call's (the cost of deciding).
    public var reuseCheckCost: (seconds: Double, bytes: Int) {
        (Double(reuse?.compareNanoseconds ?? 0) / 1e9, reuse?.comparedBytes ?? 0)
    }

    func buildReuse() {
        guard options.crossCallReuse, !plannedOnly, let steps = plans[0] else { return }
        let types = ShapeInference.infer(graph).types
        func type(_ v: ValueID) -> TensorType? { (v.index < types.count ? types[v.index] : nil) ?? graph[v].type }
        guard let analysis = CrossCallReuse.analyze(graph: graph, steps: steps, type: type, constant: { baseValues[$0.index] }) else { return }
        reuse = ReuseState(analysis)
    }

    /// Before the main plan runs (inputs already in `values`): which inputs changed, and the kept values of the
    /// steps this call will skip put back in place.
    func beginReuse(held: [Bool]) {
        guard let reuse else { return }
        let started = DispatchTime.now().uptimeNanoseconds
        var changed: UInt64 = 0
        for (position, id) in graph.inputs.enumerated() where reuse.analysis.inputsRead & (1 << UInt64(position)) != 0 {
            let signature: InputSignature
            if held[position] {
                signature = .held(version: heldVersions[position, default: 0])
            } else {
                guard let t = values[id.index] else { changed |= 1 << UInt64(position); continue }
                // Compare in place before copying: the copy is only made when the bytes differ.
                if case .passed(let dtype, let shape, let bytes) = reuse.signatures[position], dtype == t.dtype, shape == t.shape,
                   bytes.count == t.byteCount, bytes.withUnsafeBytes({ memcmp($0.baseAddress!, t.data, t.byteCount) == 0 }) {
                    reuse.comparedBytes += t.byteCount
                    continue
                }
                reuse.comparedBytes += t.byteCount
                signature = .passed(t.dtype, t.shape, Array(UnsafeRawBufferPointer(start: t.data, count: t.byteCount)))
            }
            if reuse.signatures[position] != signature { changed |= 1 << UInt64(position) }
            reuse.signatures[position] = signature
        }
        reuse.changed = changed
        reuse.active = reuse.valid
        reuse.keptLastCall = reuse.valid ? reuse.keeping : 0
        if reuse.valid { reuse.repeated |= reuse.analysis.inputsRead & ~changed }
        reuse.keeping = reuse.repeated
        reuse.valid = false
        if reuse.active {
            for (step, vs) in reuse.analysis.kept {
                guard let m = reuse.analysis.stepInputs[step], reuse.mayReuse(m) else { continue }
                for v in vs {
                    guard let t = reuse.kept[v] else { continue }
                    if reuse.analysis.restoredByCopy.contains(v) {
                        let copy = NativeTensor(dtype: t.dtype, shape: t.shape, data: arena.allocate(t.byteCount))
                        copy.data.copyMemory(from: t.data, byteCount: t.byteCount)
                        values[v.index] = copy
                    } else {
                        values[v.index] = t
                    }
                }
            }
        }
        reuse.compareNanoseconds += DispatchTime.now().uptimeNanoseconds - started
    }

    /// After reusable step `step` ran: what later calls read from it is kept beyond this call's arena.
    func keepResults(of step: Int) throws {
        guard let reuse, let vs = reuse.analysis.kept[step], reuse.keeps(step) else { return }
        for v in vs {
            guard let t = values[v.index] else { throw ReferenceError("kept value \(v) was not computed") }
            guard arena.contains(t.data) else { reuse.kept[v] = t; continue }   // lives beyond the call already
            var buffer = reuse.buffers[v]
            if buffer == nil || buffer!.bytes < t.byteCount {
                buffer?.pointer.deallocate()
                buffer = (UnsafeMutableRawPointer.allocate(byteCount: max(t.byteCount, 1), alignment: 64), t.byteCount)
                reuse.buffers[v] = buffer
            }
            buffer!.pointer.copyMemory(from: t.data, byteCount: t.byteCount)
            reuse.kept[v] = NativeTensor(dtype: t.dtype, shape: t.shape, data: buffer!.pointer)
        }
    }

    /// The call completed: its kept values serve the next call.
    func endReuse() { reuse?.valid = true }

    /// State changed outside a call (reset): nothing kept may be trusted.
    func invalidateReuse() { reuse?.valid = false }
}
