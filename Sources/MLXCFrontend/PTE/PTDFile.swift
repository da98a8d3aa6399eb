/// An ExecuTorch external data file (`.ptd`, identifier `FT01`, header `FH01`): named tensors
/// kept out of the `.pte` (FORMATS.md §2.3).
public final class PTDFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public var segmentIndex: UInt32
        public var scalarType: Int8?
        public var sizes: [Int32]
        public var dimOrder: [UInt8]
    }

    public let path: String
    public let file: MappedFile
    public let version: UInt32
    public let segments: [DataSegment]
    public let segmentBase: Int
    public let entries: [String: Entry]
    public let keys: [String]

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Reads a `.ptd` already mapped or in memory (`file.path` names it in errors).
    public init(file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        let data = file.ownedView
        guard data.count >= 8 else { throw FormatError(path, at: 0, "file is \(data.count) bytes, too short for a .ptd") }
        guard try data.string(at: 4, length: 4, "file identifier") == "FT01" else {
            throw FormatError("file identifier", at: 4, "expected \"FT01\", found \(PTEFile.printable(data, 4, 4)): not an ExecuTorch .ptd")
        }
        var flatbufferEnd = data.count
        var base = 0
        if data.count >= 12, try data.string(at: 8, length: 4, "FH01 magic") == "FH01" {
            let length = try data.load(UInt32.self, at: 12, "FH01 header length")
            guard length >= 40 else { throw FormatError("FH01 header length", at: 12, "header length \(length) is below 40") }
            let fbOffset = try data.load(UInt64.self, at: 16, "FH01 flatbuffer_offset")
            let fbSize = try data.load(UInt64.self, at: 24, "FH01 flatbuffer_size")
            let segBase = try data.load(UInt64.self, at: 32, "FH01 segment_base_offset")
            let segSize = try data.load(UInt64.self, at: 40, "FH01 segment_data_size")
            let (fbEnd, o1) = fbOffset.addingReportingOverflow(fbSize)
            let (segEnd, o2) = segBase.addingReportingOverflow(segSize)
            guard !o1, !o2, fbEnd <= UInt64(data.count), segEnd <= UInt64(data.count) else {
                throw FormatError("FH01 header", at: 16, "flatbuffer ends at \(fbEnd) and segments at \(segEnd), but the file has \(data.count) bytes")
            }
            flatbufferEnd = Int(fbEnd)
            base = Int(segBase)
        }
        segmentBase = base
        let fb = FlatBuffer(try data.slice(0, flatbufferEnd, "FlatTensor"))
        let root = try fb.root("FlatTensor")
        version = try root.scalar(0, "version", default: UInt32(0))
        segments = try (root.vector(1, "segments", elementSize: 4)?.tables("DataSegment") ?? []).map(ProgramDecoder.segment)
        var entries: [String: Entry] = [:]
        var keys: [String] = []
        for t in try root.vector(2, "named_data", elementSize: 4)?.tables("NamedData") ?? [] {
            let key = try ProgramDecoder.requiredString(t, 0, "key")
            let layout = try t.table(2, "tensor_layout", "TensorLayout")
            entries[key] = Entry(segmentIndex: try t.scalar(1, "segment_index", default: UInt32(0)),
                                 scalarType: try layout.map { try $0.scalar(0, "scalar_type", default: Int8(0)) },
                                 sizes: try layout.map { try ProgramDecoder.ints($0, 1, "sizes", Int32.self) } ?? [],
                                 dimOrder: try layout.map { try ProgramDecoder.ints($0, 2, "dim_order", UInt8.self) } ?? [])
            keys.append(key)
        }
        self.entries = entries
        self.keys = keys
        for (i, s) in segments.enumerated() {
            // Both sums checked: offset + size can fit while base + that does not (a fuzzed offset near 2^64 trapped).
            let (end, overflow) = s.offset.addingReportingOverflow(s.size)
            let (fileEnd, pastBase) = UInt64(base).addingReportingOverflow(end)
            guard !overflow, !pastBase, fileEnd <= UInt64(data.count) else {
                throw FormatError("FlatTensor.segments[\(i)]", at: base, "segment [\(s.offset), +\(s.size)) runs past the file end \(data.count)")
            }
        }
    }

    public func data(for key: String) throws -> ByteView? {
        guard let entry = entries[key] else { return nil }
        guard Int(entry.segmentIndex) < segments.count else {
            throw FormatError("\(path) named_data[\(key)].segment_index", at: 0,
                              "segment \(entry.segmentIndex) is out of range (\(segments.count) segments)")
        }
        let s = segments[Int(entry.segmentIndex)]
        return try file.ownedView.slice(segmentBase + Int(s.offset), Int(s.size), "\(path) named_data[\(key)]")
    }
}
