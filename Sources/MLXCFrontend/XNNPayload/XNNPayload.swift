/// An XNNPACK delegate payload (`XnnpackBackend`): a 30-byte header — 4 bytes of padding, `XH00`,
/// its own length (u16), then the flatbuffer's offset and size (u32 each) and the constant data's
/// offset (u32) and size (u64) — followed by the `XNNGraph` flatbuffer and the constant data.
/// Older payloads are a bare flatbuffer (identifier `XN01`/`XN00` at bytes 4..7, no constant data).
public struct XNNPayload {
    public static let backendID = "XnnpackBackend"
    public static let headerLength = 30

    public let graph: XNNGraph
    public let flatbufferOffset: Int
    public let flatbufferSize: Int
    public let constantDataOffset: Int
    public let constantDataSize: Int
    /// The whole payload (the constant data is read through it).
    public let bytes: ByteView
    let space: String
    let fileOffset: Int

    /// - Parameters:
    ///   - space: names the payload in errors ("ExecutionPlan[forward].delegates[3] (XnnpackBackend)").
    ///   - fileOffset: where the payload starts in the file.
    public init(_ bytes: ByteView, space: String, fileOffset: Int) throws {
        self.bytes = bytes
        self.space = space
        self.fileOffset = fileOffset
        func fail(_ ctx: String, _ at: Int, _ msg: String) -> FormatError { FormatError(ctx, at: fileOffset + at, "\(msg) (\(space))") }
        guard bytes.count >= 8 else { throw fail("XNNPACK header", 0, "payload is \(bytes.count) bytes, too short for a header") }
        let magic = try bytes.string(at: 4, length: 4, "XNNPACK header magic")
        if magic == "XH00" {
            guard bytes.count >= Self.headerLength else {
                throw fail("XNNPACK header", 0, "payload is \(bytes.count) bytes, shorter than the \(Self.headerLength)-byte XH00 header")
            }
            let length = Int(try bytes.load(UInt16.self, at: 8, "XNNPACK header length"))
            guard length >= Self.headerLength else { throw fail("XNNPACK header length", 8, "header length \(length) < \(Self.headerLength)") }
            flatbufferOffset = Int(try bytes.load(UInt32.self, at: 10, "XNNPACK header flatbuffer_offset"))
            flatbufferSize = Int(try bytes.load(UInt32.self, at: 14, "XNNPACK header flatbuffer_size"))
            constantDataOffset = Int(try bytes.load(UInt32.self, at: 18, "XNNPACK header constant_data_offset"))
            let constantSize = try bytes.load(UInt64.self, at: 22, "XNNPACK header constant_data_size")
            guard flatbufferSize > 0, bytes.contains(flatbufferOffset, flatbufferSize), flatbufferOffset >= length else {
                throw fail("XNNPACK header flatbuffer_offset", 10, "flatbuffer [\(flatbufferOffset), +\(flatbufferSize)) is not inside the \(bytes.count)-byte payload after the header")
            }
            guard constantSize <= UInt64(bytes.count), bytes.contains(constantDataOffset, Int(constantSize)),
                  constantDataOffset >= flatbufferOffset + flatbufferSize else {
                throw fail("XNNPACK header constant_data_offset", 18, "constant data [\(constantDataOffset), +\(constantSize)) is not inside the \(bytes.count)-byte payload after the flatbuffer")
            }
            constantDataSize = Int(constantSize)
        } else if magic == "XN01" || magic == "XN00" {
            flatbufferOffset = 0
            flatbufferSize = bytes.count
            constantDataOffset = bytes.count
            constantDataSize = 0
        } else {
            throw fail("XNNPACK header magic", 4, "expected \"XH00\" (or a bare XN01 flatbuffer), found \(PTEFile.printable(bytes, 4, 4))")
        }
        let fb = FlatBuffer(try bytes.slice(flatbufferOffset, flatbufferSize, "XNNGraph"), space: "", fileOffset: fileOffset + flatbufferOffset)
        do {
            graph = try XNNGraph(try fb.root("XNNGraph"))
        } catch var e as FormatError {
            e.message += " (\(space))"
            throw e
        }
    }

    /// Where constant `index` of `constant_data` lives: a named-data key, or bytes of this payload's constant segment.
    public enum ConstantLocation: Equatable {
        case named(String)
        case payload(ByteView)

        public static func == (a: Self, b: Self) -> Bool {
            switch (a, b) {
            case (.named(let x), .named(let y)): return x == y
            case (.payload(let x), .payload(let y)): return x.base == y.base && x.count == y.count
            default: return false
            }
        }
    }

    /// Constant data entry `index` (> 0), checked against the payload; `context` names the reader in errors.
    public func constant(_ index: Int, _ context: String) throws -> ConstantLocation {
        guard index > 0, index < graph.constantData.count else {
            throw FormatError(context, at: fileOffset, "constant \(index) is not in constant_data (\(graph.constantData.count) entries) (\(space))")
        }
        let c = graph.constantData[index]
        if let key = c.namedKey { return .named(key) }
        guard c.offset <= UInt64(constantDataSize), c.size <= UInt64(constantDataSize) - c.offset else {
            throw FormatError(context, at: fileOffset + constantDataOffset,
                              "constant \(index) [\(c.offset), +\(c.size)) exceeds the \(constantDataSize)-byte constant data (\(space))")
        }
        return .payload(try bytes.slice(constantDataOffset + Int(c.offset), Int(c.size), context))
    }
}
