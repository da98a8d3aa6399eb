import Foundation

/// One fuzz target: `run` gets libFuzzer's bytes; it may throw (a clean rejection) but must never
/// trap, hang or allocate without bound. `seeds` writes its starting corpus from the fixtures.
public struct FuzzTarget {
    public var name: String
    public var summary: String
    public var run: ([UInt8]) throws -> Void
    public var seeds: (_ fixtures: URL, _ corpus: URL) throws -> Void

    public init(name: String, summary: String, run: @escaping ([UInt8]) throws -> Void,
                seeds: @escaping (_ fixtures: URL, _ corpus: URL) throws -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
        self.seeds = seeds
    }
}

/// The environment `tools/fuzz` sets: the target, the fixture directory, and (for `--seed`) where
/// to write the seed corpus instead of fuzzing.
public enum FuzzEnvironment {
    public static var fixtures: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["MLXC_FUZZ_FIXTURES"] ?? "Tests/Fixtures")
    }

    /// Picks the target named by MLXC_FUZZ_TARGET; with MLXC_FUZZ_WRITE_SEEDS=DIR writes its seeds and exits.
    public static func select(from targets: [FuzzTarget]) -> FuzzTarget {
        let env = ProcessInfo.processInfo.environment
        guard let name = env["MLXC_FUZZ_TARGET"], let target = targets.first(where: { $0.name == name }) else {
            let list = targets.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
            FileHandle.standardError.write("set MLXC_FUZZ_TARGET to one of:\n\(list)\n".data(using: .utf8)!)
            exit(2)
        }
        if let dir = env["MLXC_FUZZ_WRITE_SEEDS"] {
            let corpus = URL(fileURLWithPath: dir)
            do {
                try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
                try target.seeds(fixtures, corpus)
            } catch {
                FileHandle.standardError.write("seeds for \(name): \(error)\n".data(using: .utf8)!)
                exit(1)
            }
            exit(0)
        }
        return target
    }
}

/// Seed-writing helpers.
public enum Seeds {
    /// Every file under `dir` whose name ends in `suffix`, sorted.
    public static func files(under dir: URL, suffix: String) -> [URL] {
        guard let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.lastPathComponent.hasSuffix(suffix) }
            .sorted { $0.path < $1.path }
    }

    /// Writes `bytes` as `corpus/name` (the name made flat).
    public static func write(_ bytes: [UInt8], _ name: String, to corpus: URL) throws {
        let flat = name.replacingOccurrences(of: "/", with: "_")
        try Data(bytes).write(to: corpus.appendingPathComponent(flat))
    }

    /// `file`'s path below `fixtures`, for seed names.
    public static func relative(_ file: URL, _ fixtures: URL) -> String {
        let base = fixtures.standardizedFileURL.path
        let path = file.standardizedFileURL.path
        return path.hasPrefix(base) ? String(path.dropFirst(base.count + 1)) : file.lastPathComponent
    }
}

/// libFuzzer's entry points, shared by both executables: each sets `FuzzDriver.targets` in its
/// own `LLVMFuzzerInitialize` before calling `FuzzDriver.initialize`.
public enum FuzzDriver {
    nonisolated(unsafe) public static var selected: FuzzTarget?

    /// MLXC_FUZZ_VERBOSE=1 prints each rejection (to see how far an input gets).
    nonisolated(unsafe) static var verbose = false

    public static func initialize(_ targets: [FuzzTarget]) {
        selected = FuzzEnvironment.select(from: targets)
        verbose = ProcessInfo.processInfo.environment["MLXC_FUZZ_VERBOSE"] == "1"
    }

    public static func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
        guard let target = selected else { return 0 }
        let bytes = count == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: count))
        do {
            try target.run(bytes)
        } catch {
            // A rejection must say something: an empty message is a finding too.
            let text = String(describing: error)
            if verbose { FileHandle.standardError.write("rejected: \(text)\n".data(using: .utf8)!) }
            if text.isEmpty { fatalError("\(target.name): an error with an empty message") }
        }
        return 0
    }
}

/// libFuzzer's driver, for executables whose `main` SwiftPM names `<Module>_main` (it links
/// executables with `main` aliased to that symbol, so libFuzzer's own `main` is not used).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

extension FuzzDriver {
    public static func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                            _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
        var count = argc
        var vector = argv
        return LLVMFuzzerRunDriver(&count, &vector, callback)
    }
}
