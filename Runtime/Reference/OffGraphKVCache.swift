import MLXCIR

/// The KV cache that `update_and_attend` (ExecuTorch's `kvcache::update_and_attend`) keeps outside
/// the graph: per layer, key and value rows [B, H_kv, cells, D] placed by the positions the call
/// passes. The runtime that owns it chooses, as ExecuTorch's MLX runner does, each layer's pool:
/// - flat: `capacity` cells, position p in cell p; a call at positions start…end sees 0…end, so a
///   rewind (a call at an earlier start) simply overwrites;
/// - ring: a sliding-window layer of window W keeps the newest W + maxWrite − 1 positions
///   (position p in cell p mod slots), enough for a call of up to maxWrite tokens to see, for each
///   of its queries, the W keys ending at its own position.
/// It also decides the storage dtype (a half-precision pool rounds what it stores).
public final class OffGraphKVCache {
    public var storageDType: DType
    /// Cells of a flat layer.
    public var capacity: Int
    /// Sliding window per layer id; layers not listed are flat.
    public var windows: [Int: Int] = [:]
    /// The most tokens one call writes (sizes the rings).
    public var maxWrite: Int = 1
    var keys: [Int: HostTensor] = [:]
    var values: [Int: HostTensor] = [:]
    /// The position each ring cell holds (-1: empty).
    var cellPositions: [Int: [Int]] = [:]

    public init(capacity: Int = 4096, storageDType: DType = .f32) {
        self.capacity = capacity
        self.storageDType = storageDType
    }

    public func clear() {
        keys = [:]
        values = [:]
        cellPositions = [:]
    }

    /// Cells of a layer's pool.
    public func cells(layer: Int) -> Int {
        guard let w = windows[layer], w > 0 else { return capacity }
        return w + max(maxWrite, 1) - 1
    }

    /// What a call attends to: the history [B, H_kv, S, D] of keys and values in position order,
    /// and, for a ring layer, which of them each query may see (bool [T, S]; nil: causal, the new
    /// cells at the tail).
    struct History {
        var keys: HostTensor
        var values: HostTensor
        var mask: HostTensor?
    }

    /// Writes this step's k/v at `positions` (consecutive, as a runner feeds them) and returns what
    /// the step's queries attend to.
    func updateAndFetch(layer: Int, k: HostTensor, v: HostTensor, positions: [Int]) throws -> History {
        guard k.rank == 4, v.rank == 4, k.shape[2] == positions.count, v.shape[2] == positions.count, let first = positions.first else {
            throw ReferenceError("update_and_attend: k \(k.shape), v \(v.shape) and \(positions.count) positions disagree")
        }
        guard positions.enumerated().allSatisfy({ $0.element == first + $0.offset }) else {
            throw ReferenceError("update_and_attend: positions \(positions) are not consecutive")
        }
        let window = windows[layer] ?? 0
        let cells = cells(layer: layer)
        let last = first + positions.count - 1
        guard first >= 0 else { throw ReferenceError("update_and_attend: position \(first) is negative") }
        if window > 0 {
            guard positions.count <= max(maxWrite, 1) else {
                throw ReferenceError("update_and_attend: layer \(layer) writes \(positions.count) tokens in one call; its ring holds windows for \(maxWrite)")
            }
        } else if last >= cells {
            throw ReferenceError("update_and_attend: position \(last) outside the cache capacity \(cells)")
        }
        let (b, h, dk, dv) = (k.shape[0], k.shape[1], k.shape[3], v.shape[3])
        var kc = keys[layer] ?? HostTensor(dtype: storageDType, shape: [b, h, cells, dk])
        var vc = values[layer] ?? HostTensor(dtype: storageDType, shape: [b, h, cells, dv])
        var held = cellPositions[layer] ?? [Int](repeating: -1, count: cells)
        guard kc.shape == [b, h, cells, dk], vc.shape == [b, h, cells, dv] else {
            throw ReferenceError("update_and_attend: layer \(layer) was used with other shapes before")
        }
        for (t, p) in positions.enumerated() {
            let cell = p % cells
            held[cell] = p
            for row in 0..<(b * h) {
                let dst = row * cells + cell, src = row * positions.count + t
                for c in 0..<dk { kc.storage[dst * dk + c] = DTypeCodec.round(k.storage[src * dk + c], to: storageDType) }
                for c in 0..<dv { vc.storage[dst * dv + c] = DTypeCodec.round(v.storage[src * dv + c], to: storageDType) }
            }
        }
        keys[layer] = kc
        values[layer] = vc
        cellPositions[layer] = held
        // Flat: positions 0…last. Ring: the positions some query of this call can see.
        let lo = window > 0 ? max(0, first - window + 1) : 0
        for p in lo...last where held[p % cells] != p {
            throw ReferenceError("update_and_attend: layer \(layer) has no entry for position \(p) (the cache was not fed in order)")
        }
        func gather(_ t: HostTensor, _ d: Int) -> HostTensor {
            var out = [Double]()
            out.reserveCapacity(b * h * (last - lo + 1) * d)
            for row in 0..<(b * h) {
                for p in lo...last {
                    let at = (row * cells + p % cells) * d
                    out += t.storage[at ..< at + d]
                }
            }
            return HostTensor(dtype: .f32, shape: [b, h, last - lo + 1, d], storage: out)
        }
        var mask: HostTensor?
        if window > 0 {
            let s = last - lo + 1
            var m = [Double](repeating: 0, count: positions.count * s)
            for (i, q) in positions.enumerated() {
                for j in 0..<s where lo + j <= q && lo + j > q - window { m[i * s + j] = 1 }
            }
            mask = HostTensor(dtype: .bool, shape: [1, 1, positions.count, s], storage: m)
        }
        return History(keys: gather(kc, dk), values: gather(vc, dv), mask: mask)
    }
}
