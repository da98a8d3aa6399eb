import Foundation
import XCTest

/// Runs the real `mlxc` binary, as a user would, against the committed fixtures.
/// Runs the real `mlxc` binary (built next to the test bundle) and finds the committed fixtures.
struct MLXCBinary {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repo.appendingPathComponent("Tests/Fixtures")

    /// The built binary sits next to the test bundle (`.build/<config>/mlxc`).
    var binary: URL {
        let bundle = Bundle(for: CLITests.self).bundleURL
        let directory = bundle.pathExtension == "xctest" ? bundle.deletingLastPathComponent() : bundle
        return directory.appendingPathComponent("mlxc")
    }

    struct Run { var status: Int32; var stdout: String; var stderr: String }

    func mlxc(_ args: [String]) throws -> Run {
        let process = Process()
        process.executableURL = binary
        process.arguments = args
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    func fixture(_ name: String) -> String { Self.fixtures.appendingPathComponent("\(name)/model.pte").path }
}

final class CLITests: XCTestCase {
    let cli = MLXCBinary()
    func mlxc(_ args: [String]) throws -> MLXCBinary.Run { try cli.mlxc(args) }
    func fixture(_ name: String) -> String { cli.fixture(name) }

    func testInspectJSONReportsOperatorsAndMLXNodes() throws {
        let plain = try mlxc(["inspect", fixture("llama_plain"), "--json"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])
        let methods = try XCTUnwrap(json["methods"] as? [[String: Any]])
        let forward = try XCTUnwrap(methods.first { $0["name"] as? String == "forward" })
        let operators = try XCTUnwrap(forward["operators"] as? [String: Int])
        XCTAssertGreaterThan(operators["aten::linear.out"] ?? 0, 0)

        let mlx = try mlxc(["inspect", fixture("llama_mlx_fp32")])
        XCTAssertEqual(mlx.status, 0, mlx.stderr)
        XCTAssertTrue(mlx.stdout.contains("MLXBackend"), mlx.stdout)
        XCTAssertTrue(mlx.stdout.contains("RopeNode"), mlx.stdout)
    }

    func testDumpPrintsTheGraph() throws {
        let run = try mlxc(["dump", fixture("llama_mlx_fp32"), "--stage", "graph"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.hasPrefix("graph @forward\n"))
        XCTAssertTrue(run.stdout.contains(" = rope("))
        XCTAssertTrue(run.stdout.contains(" = sdpa("))
    }

    func testXNNPACKDelegateIsInlined() throws {
        let run = try mlxc(["dump", fixture("llama_xnnpack_fp32"), "--no-origins"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertFalse(run.stdout.contains("delegate_call("), run.stdout)
        XCTAssertTrue(run.stdout.contains(" = addmm("), run.stdout)
    }

    func testBadInputIsOneLineOnStderrAndExitOne() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixture("llama_plain")))
        let truncated = dir.appendingPathComponent("truncated.pte")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        let garbage = dir.appendingPathComponent("garbage.pte")
        try Data("this is not a program at all".utf8).write(to: garbage)

        for (args, expected) in [
            (["inspect", truncated.path], "segment_data_size"),
            (["dump", truncated.path], "truncated"),
            (["inspect", garbage.path], "file identifier"),
            (["inspect", dir.appendingPathComponent("missing.pte").path], "cannot open"),
        ] {
            let run = try mlxc(args)
            XCTAssertEqual(run.status, 1, "\(args): \(run.stdout)")
            XCTAssertTrue(run.stdout.isEmpty, "\(args) printed to stdout: \(run.stdout)")
            let lines = run.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, run.stderr)
            XCTAssertTrue(run.stderr.hasPrefix("mlxc: error: "), run.stderr)
            XCTAssertTrue(run.stderr.contains(expected), "\(args): \(run.stderr)")
        }
    }
}
