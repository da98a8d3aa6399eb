import Foundation

/// Reads a file descriptor (stdin) on its own thread as bytes arrive, so a slow consumer never delays when they
/// are seen: each piece is kept with the time `read` returned it. `next()` hands over everything read so far
/// (waiting for at least one piece), nil once the descriptor is at its end (or failed: `failure`).
public final class TimedByteReader {
    public struct Piece {
        public var bytes: [UInt8]
        public var arrived: Date
    }

    let fd: Int32
    let lock = NSCondition()
    var queue: [Piece] = []
    var atEnd = false
    public private(set) var failure: String?
    var thread: Thread?

    public init(fd: Int32 = 0, chunk: Int = 1 << 16) {
        self.fd = fd
        // The thread holds the reader until the descriptor ends (a caller may stop early and drop it).
        let t = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let n = buffer.withUnsafeMutableBytes { Foundation.read(self.fd, $0.baseAddress, chunk) }
                if n < 0 && errno == EINTR { continue }
                let now = Date()
                self.lock.lock()
                if n > 0 {
                    self.queue.append(Piece(bytes: Array(buffer[0..<n]), arrived: now))
                } else {
                    if n < 0 { self.failure = String(cString: strerror(errno)) }
                    self.atEnd = true
                }
                self.lock.signal()
                self.lock.unlock()
                if n <= 0 { return }
            }
        }
        thread = t
        t.start()
    }

    /// Everything that arrived since the last call (blocking until something did), or nil at the end.
    public func next() -> [Piece]? {
        lock.lock()
        defer { lock.unlock() }
        while queue.isEmpty && !atEnd { lock.wait() }
        if queue.isEmpty { return nil }
        defer { queue = [] }
        return queue
    }
}
