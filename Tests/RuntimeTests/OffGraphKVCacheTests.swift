import XCTest
import MLXCIR
@testable import MLXCRuntime

/// The off-graph KV pools mlxc owns for `update_and_attend`: what each call's queries see must be,
/// for a flat layer, every position up to their own, and for a ring layer of window W exactly the
/// W positions ending at their own — with the keys and values written there — over calls of
/// varying length, and after a rewind on a flat layer.
final class OffGraphKVCacheTests: XCTestCase {
    /// A distinct value per (position, head, channel), so a row read back names its position.
    func rows(_ positions: [Int], heads: Int, dim: Int, sign: Double) -> HostTensor {
        var xs: [Double] = []
        for h in 0..<heads { for p in positions { for c in 0..<dim { xs.append(sign * Double(p * 1000 + h * 10 + c)) } } }
        return HostTensor(dtype: .f32, shape: [1, heads, positions.count, dim], storage: xs)
    }

    /// The positions ring-layer query `i` may attend to, read back from the history (keys encode positions).
    func visible(_ h: OffGraphKVCache.History, query i: Int, dim: Int) throws -> [Int] {
        let s = h.keys.shape[2]
        let mask = try XCTUnwrap(h.mask, "a ring layer's window comes as a mask")
        return (0..<s).compactMap { j -> Int? in
            if mask.storage[i * s + j] == 0 { return nil }
            let p = Int(h.keys.storage[j * dim]) / 1000
            XCTAssertEqual(h.values.storage[j * dim], -Double(p * 1000), "value row of position \(p)")
            return p
        }
    }

    func testRingLayerSeesExactlyItsWindow() throws {
        let (window, maxWrite, dim) = (5, 3, 4)
        let cache = OffGraphKVCache(capacity: 64)
        cache.windows = [1: window]
        cache.maxWrite = maxWrite
        XCTAssertEqual(cache.cells(layer: 1), window + maxWrite - 1)
        var position = 0
        for length in [3, 1, 2, 3, 1, 1, 3, 2, 1, 3] {
            let ps = Array(position..<(position + length))
            let ring = try cache.updateAndFetch(layer: 1, k: rows(ps, heads: 2, dim: dim, sign: 1), v: rows(ps, heads: 2, dim: dim, sign: -1), positions: ps)
            let flat = try cache.updateAndFetch(layer: 0, k: rows(ps, heads: 2, dim: dim, sign: 1), v: rows(ps, heads: 2, dim: dim, sign: -1), positions: ps)
            XCTAssertNil(flat.mask)
            XCTAssertEqual(flat.keys.shape[2], position + length, "a flat layer returns positions 0…last")
            for (i, q) in ps.enumerated() {
                XCTAssertEqual(try visible(ring, query: i, dim: dim), Array(max(0, q - window + 1)...q), "ring, query at \(q)")
            }
            position += length
        }
        // A rewind on a flat layer overwrites: the history ends at the new call's last position.
        let again = try cache.updateAndFetch(layer: 0, k: rows([4], heads: 2, dim: dim, sign: 1), v: rows([4], heads: 2, dim: dim, sign: -1), positions: [4])
        XCTAssertEqual(again.keys.shape[2], 5)
        XCTAssertThrowsError(try cache.updateAndFetch(layer: 1, k: rows([30, 31, 32, 33], heads: 2, dim: dim, sign: 1),
                                                      v: rows([30, 31, 32, 33], heads: 2, dim: dim, sign: -1), positions: [30, 31, 32, 33]))
    }
}
