import MLXCIR

/// A constant-zero `pad` of an image's two spatial axes whose result one `conv2d` alone reads as its input: the conv
/// kernel pads instead, with any widths per side — TensorFlow's "same" padding before a stride-2 conv is asymmetric
/// (0 before, 1 after), which the op's own symmetric `padding_h`/`padding_w` cannot say. The conv reads the pad
/// directly (NHWC x: H, W are axes 1, 2) or through ATen's transpose to NHWC (NCHW x: axes 2, 3).
///
/// `pad-as-fill-and-copy` leaves such a pad for the compiled conv2d to absorb (the conv's lowering matches the same
/// pad here); the reference executor runs it as it stands.
public struct ConvInputPad: Equatable, Sendable {
    public var top: Int, bottom: Int, left: Int, right: Int

    /// The widths of `p` if it is a zero constant pad of a rank-4 image's spatial axes only (literal, non-negative).
    public init?(_ p: PadOp, channelsFirst: Bool) {
        guard p.mode == "constant", p.constantValue == 0, p.padWidth.count == 8 else { return nil }
        let w = p.padWidth.map { width -> Int? in
            guard case .literal(let n) = width, n >= 0 else { return nil }
            return Int(n)
        }
        guard !w.contains(nil) else { return nil }
        let widths = w.map { $0! }
        let (h, wAxis) = channelsFirst ? (2, 3) : (1, 2)
        let others = (0..<4).filter { $0 != h && $0 != wAxis }
        guard others.allSatisfy({ widths[2 * $0] == 0 && widths[2 * $0 + 1] == 0 }) else { return nil }
        (top, bottom, left, right) = (widths[2 * h], widths[2 * h + 1], widths[2 * wAxis], widths[2 * wAxis + 1])
    }

    /// The pads of `graph` a conv2d absorbs: each such pad's result, keyed by the pad node's result.
    public static func absorbed(in graph: Graph) -> [ValueID: ConvInputPad] {
        var readers: [ValueID: [Op]] = [:]
        for block in graph.blocks { for node in block.nodes { for v in Set(node.op.operands) { readers[v, default: []].append(node.op) } } }
        /// The only reader of `v`, if nothing else (not even the graph's outputs) reads it.
        func onlyReader(_ v: ValueID) -> Op? {
            guard !graph.outputs.contains(v), let r = readers[v], r.count == 1, r[0].operands.filter({ $0 == v }).count == 1 else { return nil }
            return r[0]
        }
        var found: [ValueID: ConvInputPad] = [:]
        for block in graph.blocks {
            for node in block.nodes {
                guard case .pad(let p) = node.op, let reader = onlyReader(p.out) else { continue }
                switch reader {
                case .conv2D(let conv) where conv.x == p.out:
                    if let pad = ConvInputPad(p, channelsFirst: false) { found[p.out] = pad }
                case .transpose(let t) where t.perm.map({ $0 < 0 ? $0 + 4 : $0 }) == [0, 2, 3, 1]:
                    if case .conv2D(let conv)? = onlyReader(t.out), conv.x == t.out, let pad = ConvInputPad(p, channelsFirst: true) {
                        found[p.out] = pad
                    }
                default:
                    continue
                }
            }
        }
        return found
    }
}
