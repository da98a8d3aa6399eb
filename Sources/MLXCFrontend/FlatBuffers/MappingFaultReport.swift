#if canImport(Glibc)
import Glibc

/// A file cut short while mapped makes any read of its lost pages a SIGBUS. `MappedFile.checkUnchanged()`
/// catches that before each run; this covers the window after it (the file truncated mid-run): with
/// `install(prefix:)` a SIGBUS whose address lies in a mapped file prints one line naming the file and
/// the byte and exits with status 1. Any other SIGBUS goes to the handler that was there before.
///
/// The handler only reads a fixed table (no allocation, no lock) and calls write(2) and _exit(2).
public enum MappingFaultReport {
    struct Slot {
        var start: UInt
        var end: UInt
        var path: UnsafeMutablePointer<CChar>?
    }
    static let capacity = 256
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<Slot> = {
        let p = UnsafeMutablePointer<Slot>.allocate(capacity: capacity)
        p.initialize(repeating: Slot(start: 0, end: 0, path: nil), count: capacity)
        return p
    }()
    nonisolated(unsafe) static var mutex = pthread_mutex_t()
    nonisolated(unsafe) static let state: UnsafeMutablePointer<(prefix: UnsafeMutablePointer<CChar>?, previous: sigaction)> = {
        let p = UnsafeMutablePointer<(prefix: UnsafeMutablePointer<CChar>?, previous: sigaction)>.allocate(capacity: 1)
        p.initialize(to: (nil, sigaction()))
        return p
    }()
    nonisolated(unsafe) static var installed = false

    /// Remembers a mapping; returns its slot (nil when the table is full: that file's faults stay plain SIGBUS).
    static func register(_ base: UnsafeRawPointer, _ length: Int, path: String) -> Int? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        for i in 0..<capacity where slots[i].start == 0 {
            // Path strings are never freed: a handler may be reading one while another thread unmaps.
            slots[i].path = strdup(path)
            slots[i].end = UInt(bitPattern: base) + UInt(length)
            slots[i].start = UInt(bitPattern: base)
            return i
        }
        return nil
    }

    static func unregister(_ slot: Int) {
        pthread_mutex_lock(&mutex)
        slots[slot].start = 0
        pthread_mutex_unlock(&mutex)
    }

    /// Installs the SIGBUS handler once; `prefix` starts the line (e.g. "mlxc: error: ").
    public static func install(prefix: String) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !installed else { return }
        installed = true
        _ = slots
        state.pointee.prefix = strdup(prefix)
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = busError
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        sigaction(SIGBUS, &action, &state.pointee.previous)
    }
}

private func writeAll(_ text: UnsafePointer<CChar>) {
    _ = write(2, text, strlen(text))
}

private func busError(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
    let address = UInt(bitPattern: info?.pointee._sifields._sigfault.si_addr)
    let slots = MappingFaultReport.slots
    var i = 0
    while i < MappingFaultReport.capacity {
        let start = slots[i].start, end = slots[i].end
        if start != 0, address >= start, address < end, let path = slots[i].path {
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of stack for the offset's digits
            withUnsafeMutableBytes(of: &digits) { buffer in
                let bytes = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
                var offset = address - start, n = 22
                bytes[23] = 0
                bytes[n] = CChar(48 + Int(offset % 10)); offset /= 10
                while offset > 0 && n > 0 { n -= 1; bytes[n] = CChar(48 + Int(offset % 10)); offset /= 10 }
                if let prefix = MappingFaultReport.state.pointee.prefix { writeAll(prefix) }
                writeAll(path)
                writeAll(" at byte ")
                writeAll(bytes + n)
                writeAll(": the file shrank while in use (bus error reading its mapping; it must not be rewritten while mlxc runs it)\n")
            }
            _exit(1)
        }
        i += 1
    }
    // Not a mapped file's page: whatever handled SIGBUS before (the default: a core dump).
    var previous = MappingFaultReport.state.pointee.previous
    if previous.sa_flags & SA_SIGINFO != 0, let handler = previous.__sigaction_handler.sa_sigaction {
        handler(signal, info, context)
        return
    }
    let plain = unsafeBitCast(previous.__sigaction_handler.sa_handler, to: Int.self)
    if plain > 1, let handler = previous.__sigaction_handler.sa_handler {
        handler(signal)
        return
    }
    previous.__sigaction_handler.sa_handler = nil  // SIG_DFL: the faulting read runs again and kills the process
    sigaction(SIGBUS, &previous, nil)
}
#else
public enum MappingFaultReport {
    static func register(_ base: UnsafeRawPointer, _ length: Int, path: String) -> Int? { nil }
    static func unregister(_ slot: Int) {}
    public static func install(prefix: String) {}
}
#endif
