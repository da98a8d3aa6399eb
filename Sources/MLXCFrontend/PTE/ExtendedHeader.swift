/// The `eh00` header ExecuTorch splices in at byte 8 of a `.pte` that has segments (FORMATS.md §1.1).
public struct ExtendedHeader: Sendable, Equatable {
    public var length: UInt32
    public var programSize: UInt64
    public var segmentBaseOffset: UInt64
    /// Absent (nil) in headers shorter than 32 bytes written by older exporters.
    public var segmentDataSize: UInt64?

    /// Reads the header if its magic is there; nil means the file has no segments.
    static func read(_ data: ByteView) throws -> ExtendedHeader? {
        guard data.count >= 16, data.bytes[8] == 0x65, data.bytes[9] == 0x68, data.bytes[10] == 0x30, data.bytes[11] == 0x30 else {
            return nil
        }
        let length = try data.load(UInt32.self, at: 12, "eh00 header length")
        guard length >= 24 else {
            throw FormatError("eh00 header length", at: 12, "header length \(length) is below the minimum 24")
        }
        let header = ExtendedHeader(
            length: length,
            programSize: try data.load(UInt64.self, at: 16, "eh00 program_size"),
            segmentBaseOffset: try data.load(UInt64.self, at: 24, "eh00 segment_base_offset"),
            segmentDataSize: length >= 32 ? try data.load(UInt64.self, at: 32, "eh00 segment_data_size") : nil)
        let fileSize = UInt64(data.count)
        guard header.programSize >= 8, header.programSize <= fileSize else {
            throw FormatError("eh00 program_size", at: 16, "program size \(header.programSize) exceeds the file size \(fileSize)")
        }
        if header.segmentBaseOffset != 0 {
            guard header.segmentBaseOffset >= header.programSize, header.segmentBaseOffset <= fileSize else {
                throw FormatError("eh00 segment_base_offset", at: 24,
                                  "segment base \(header.segmentBaseOffset) is outside [program_size \(header.programSize), file size \(fileSize)]")
            }
            if let size = header.segmentDataSize, size > fileSize - header.segmentBaseOffset {
                throw FormatError("eh00 segment_data_size", at: 32,
                                  "segments end at \(header.segmentBaseOffset + size) but the file has \(fileSize) bytes (truncated?)")
            }
        }
        return header
    }
}
