import Foundation

/// Why a `tokenizer.json` could not be loaded. Every case names the file; JSON problems also name the
/// path inside the document (e.g. `model.merges[12]`) so a user can find the offending entry.
public enum TokenizerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case unreadable(file: String, reason: String)
    case malformedJSON(file: String, reason: String)
    /// A value has the wrong type or refers to something that does not exist.
    case invalid(file: String, path: String, message: String)
    /// Valid Hugging Face JSON, but a component mlxc does not implement.
    case unsupported(file: String, path: String, feature: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): return "\(file): cannot read the tokenizer file: \(reason)"
        case let .malformedJSON(file, reason): return "\(file): not valid JSON: \(reason)"
        case let .invalid(file, path, message): return "\(file): \(path): \(message)"
        case let .unsupported(file, path, feature): return "\(file): \(path): unsupported \(feature)"
        }
    }

    public var errorDescription: String? { description }
}
