import Foundation

/// `text` with a dead `sym_size` filler for every value number it leaves out (the parser wants
/// values numbered densely; tests that write layers by hand number them by role).
public func densified(_ text: String) -> String {
    let numbers = text.components(separatedBy: "\n").compactMap { line -> [Int]? in
        let t = line.trimmingCharacters(in: .whitespaces)
        guard let eq = t.range(of: " = ") ?? t.range(of: " : ") else { return nil }
        let head = t[..<eq.lowerBound]
        return head.components(separatedBy: CharacterSet(charactersIn: " ,")).compactMap { $0.hasPrefix("%") ? Int($0.dropFirst()) : nil }
    }.flatMap { $0 }
    let have = Set(numbers)
    guard let top = have.max() else { return text }
    let fillers = (0..<top).filter { !have.contains($0) }.map { "  %\($0) = sym_size(a: %0, dim: 0) : i64[]\n" }.joined()
    return text.replacingOccurrences(of: "block main {\n", with: "block main {\n" + fillers)
}
