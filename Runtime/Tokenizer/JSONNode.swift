import Foundation

/// A value from `JSONParser` that remembers where it came from, so every type error can say
/// which file and which JSON path was wrong instead of trapping on a failed cast.
struct JSONNode {
    let value: Any?
    let path: String
    let file: String

    init(value: Any?, path: String = "", file: String) {
        self.value = value
        self.path = path
        self.file = file
    }

    static func parse(_ data: Data, file: String) throws -> JSONNode {
        JSONNode(value: try JSONParser.parse(data, file: file), file: file)
    }

    subscript(key: String) -> JSONNode {
        JSONNode(value: (value as? JSONObject)?[key], path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// Missing keys and explicit `null` mean the same thing in tokenizer.json.
    var isNull: Bool { value == nil || value is NSNull }

    func invalid(_ message: String) -> TokenizerError {
        .invalid(file: file, path: path.isEmpty ? "(root)" : path, message: message)
    }

    func unsupported(_ feature: String) -> TokenizerError {
        .unsupported(file: file, path: path.isEmpty ? "(root)" : path, feature: feature)
    }

    private var typeName: String {
        switch value {
        case nil, is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "an array"
        case is JSONObject: return "an object"
        case is Bool: return "a boolean"
        case is Int, is Double: return "a number"
        default: return "\(type(of: value!))"
        }
    }

    func string() throws -> String {
        guard let s = value as? String else { throw invalid("expected a string, found \(typeName)") }
        return s
    }

    func optionalString() throws -> String? { isNull ? nil : try string() }

    func bool(default fallback: Bool) throws -> Bool {
        if isNull { return fallback }
        guard let b = value as? Bool else { throw invalid("expected a boolean, found \(typeName)") }
        return b
    }

    func int() throws -> Int {
        if let i = value as? Int { return i }
        if let d = value as? Double, let i = Int(exactly: d) { return i }
        throw invalid("expected an integer, found \(typeName)")
    }

    func int(default fallback: Int) throws -> Int { isNull ? fallback : try int() }

    func array() throws -> [JSONNode] {
        guard let a = value as? [Any] else { throw invalid("expected an array, found \(typeName)") }
        return a.enumerated().map { JSONNode(value: $0.element, path: "\(path)[\($0.offset)]", file: file) }
    }

    /// Object members in file order, duplicates and canonically equivalent keys included.
    func members() throws -> [(key: String, value: JSONNode)] {
        guard let o = value as? JSONObject else { throw invalid("expected an object, found \(typeName)") }
        return o.members.map { ($0.key, JSONNode(value: $0.value, path: path.isEmpty ? $0.key : "\(path).\($0.key)", file: file)) }
    }

    /// The `type` tag every Hugging Face component carries.
    func typeTag() throws -> String { try self["type"].string() }
}
