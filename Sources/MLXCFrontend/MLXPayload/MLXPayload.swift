/// An MLX delegate payload: a 24-byte header (`MLX0` at bytes 4..7, then the data segment's offset
/// and size) followed by an `MLXGraph` FlatBuffer (FORMATS.md §3.2). Weights live in the program's
/// `named_data`, under the keys of `named_slots`.
public struct MLXPayload {
    public static let backendID = "MLXBackend"

    public let graph: MLXGraphTable
    public let flatbuffer: FlatBuffer
    public let dataSegmentOffset: UInt64
    public let dataSegmentSize: UInt64

    /// - Parameters:
    ///   - bytes: the delegate's processed blob.
    ///   - space: names the blob in error messages ("MLX payload of delegate 0 (file offset 30592)").
    public init(_ bytes: ByteView, space: String, fileOffset: Int) throws {
        func fail(_ ctx: String, _ at: Int, _ msg: String) -> FormatError { FormatError(ctx, at: fileOffset + at, msg, space: "") }
        guard bytes.count >= 24 else {
            throw fail("MLX0 header", 0, "payload is \(bytes.count) bytes, shorter than the 24-byte MLX0 header (\(space))")
        }
        let magic = try bytes.string(at: 4, length: 4, "MLX0 magic")
        guard magic == "MLX0" else {
            throw fail("MLX0 header", 4, "expected magic \"MLX0\", found \(PTEFile.printable(bytes, 4, 4)) (\(space))")
        }
        dataSegmentOffset = try bytes.load(UInt64.self, at: 8, "MLX0 data_segment_offset")
        dataSegmentSize = try bytes.load(UInt64.self, at: 16, "MLX0 data_segment_size")
        let (end, overflow) = dataSegmentOffset.addingReportingOverflow(dataSegmentSize)
        guard !overflow, dataSegmentSize == 0 || end <= UInt64(bytes.count) else {
            throw fail("MLX0 header", 8, "data segment [\(dataSegmentOffset), +\(dataSegmentSize)) exceeds the \(bytes.count)-byte payload")
        }
        let fbEnd = dataSegmentSize == 0 ? bytes.count : min(bytes.count, Int(dataSegmentOffset))
        guard fbEnd > 24 else { throw fail("MLXGraph", 24, "no flatbuffer after the header") }
        flatbuffer = FlatBuffer(try bytes.slice(24, fbEnd - 24, "MLXGraph"), space: "", fileOffset: fileOffset + 24)
        graph = try MLXGraphTable(try flatbuffer.root("MLXGraph"))
    }

    /// Node-type histogram (`QuantizedMatmulNode` → 57) of one chain, or of all chains.
    public func nodeHistogram(chain: Int? = nil) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        let chains = chain.map { [graph.instructionChains[$0]] } ?? graph.instructionChains
        for c in chains {
            for instruction in c.instructions {
                guard let name = mlxNodeTypeName(tag: instruction.tag) else {
                    throw FormatError("Instruction.op_type", at: flatbuffer.fileOffset + instruction.position,
                                      "unknown MLX node type tag \(instruction.tag) (this reader knows 1...\(mlxNodeTypeNames.count - 1))")
                }
                counts[name, default: 0] += 1
            }
        }
        return counts
    }
}
