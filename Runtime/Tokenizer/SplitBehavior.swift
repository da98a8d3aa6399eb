/// A piece of text on its way to the BPE model. `atStart` records whether it begins at offset 0 of
/// the original input, which Metaspace's `prepend_scheme: "first"` needs.
struct Segment {
    var text: String
    var atStart: Bool
}

/// What a splitting pre-tokenizer does with the delimiters it finds (`SplitDelimiterBehavior`).
enum SplitBehavior: String {
    case removed, isolated, mergedWithPrevious, mergedWithNext, contiguous

    static func parse(_ node: JSONNode) throws -> SplitBehavior {
        let name = try node.string()
        guard let b = SplitBehavior.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
            throw node.invalid("unknown split behavior \"\(name)\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)")
        }
        return b
    }

    /// Cuts `segment` along flagged pieces exactly as `NormalizedString::split` does, dropping
    /// empty results.
    func apply(_ pieces: [(range: Range<String.Index>, isMatch: Bool)], to segment: Segment) -> [Segment] {
        var ranges: [Range<String.Index>] = []
        switch self {
        case .isolated:
            ranges = pieces.map(\.range)
        case .removed:
            ranges = pieces.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            var previousMatch = false
            for p in pieces {
                if p.isMatch == previousMatch, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<p.range.upperBound
                } else {
                    ranges.append(p.range)
                }
                previousMatch = p.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for p in pieces {
                if p.isMatch && !previousMatch, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<p.range.upperBound
                } else {
                    ranges.append(p.range)
                }
                previousMatch = p.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for p in pieces.reversed() {
                if p.isMatch && !previousMatch, let last = ranges.last {
                    ranges[ranges.count - 1] = p.range.lowerBound..<last.upperBound
                } else {
                    ranges.append(p.range)
                }
                previousMatch = p.isMatch
            }
            ranges.reverse()
        }
        // Sliced through the scalar view: String's own subscript would round to grapheme boundaries.
        let scalars = segment.text.unicodeScalars
        return ranges.compactMap { r in
            r.isEmpty ? nil : Segment(text: String(scalars[r]), atStart: segment.atStart && r.lowerBound == scalars.startIndex)
        }
    }
}

extension SplitBehavior: CaseIterable {}
