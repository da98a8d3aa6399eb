import Foundation
import MLXCIR
import MLXCPasses

/// The KV cache of an `--use-offgraph-cache` export (`update_and_attend`) is not in the program:
/// the runner owns it. The export publishes its layout as constant methods — `get_n_caches`,
/// `get_kv_heads`, `get_head_dims`, `get_windows` (0: a flat layer, else its sliding window) —
/// and, as ExecuTorch's MLX runner does, mlxc sizes one pool per cache from it: flat pools of the
/// context length, rings of window + prefill chunk − 1 cells.
public struct OffGraphCacheLayout {
    public var caches: Int
    /// Sliding window per cache (0: flat).
    public var windows: [Int]
    /// Cells of a flat pool.
    public var capacity: Int
    /// The most tokens one call writes (the prefill chunk).
    public var maxWrite: Int

    init(_ meta: ProgramMetadata, maxContext: Int, maxChunk: Int, path: String) throws {
        capacity = maxContext
        maxWrite = maxChunk
        let windows = try meta.ints("get_windows")
        caches = try meta.int("get_n_caches", atLeast: 1) ?? windows?.count ?? 0
        self.windows = windows ?? [Int](repeating: 0, count: caches)
        guard self.windows.count == caches else {
            throw ReferenceError("\(path): metadata method get_windows returns \(self.windows.count) windows for get_n_caches \(caches)")
        }
        if let bad = self.windows.first(where: { $0 < 0 }) {
            throw ReferenceError("\(path): metadata method get_windows returns \(meta.values["get_windows"]!): window \(bad) is negative")
        }
        for method in ["get_kv_heads", "get_head_dims"] {
            if let xs = try meta.ints(method), xs.count != caches || xs.contains(where: { $0 < 1 }) {
                throw ReferenceError("\(path): metadata method \(method) returns \(meta.values[method]!): expected \(caches) positive sizes")
            }
        }
    }

    /// The layout as the pass that makes the pools graph state reads it.
    public var graphLayout: OffGraphKVLayout { OffGraphKVLayout(windows: windows, capacity: capacity, maxWrite: maxWrite) }

    /// The pools of the executor that runs `update_and_attend` (the reference executor, or the
    /// one a compiled program falls back to).
    static func pool(of executor: any ProgramExecutor) -> OffGraphKVCache? {
        if let reference = executor as? ReferenceExecutor { return reference.offGraphCache }
        if let program = executor as? JITProgram { return program.reference.offGraphCache }
        return nil
    }

    func install(on executor: any ProgramExecutor) throws {
        guard let pool = Self.pool(of: executor) else { throw ReferenceError("this executor keeps no off-graph KV cache") }
        pool.clear()
        pool.capacity = capacity
        pool.maxWrite = maxWrite
        pool.windows = Dictionary(uniqueKeysWithValues: windows.enumerated().filter { $0.element > 0 }.map { ($0.offset, $0.element) })
    }

    func clear(_ executor: any ProgramExecutor) { Self.pool(of: executor)?.clear() }
}
