import MLXCFrontend
import MLXCIR

/// Float scalars that a plain export stores in the program file (RMSNorm's eps is a 0-d constant
/// buffer) become literal constants before the passes run: passes see only the graph, and pattern
/// fusions such as `fuse-rms-norm-pattern` need the value to turn it into an attribute. The value is
/// the same one the executors would decode, so nothing downstream changes.
public enum InlineScalarConstants {
    @discardableResult
    public static func run(_ graph: inout Graph, _ pte: PTEFile) throws -> Int {
        var inlined = 0
        for i in graph.values.indices {
            guard case .constant(let source) = graph.values[i].kind, let type = graph.values[i].type,
                  type.staticShape?.reduce(1, *) == 1, type.rank == 0, type.dtype.isFloatingPoint else { continue }
            let bytes: ByteView
            switch source {
            case .constantBuffer(let index): bytes = try pte.constantData(index: index, length: type.dtype.byteSize, "constant %\(i)")
            case .namedData(let key): bytes = try pte.namedData(key)
            case .literal, .mutableData: continue
            }
            guard bytes.count >= type.dtype.byteSize,
                  let value = try DTypeCodec.decode(bytes.bytes, type.dtype, count: 1).first else { continue }
            graph.values[i].kind = .constant(.literal([value]))
            inlined += 1
        }
        return inlined
    }
}
