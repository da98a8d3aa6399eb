import MLXCIR

extension Graph {
    /// How many operand slots read each value, across every block; a graph output counts
    /// `outputWeight` more (2 by default, so it is never taken for a value read once).
    public func useCounts(outputWeight: Int = 2) -> [ValueID: Int] {
        var uses: [ValueID: Int] = [:]
        for block in blocks { for node in block.nodes { for v in node.op.operands { uses[v, default: 0] += 1 } } }
        for v in outputs { uses[v, default: 0] += outputWeight }
        return uses
    }
}
