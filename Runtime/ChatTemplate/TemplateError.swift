import Foundation

/// What went wrong in a chat template, and where (line:column in the template source).
public struct TemplateError: Error, CustomStringConvertible {
    public enum Kind {
        /// Not Jinja, or not well-formed.
        case syntax
        /// Valid Jinja that mlxc's engine does not implement (named in the message).
        case unsupported
        /// Failed while rendering (a type error, an undefined value used, …).
        case render
        /// The template itself refused the conversation (`raise_exception`).
        case raised
    }

    public var kind: Kind
    public var message: String
    public var line: Int
    public var column: Int
    /// The template's origin (a file path, or "tokenizer_config.json chat_template").
    public var source: String = "chat template"

    public var description: String {
        let what: String
        switch kind {
        case .syntax: what = "syntax error"
        case .unsupported: what = "unsupported Jinja"
        case .render: what = "error"
        case .raised: what = "the template refused the conversation"
        }
        return "\(source) \(line):\(column): \(what): \(message)"
    }
}

/// Offsets to line:column (1-based, counted in Unicode scalars).
struct SourceLocator {
    let lineStarts: [Int]

    init(_ scalars: [Unicode.Scalar]) {
        var starts = [0]
        for (i, c) in scalars.enumerated() where c == "\n" { starts.append(i + 1) }
        lineStarts = starts
    }

    func location(_ offset: Int) -> (line: Int, column: Int) {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return (lo + 1, offset - lineStarts[lo] + 1)
    }

    func error(_ kind: TemplateError.Kind, _ message: String, at offset: Int) -> TemplateError {
        let (line, column) = location(offset)
        return TemplateError(kind: kind, message: message, line: line, column: column)
    }
}
