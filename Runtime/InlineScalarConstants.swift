import MLXCFrontend
import MLXCIR

/// Float scalars that a plain export stores in the program file (RMSNorm's eps is a 0-d constant
/// buffer) become literal constants before the passes run: passes see only the graph, and pattern
/// fusions such as `fuse-rms-norm-pattern` need the value to turn it into an attribute. The value is
/// the same one the executors would decode, so nothing downstream changes.
///
/// So do short integer vectors (rank 1, at most `maxIndexVector` i32/i64 elements, each exactly
/// representable): `fuse-moe-pattern` checks that the one-hot of the top-k experts compares against
/// the arange 0..E-1, which a plain export stores as a constant buffer.
public enum InlineScalarConstants {
    public static let maxIndexVector = 64

    @discardableResult
    public static func run(_ graph: inout Graph, _ pte: PTEFile) throws -> Int {
        var inlined = 0
        for i in graph.values.indices {
            guard case .constant(let source) = graph.values[i].kind, let type = graph.values[i].type,
                  let count = type.staticShape?.reduce(1, *) else { continue }
            let scalar = count == 1 && type.rank == 0 && type.dtype.isFloatingPoint
            let indexVector = type.rank == 1 && count >= 1 && count <= maxIndexVector && [.i32, .i64].contains(type.dtype)
            guard scalar || indexVector else { continue }
            let length = count * type.dtype.byteSize
            let bytes: ByteView
            switch source {
            case .constantBuffer(let index): bytes = try pte.constantData(index: index, length: length, "constant %\(i)")
            case .namedData(let key): bytes = try pte.namedData(key)
            case .literal, .mutableData: continue
            }
            guard bytes.count >= length else { continue }
            let values = try DTypeCodec.decode(bytes.bytes, type.dtype, count: count)
            // Past 2^53 a Double no longer holds every integer: such vectors stay in the file.
            guard values.count == count, scalar || values.allSatisfy({ Swift.abs($0) < 9007199254740992 }) else { continue }
            graph.values[i].kind = .constant(.literal(values))
            inlined += 1
        }
        return inlined
    }
}
