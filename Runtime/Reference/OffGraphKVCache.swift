import MLXCIR

/// The KV cache that `update_and_attend` (ExecuTorch's `kvcache::update_and_attend`) keeps outside
/// the graph: per layer, key and value rows [B, H_kv, capacity, D] written at the positions the
/// call passes. Flat layers keep all history; the runtime that owns the cache decides its storage
/// dtype (a half-precision pool rounds what it stores).
public final class OffGraphKVCache {
    public var storageDType: DType
    public let capacity: Int
    var keys: [Int: HostTensor] = [:]
    var values: [Int: HostTensor] = [:]
    /// Cells written so far per layer (the history length).
    var length: [Int: Int] = [:]

    public init(capacity: Int = 4096, storageDType: DType = .f32) {
        self.capacity = capacity
        self.storageDType = storageDType
    }

    public func clear() {
        keys = [:]
        values = [:]
        length = [:]
    }

    /// Writes this step's k/v at `positions` and returns the history [B, H_kv, total, D] of both.
    func updateAndFetch(layer: Int, k: HostTensor, v: HostTensor, positions: [Int]) throws -> (HostTensor, HostTensor) {
        guard k.rank == 4, v.rank == 4, k.shape[2] == positions.count, v.shape[2] == positions.count else {
            throw ReferenceError("update_and_attend: k \(k.shape), v \(v.shape) and \(positions.count) positions disagree")
        }
        let (b, h, dk, dv) = (k.shape[0], k.shape[1], k.shape[3], v.shape[3])
        var kc = keys[layer] ?? HostTensor(dtype: storageDType, shape: [b, h, capacity, dk])
        var vc = values[layer] ?? HostTensor(dtype: storageDType, shape: [b, h, capacity, dv])
        guard kc.shape == [b, h, capacity, dk], vc.shape == [b, h, capacity, dv] else {
            throw ReferenceError("update_and_attend: layer \(layer) was used with other shapes before")
        }
        for (t, p) in positions.enumerated() {
            guard p >= 0, p < capacity else { throw ReferenceError("update_and_attend: position \(p) outside the cache capacity \(capacity)") }
            for bi in 0..<b {
                for hi in 0..<h {
                    let cell = (bi * h + hi) * capacity + p
                    let step = (bi * h + hi) * positions.count + t
                    for c in 0..<dk { kc.storage[cell * dk + c] = DTypeCodec.round(k.storage[step * dk + c], to: storageDType) }
                    for c in 0..<dv { vc.storage[cell * dv + c] = DTypeCodec.round(v.storage[step * dv + c], to: storageDType) }
                }
            }
        }
        keys[layer] = kc
        values[layer] = vc
        let total = max(length[layer] ?? 0, (positions.max() ?? -1) + 1)
        length[layer] = total
        func prefix(_ t: HostTensor, _ d: Int) -> HostTensor {
            var out = [Double]()
            out.reserveCapacity(b * h * total * d)
            for bi in 0..<b {
                for hi in 0..<h {
                    let first: Int = (bi * h + hi) * capacity * d
                    out += t.storage[first ..< first + total * d]
                }
            }
            return HostTensor(dtype: .f32, shape: [b, h, total, d], storage: out)
        }
        return (prefix(kc, dk), prefix(vc, dv))
    }
}
