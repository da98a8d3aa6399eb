/// A loaded `.pte` program: the mapping, its header, the decoded `Program`, and zero-copy access to
/// segments, constants, named data (merged with any `.ptd` files) and delegate payloads.
public final class PTEFile: @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    public let header: ExtendedHeader?
    public let program: Program
    public let externalData: [PTDFile]
    /// The file identifier at bytes 4..7, e.g. `ET12`.
    public let identifier: String

    public convenience init(path: String, externalData: [String] = []) throws {
        let file = try MappedFile(path: path)
        let ptds = try externalData.map { try PTDFile(path: $0) }
        try self.init(file: file, externalData: ptds)
    }

    public init(file: MappedFile, externalData: [PTDFile] = []) throws {
        self.path = file.path
        self.file = file
        self.externalData = externalData
        let data = file.ownedView
        guard data.count >= 8 else {
            throw FormatError("\(file.path)", at: 0, "file is \(data.count) bytes, too short for a .pte (truncated or empty)")
        }
        let id = try data.string(at: 4, length: 4, "file identifier")
        guard id.utf8.count == 4, id.hasPrefix("ET") else {
            throw FormatError("file identifier", at: 4, "expected \"ET12\", found \(Self.printable(data, 4, 4)): not an ExecuTorch program")
        }
        identifier = id
        header = try ExtendedHeader.read(data)
        let programBytes = try data.slice(0, Int(header?.programSize ?? UInt64(data.count)), "program flatbuffer")
        program = try ProgramDecoder.decode(FlatBuffer(programBytes))
        try validateSegments()
    }

    /// Throws if the program or one of its `.ptd` files changed on disk since it was mapped
    /// (`MappedFile.checkUnchanged`): runs call this first, so a rewritten weights file is one
    /// clear line instead of a SIGBUS or weights changing under the model.
    public func checkUnchanged() throws {
        try file.checkUnchanged()
        for data in externalData { try data.file.checkUnchanged() }
    }

    /// Drops the resident pages of a range read once at load, in whichever mapping holds it
    /// (`MappedFile.releasePages`); returns the bytes released (0 for memory outside the files).
    @discardableResult
    public func releasePages(_ base: UnsafeRawPointer, _ count: Int) -> Int {
        let released = file.releasePages(base, count)
        return released > 0 ? released : externalData.reduce(0) { $0 + $1.file.releasePages(base, count) }
    }

    static func printable(_ data: ByteView, _ at: Int, _ n: Int) -> String {
        guard data.contains(at, n) else { return "<end of file>" }
        return "0x" + (0..<n).map { String(data.bytes[at + $0], radix: 16).leftPadded(2) }.joined()
    }

    // MARK: segments

    public var segmentBase: Int { Int(header?.segmentBaseOffset ?? 0) }

    private func validateSegments() throws {
        for (i, s) in program.segments.enumerated() {
            guard header != nil else {
                // Without the header there is no segment area; only empty segments can be honest.
                guard s.size == 0 else {
                    throw FormatError("Program.segments[\(i)]", at: 8, "the program lists a \(s.size)-byte segment but the file has no eh00 header")
                }
                continue
            }
            let (end, overflow) = s.offset.addingReportingOverflow(s.size)
            let (fileEnd, pastBase) = UInt64(segmentBase).addingReportingOverflow(end)  // as in PTDFile: both sums
            guard !overflow, !pastBase, fileEnd <= UInt64(file.view.count) else {
                throw FormatError("Program.segments[\(i)]", at: segmentBase,
                                  "segment [\(s.offset), +\(s.size)) past the segment base \(segmentBase) runs beyond the file end \(file.view.count) (truncated?)")
            }
        }
    }

    /// The bytes of segment `index`, a view into the mapping.
    public func segment(_ index: Int, _ context: @autoclosure () -> String) throws -> ByteView {
        guard index >= 0, index < program.segments.count else {
            throw FormatError(context(), at: 0, "segment index \(index) is out of range (the program has \(program.segments.count) segments)")
        }
        guard header != nil else {
            throw FormatError(context(), at: 8, "segment \(index) is used but the file has no eh00 header (no segment area)")
        }
        // validateSegments() checked that base + offset + size lies inside the file.
        let s = program.segments[index]
        return try file.ownedView.slice(segmentBase + Int(s.offset), Int(s.size), context())
    }

    /// Constant buffer `index` (`Tensor.data_buffer_idx`) holding `length` bytes.
    public func constantData(index: Int, length: Int, _ context: @autoclosure () -> String) throws -> ByteView {
        if let cs = program.constantSegment, cs.offsets.count > 1 {
            guard index > 0, index < cs.offsets.count else {
                throw FormatError(context(), at: 0, "constant buffer index \(index) is out of range 1..<\(cs.offsets.count)")
            }
            let seg = try segment(Int(cs.segmentIndex), "Program.constant_segment")
            let offset = cs.offsets[index]
            guard offset <= UInt64(seg.count), UInt64(length) <= UInt64(seg.count) - offset else {
                throw FormatError(context(), at: segmentBase,
                                  "constant \(index) needs \(length) bytes at offset \(offset) of a \(seg.count)-byte segment")
            }
            return try seg.slice(Int(offset), length, context())
        }
        guard index > 0, index < program.constantBuffer.count else {
            throw FormatError(context(), at: 0, "constant buffer index \(index) has no data (no constant segment, \(program.constantBuffer.count) inline buffers)")
        }
        let buffer = program.constantBuffer[index]
        guard buffer.count >= length else {
            throw FormatError(context(), at: 0, "inline constant \(index) holds \(buffer.count) bytes, \(length) needed")
        }
        return try buffer.slice(0, length, context())
    }

    /// Initial bytes of a mutable buffer (`mutable_data_segments[0]`, entry `index`).
    public func mutableData(index: Int, length: Int, _ context: @autoclosure () -> String) throws -> ByteView {
        guard let ms = program.mutableDataSegments.first else {
            throw FormatError(context(), at: 0, "tensor has initial state \(index) but the program has no mutable_data_segments")
        }
        guard index >= 0, index < ms.offsets.count else {
            throw FormatError(context(), at: 0, "mutable data index \(index) is out of range 0..<\(ms.offsets.count)")
        }
        let seg = try segment(Int(ms.segmentIndex), "Program.mutable_data_segments[0]")
        let offset = ms.offsets[index]
        guard offset <= UInt64(seg.count), UInt64(length) <= UInt64(seg.count) - offset else {
            throw FormatError(context(), at: segmentBase, "mutable data \(index) needs \(length) bytes at \(offset) of a \(seg.count)-byte segment")
        }
        return try seg.slice(Int(offset), length, context())
    }

    // MARK: named data

    /// Bytes for a `named_data` key, from this program or any attached `.ptd` file.
    public func namedData(_ key: String) throws -> ByteView {
        if let entry = program.namedData.first(where: { $0.key == key }) {
            return try segment(Int(entry.segmentIndex), "Program.named_data[\(key)]")
        }
        for ptd in externalData {
            if let bytes = try ptd.data(for: key) { return bytes }
        }
        throw FormatError("named data", at: 0, "key \"\(key)\" is in neither the program's named_data nor any .ptd file")
    }

    public func hasNamedData(_ key: String) -> Bool {
        program.namedData.contains { $0.key == key } || externalData.contains { $0.entries[key] != nil }
    }

    // MARK: delegates

    /// The processed blob of a delegate (segment or inline).
    public func delegatePayload(_ delegate: BackendDelegate, _ context: String) throws -> ByteView {
        switch delegate.location {
        case .segment:
            return try segment(Int(delegate.index), "\(context).processed")
        case .inline:
            guard Int(delegate.index) < program.backendDelegateData.count else {
                throw FormatError("\(context).processed", at: 0,
                                  "inline delegate data index \(delegate.index) is out of range (\(program.backendDelegateData.count) entries)")
            }
            return program.backendDelegateData[Int(delegate.index)]
        }
    }

    /// Absolute file offset of a view into this file (for diagnostics).
    public func fileOffset(of view: ByteView) -> Int { view.base - file.view.base }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

extension PTEFile {
    /// The value of a metadata method (an execution plan with no instructions whose single output
    /// is a constant Int or Bool), e.g. `get_max_context_len`. Nil when the program has no such method.
    public func metadata(_ method: String) -> Int? {
        guard let plan = program.executionPlans.first(where: { $0.name == method }),
              plan.chains.allSatisfy({ $0.instructions.isEmpty }),
              let out = plan.outputs.first, out >= 0, out < plan.values.count else { return nil }
        switch plan.values[out] {
        case .int(let n): return Int(n)
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// A metadata method returning a list of ints (e.g. `get_eos_ids`), when present.
    public func metadataList(_ method: String) -> [Int]? {
        guard let plan = program.executionPlans.first(where: { $0.name == method }),
              plan.chains.allSatisfy({ $0.instructions.isEmpty }) else { return nil }
        let values = plan.outputs.compactMap { i -> Int? in
            guard i >= 0, i < plan.values.count, case .int(let n) = plan.values[i] else { return nil }
            return Int(n)
        }
        return values.isEmpty ? nil : values
    }
}
