/// What identifies a Metal kernel's code independently of its launch: the source (and header, if any) with every
/// run of whitespace made one space, the template parameters' names and kinds (their values are the launch's: shapes, dtype), and
/// the names the body uses for its inputs and outputs. Known kernels are recognised by name plus this
/// fingerprint (`KnownMetalKernels`); an unknown one is named with it.
extension MetalKernelOp {
    public var normalizedSource: String {
        source.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
    }

    /// 64-bit FNV-1a, as 16 hex digits.
    public var fingerprint: String {
        var text = normalizedSource
        text += "\u{0}" + zip(templateArgNames, templateArgKinds).map { "\($0):\($1)" }.joined(separator: ",")
        text += "\u{0}" + inputNames.joined(separator: ",") + "\u{0}" + outputNames.joined(separator: ",")
        if let header, !header.isEmpty {
            text += "\u{0}" + header.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
        }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
