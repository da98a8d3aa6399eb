#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Constant tensors are views into it, never copies.
///
/// The file stays open so `checkUnchanged()` can tell, before each run, that it still has the size
/// and modification time it was mapped with: a file cut short under a mapping makes reading the lost
/// pages a SIGBUS, and one rewritten in place would change the weights under a running model. What
/// happens between that check and the reads is reported by `MappingFaultReport` (one line, exit 1).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let view: ByteView
    private let address: UnsafeMutableRawPointer?
    private let length: Int
    private var descriptor: Int32 = -1
    private var mappedTime = timespec()
    private var faultSlot: Int?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FormatError(path, at: 0, "cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = errno
            close(fd)
            throw FormatError(path, at: 0, "cannot stat: \(String(cString: strerror(error)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FormatError(path, at: 0, "not a regular file")
        }
        length = Int(info.st_size)
        if length == 0 {
            close(fd)
            address = nil
            // An empty file still gets a valid (zero-length) view; readers reject it by size.
            view = ByteView(base: UnsafeRawPointer(bitPattern: 16)!, count: 0, owner: nil)
            return
        }
        let mapped = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let error = errno
            close(fd)
            throw FormatError(path, at: 0, "cannot map \(length) bytes: \(String(cString: strerror(error)))")
        }
        address = mapped
        view = ByteView(base: UnsafeRawPointer(mapped), count: length, owner: nil)
        descriptor = fd
        mappedTime = info.st_mtim
        faultSlot = MappingFaultReport.register(UnsafeRawPointer(mapped), length, path: path)
    }

    /// Throws if the file now has another size or modification time than when it was mapped (a
    /// copy written over it, a truncation, an edit in place): one line naming the file. One fstat.
    public func checkUnchanged() throws {
        guard descriptor >= 0 else { return }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return }
        let size = Int(info.st_size)
        if size < length {
            throw FormatError(path, at: size, "file shrank from \(length) to \(size) bytes while in use (it must not be rewritten while mlxc runs it)")
        }
        if size != length || info.st_mtim.tv_sec != mappedTime.tv_sec || info.st_mtim.tv_nsec != mappedTime.tv_nsec {
            throw FormatError(path, at: 0, "file was modified while in use (\(length) bytes when loaded, \(size) now): load it again")
        }
    }

    /// Wraps bytes already in memory (tests, fuzzing). The copy is 64-byte aligned like a mapping.
    public init(bytes: [UInt8], name: String = "<memory>") {
        path = name
        length = bytes.count
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(memory), byteCount: bytes.count) }
        address = memory
        view = ByteView(base: UnsafeRawPointer(memory), count: bytes.count, owner: nil)
        isHeapCopy = true
    }

    private var isHeapCopy = false

    /// Lets the kernel drop the resident pages wholly inside [base, base + count) when that range is in
    /// this file's mapping (not a heap copy): bytes read once at load (weights repacked elsewhere) stop
    /// counting in the process's memory. The mapping is private and read-only, so a later read simply
    /// faults the same bytes in from the file again. Returns the bytes released.
    @discardableResult
    public func releasePages(_ base: UnsafeRawPointer, _ count: Int) -> Int {
        guard !isHeapCopy, let address, count > 0 else { return 0 }
        let start = Int(bitPattern: base), mapStart = Int(bitPattern: address)
        guard start >= mapStart, start + count <= mapStart + length else { return 0 }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (start + page - 1) / page * page, last = (start + count) / page * page
        guard last > first, madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, MADV_DONTNEED) == 0 else { return 0 }
        return last - first
    }

    /// A view whose owner is this mapping, so the mapping lives as long as any view of it.
    public var ownedView: ByteView { ByteView(base: view.base, count: view.count, owner: self) }

    deinit {
        if let faultSlot { MappingFaultReport.unregister(faultSlot) }
        if descriptor >= 0 { close(descriptor) }
        guard let address else { return }
        if isHeapCopy { address.deallocate() } else { munmap(address, length) }
    }
}
