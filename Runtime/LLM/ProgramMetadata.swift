import Foundation
import MLXCFrontend
import MLXCIR

/// The constant methods an LLM export writes next to `forward` (`get_max_seq_len`, `get_eos_ids`,
/// `get_windows`, …): methods with no instructions whose outputs are literals. ExecuTorch's export
/// scripts write ints, bools, doubles, several ints (one output each, e.g. `get_eos_id` with two
/// eos ids) and int tensors (the off-graph cache layout); this reads all of them and says which
/// method holds what when a value is not what the runner needs.
public struct ProgramMetadata {
    public enum Value: Equatable, CustomStringConvertible {
        case int(Int)
        case bool(Bool)
        case double(Double)
        case ints([Int])

        public var description: String {
            switch self {
            case .int(let n): return String(n)
            case .bool(let b): return b ? "true" : "false"
            case .double(let d): return String(d)
            case .ints(let xs): return "[" + xs.map(String.init).joined(separator: ", ") + "]"
            }
        }
    }

    public let values: [String: Value]
    let path: String

    public init(_ pte: PTEFile) {
        path = pte.path
        var values: [String: Value] = [:]
        for plan in pte.program.executionPlans where plan.name != "forward" && plan.chains.allSatisfy({ $0.instructions.isEmpty }) {
            if let v = Self.read(plan, pte) { values[plan.name] = v }
        }
        self.values = values
    }

    init(values: [String: Value], path: String = "test.pte") {
        self.values = values
        self.path = path
    }

    static func read(_ plan: ExecutionPlan, _ pte: PTEFile) -> Value? {
        var ints: [Int] = []
        for out in plan.outputs {
            guard out >= 0, out < plan.values.count else { return nil }
            switch plan.values[out] {
            case .int(let n): ints.append(Int(n))
            case .bool(let b): if plan.outputs.count == 1 { return .bool(b) } else { ints.append(b ? 1 : 0) }
            case .double(let d): if plan.outputs.count == 1 { return .double(d) } else { return nil }
            case .tensor(let t):
                guard let xs = tensorInts(t, pte) else { return nil }
                ints += xs
                if plan.outputs.count == 1 { return .ints(xs) }
            default: return nil
            }
        }
        return ints.count == 1 ? .int(ints[0]) : .ints(ints)
    }

    /// An integer constant tensor's elements (the off-graph cache layout is written as int32 tensors).
    static func tensorInts(_ t: TensorValue, _ pte: PTEFile) -> [Int]? {
        guard let dtype = DType(rawValue: t.scalarType), !dtype.isFloatingPoint, t.dataBufferIndex > 0 else { return nil }
        let count = t.sizes.reduce(1) { $0 * Int($1) }
        guard count >= 0, let bytes = try? pte.constantData(index: Int(t.dataBufferIndex), length: count * dtype.byteSize, "metadata tensor"),
              let xs = try? DTypeCodec.decode(bytes.bytes, dtype, count: count) else { return nil }
        return xs.map { Int($0) }
    }

    public func has(_ method: String) -> Bool { values[method] != nil }

    func bad(_ method: String, _ value: Value, _ why: String) -> ReferenceError {
        ReferenceError("\(path): metadata method \(method) returns \(value): \(why)")
    }

    /// A scalar int (a bool counts as 0/1, a one-element list as its element); nil when absent.
    public func int(_ method: String) throws -> Int? {
        guard let v = values[method] else { return nil }
        switch v {
        case .int(let n): return n
        case .bool(let b): return b ? 1 : 0
        case .ints(let xs) where xs.count == 1: return xs[0]
        default: throw bad(method, v, "expected one integer")
        }
    }

    /// A scalar int that must be at least `minimum`.
    public func int(_ method: String, atLeast minimum: Int) throws -> Int? {
        guard let n = try int(method) else { return nil }
        guard n >= minimum else { throw bad(method, values[method]!, "must be ≥ \(minimum)") }
        return n
    }

    public func bool(_ method: String) throws -> Bool? {
        guard let v = values[method] else { return nil }
        switch v {
        case .bool(let b): return b
        case .int(let n) where n == 0 || n == 1: return n == 1
        default: throw bad(method, v, "expected a bool")
        }
    }

    /// A list of ints: several outputs, a tensor, or one int (a scalar `get_eos_id`).
    public func ints(_ method: String) throws -> [Int]? {
        guard let v = values[method] else { return nil }
        switch v {
        case .int(let n): return [n]
        case .ints(let xs): return xs
        default: throw bad(method, v, "expected integers")
        }
    }
}
