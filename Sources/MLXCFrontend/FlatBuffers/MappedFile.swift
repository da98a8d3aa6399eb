#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Constant tensors are views into it, never copies.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let view: ByteView
    private let address: UnsafeMutableRawPointer?
    private let length: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw FormatError(path, at: 0, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FormatError(path, at: 0, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError(path, at: 0, "not a regular file")
        }
        length = Int(info.st_size)
        if length == 0 {
            address = nil
            // An empty file still gets a valid (zero-length) view; readers reject it by size.
            view = ByteView(base: UnsafeRawPointer(bitPattern: 16)!, count: 0, owner: nil)
            return
        }
        let mapped = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw FormatError(path, at: 0, "cannot map \(length) bytes: \(String(cString: strerror(errno)))")
        }
        address = mapped
        view = ByteView(base: UnsafeRawPointer(mapped), count: length, owner: nil)
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

    /// A view whose owner is this mapping, so the mapping lives as long as any view of it.
    public var ownedView: ByteView { ByteView(base: view.base, count: view.count, owner: self) }

    deinit {
        guard let address else { return }
        if isHeapCopy { address.deallocate() } else { munmap(address, length) }
    }
}
