import Foundation

/// The filters of the last few rate pairs, so clips that share a rate (every file of a batch
/// transcription, a directory of 44.1 kHz recordings) build the polyphase table once: 44.1 kHz →
/// 16 kHz is 160 rows × 68 taps of Bessel series, an odd rate near the accepted maximum 1025 × 6 400.
/// Input-independent, so sharing a table never changes a result.
enum ResamplerCache {
    /// A handful of pairs: a process meets one or two rates; the bound keeps a stream of odd rates from
    /// holding many large tables (up to ~26 MB each at the largest accepted rate).
    static let capacity = 4

    private static let lock = NSLock()
    nonisolated(unsafe) private static var recent: [Resampler] = []  // most recently used last

    static func resampler(from inputRate: Int, to outputRate: Int) -> Resampler {
        lock.lock()
        if let i = recent.firstIndex(where: { $0.inputRate == inputRate && $0.outputRate == outputRate }) {
            let hit = recent.remove(at: i)
            recent.append(hit)
            lock.unlock()
            return hit
        }
        lock.unlock()
        // Built outside the lock: a slow table does not hold up other rates.
        let built = Resampler(from: inputRate, to: outputRate)
        lock.lock()
        defer { lock.unlock() }
        if !recent.contains(where: { $0.inputRate == inputRate && $0.outputRate == outputRate }) {
            recent.append(built)
            if recent.count > capacity { recent.removeFirst() }
        }
        return built
    }
}
