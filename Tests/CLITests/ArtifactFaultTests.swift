import Foundation
import XCTest

/// What `mlxc run X.mlxc` does when the world changed after `mlxc compile` (issue 17, faults): the
/// program truncated, edited or gone, the artifact from another CPU or mlxc version, its object code
/// damaged, its header cut or lying. Each must be one line naming the problem and exit code 1 —
/// never a crash, and never a run on stale object code.
final class ArtifactFaultTests: XCTestCase {
    let cli = MLXCBinary()
    let fixture = "llama_mlx_4bit"

    /// A fresh program copy and its artifact in a temporary directory.
    func compiled() throws -> (dir: URL, pte: URL, artifact: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-fault-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let pte = dir.appendingPathComponent("model.pte")
        try FileManager.default.copyItem(atPath: cli.fixture(fixture), toPath: pte.path)
        let artifact = dir.appendingPathComponent("model.mlxc")
        let compile = try cli.mlxc(["compile", pte.path, "-o", artifact.path])
        XCTAssertEqual(compile.status, 0, compile.stderr)
        return (dir, pte, artifact)
    }

    /// Runs the artifact on the fixture's inputs; expects a refusal whose message contains `expected`.
    func assertRefused(_ artifact: URL, _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let inputs = MLXCBinary.fixtures.appendingPathComponent(fixture).path
        let run = try cli.mlxc(["run", artifact.path, "--inputs-dir", inputs])
        XCTAssertEqual(run.status, 1, run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains(expected), "expected \"\(expected)\" in: \(run.stderr)", file: file, line: line)
        XCTAssertEqual(run.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count, 1,
                       "one line: \(run.stderr)", file: file, line: line)
    }

    /// The artifact's parts: JSON header (as a dictionary) and object code.
    func parts(_ artifact: URL) throws -> ([String: Any], Data) {
        let bytes = try Data(contentsOf: artifact)
        let length = bytes[8..<16].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: bytes[16..<16 + length]) as? [String: Any])
        return (header, bytes[(16 + length)...])
    }

    func write(_ header: [String: Any], _ object: Data, to artifact: URL, length: UInt64? = nil) throws {
        let json = try JSONSerialization.data(withJSONObject: header)
        var bytes = Data("MLXCART1".utf8)
        withUnsafeBytes(of: (length ?? UInt64(json.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(json)
        bytes.append(object)
        try bytes.write(to: artifact)
    }

    func testChangedTruncatedOrMissingProgramIsRefused() throws {
        let (_, pte, artifact) = try compiled()
        let original = try Data(contentsOf: pte)
        // Truncated after the compile (a copy cut short): the program reader sees it first.
        try original.prefix(original.count - 100).write(to: pte)
        try assertRefused(artifact, "truncated?")
        // Same size, one byte of the program flatbuffer changed: the hash differs.
        var edited = original
        edited[original.count / 3] ^= 0x01
        try edited.write(to: pte)
        try assertRefused(artifact, "changed since the artifact was built")
        // Gone.
        try FileManager.default.removeItem(at: pte)
        try assertRefused(artifact, "which is missing")
    }

    func testArtifactFromAnotherCPUOrVersionIsRefused() throws {
        let (_, _, artifact) = try compiled()
        let (header, object) = try parts(artifact)
        var otherCPU = header
        otherCPU["cpu"] = "some-other-cpu"
        try write(otherCPU, object, to: artifact)
        try assertRefused(artifact, "artifact built for CPU some-other-cpu")
        var otherFeatures = header
        otherFeatures["features"] = "+sse2"
        try write(otherFeatures, object, to: artifact)
        try assertRefused(artifact, "artifact built for CPU")
        var otherVersion = header
        otherVersion["mlxcVersion"] = "0.0.0-elsewhere"
        try write(otherVersion, object, to: artifact)
        try assertRefused(artifact, "artifact built by mlxc 0.0.0-elsewhere")
    }

    func testDamagedArtifactIsRefusedBeforeLinking() throws {
        let (_, _, artifact) = try compiled()
        let (header, object) = try parts(artifact)
        // One flipped bit in the object code: same size, so only the hash can tell.
        var flipped = object
        flipped[flipped.startIndex + flipped.count / 2] ^= 0x10
        try write(header, flipped, to: artifact)
        try assertRefused(artifact, "object code does not match the header's hash")
        // Cut short anywhere: in the object code, in the JSON, in the length field.
        try write(header, object, to: artifact)
        let whole = try Data(contentsOf: artifact)
        for (cut, message) in [(whole.count - 1, "truncated"), (20, "truncated"), (12, "truncated")] {
            try whole.prefix(cut).write(to: artifact)
            try assertRefused(artifact, message)
        }
        // A header length past the end of the file.
        try write(header, object, to: artifact, length: UInt64.max)
        try assertRefused(artifact, "runs past the end")
        // A header that is not the artifact's JSON.
        try write(["cpu": 1], object, to: artifact)
        try assertRefused(artifact, "unreadable artifact header")
    }
}
