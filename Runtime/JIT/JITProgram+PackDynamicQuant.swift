import Foundation
import MLXCCodegen
import MLXCIR

/// The load-time repack of XNNPACK's 4-bit dynamically quantized linears for the int8 GEMM kernel
/// (`DynamicQuantGemmKernels`, x86): codes column-interleaved as nibbles (the same bytes as the
/// file's, so no second full copy is read per call), each column's Σv and scales per group beside
/// them. The launch reads the blob in place of the weight operand (`KernelLaunch.constantOperands`);
/// the op's own weight and scales stay mapped for the reference executor and other readers, their
/// pages released after the repack (a copy the size of the codes replaces them in memory, not beside
/// them). `MLXC_QD8_GEMM=off` keeps the word-dot kernel (`DynamicQuantLinearKernels`), for comparisons.
struct PackedDynamicQuant {
    let blob: NativeTensor
    let layout: DynamicQuantGemmLayout
    let dot: DynamicQuantGemmKernels.ByteDot
}

extension JITProgram {
    static var dynamicQuantGemmEnabled: Bool {
        (ProcessInfo.processInfo.environment["MLXC_QD8_GEMM"] ?? "").lowercased() != "off"
    }

    /// Known before the first call: a constant or a value the init block computed.
    static func isLoadTime(_ kind: ValueKind) -> Bool {
        switch kind {
        case .constant, .computed: return true
        default: return false
        }
    }

    func packDynamicQuantWeights() throws {
        guard Self.dynamicQuantGemmEnabled, let dot = DynamicQuantGemmKernels.ByteDot(planWordDot) else { return }
        var packed: [String: NativeTensor] = [:]   // one blob per (weight, scales, group)
        for block in graph.blocks {
            for node in block.nodes {
                guard case .dynamicQuantLinear(let o) = node.op, o.bits == 4,
                      let w = baseValues[o.w.index], w.dtype == .u32, w.shape.count == 2,
                      let s = baseValues[o.scales.index], s.dtype == .f32 else { continue }
                guard Self.isLoadTime(graph[o.w].kind), Self.isLoadTime(graph[o.scales].kind) else { continue }
                let n = w.shape[0], k = w.shape[1] * 8
                guard DynamicQuantGemmKernels.supports(k: k, groupSize: o.groupSize, bits: 4),
                      s.count == n * (k / o.groupSize) else { continue }
                let layout = DynamicQuantGemmLayout(n: n, k: k, groupSize: o.groupSize, columns: dot.columns)
                let key = "\(o.w.index)/\(o.scales.index)/\(o.groupSize)"
                let blob: NativeTensor
                if let existing = packed[key] {
                    blob = existing
                } else {
                    let p = allocateOwned(layout.byteCount)
                    let scales = UnsafeRawPointer(s.data).bindMemory(to: Float.self, capacity: s.count)
                    let groups = layout.groups
                    layout.pack(words: UnsafeRawPointer(w.data).bindMemory(to: UInt32.self, capacity: n * k / 8),
                                scale: { scales[$0 * groups + $1] }, into: p)
                    // The file's codes are not read again by the kernels: their pages need not stay resident.
                    pte.releasePages(UnsafeRawPointer(w.data), w.byteCount)
                    pte.releasePages(UnsafeRawPointer(s.data), s.byteCount)
                    blob = NativeTensor(dtype: .u8, shape: [layout.byteCount], data: p)
                    packed[key] = blob
                }
                dynamicQuantPacks[o.out] = PackedDynamicQuant(blob: blob, layout: layout, dot: dot)
            }
        }
    }
}
