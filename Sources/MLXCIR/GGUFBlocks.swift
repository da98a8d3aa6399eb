/// GGUF K-quant super-blocks (llama.cpp's ggml-common.h layouts): 256 values per block.
public enum GGUFBlocks {
    public static let valuesPerBlock = 256

    /// Bytes per super-block of a `ggml_type` name, or nil for a type mlxc does not read.
    public static func blockBytes(_ type: String) -> Int? {
        switch type {
        case "q4_k": return 144
        case "q5_k": return 176
        case "q6_k": return 210
        default: return nil
        }
    }

    /// The affine groups a type's sub-blocks become (`gguf_pack_affine`): code bits as packed (4-bit codes stay
    /// nibbles; 5- and 6-bit codes take a byte) and values per group.
    public static func affineLayout(_ type: String) -> (bits: Int, groupSize: Int)? {
        switch type {
        case "q4_k": return (4, 32)
        case "q5_k": return (8, 32)
        case "q6_k": return (8, 16)
        default: return nil
        }
    }
}
