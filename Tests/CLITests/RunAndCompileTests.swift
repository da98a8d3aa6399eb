import Foundation
import XCTest

/// `mlxc run`, `mlxc compile` and artifacts, through the real binary.
final class RunAndCompileTests: XCTestCase {
    let cli = MLXCBinary()

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxc-run-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func fixtureDir(_ name: String) -> String { MLXCBinary.fixtures.appendingPathComponent(name).path }

    func testRunWritesStepOutputsForBothEngines() throws {
        let dir = try temporaryDirectory()
        for engine in [[], ["--jit"]] {
            let out = dir.appendingPathComponent(engine.isEmpty ? "ref" : "jit").path
            let run = try cli.mlxc(["run", cli.fixture("llama_mlx_4bit"), "--inputs-dir", fixtureDir("llama_mlx_4bit"), "--output-dir", out] + engine)
            XCTAssertEqual(run.status, 0, run.stderr)
            for k in 0..<4 {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/step\(k).output0.npy"), "step \(k) (\(engine))")
            }
        }
    }

    /// `compile --remarks`: nothing is left unfused in the plain llama under the default pipeline; without
    /// the fusion passes its decomposed attention (a softmax over a score matrix) is named, with where.
    func testCompileRemarksNameWhatIsLeftUnfused() throws {
        let dir = try temporaryDirectory()
        let fused = try cli.mlxc(["compile", cli.fixture("llama_plain"), "--remarks", "-o", dir.appendingPathComponent("a.mlxc").path])
        XCTAssertEqual(fused.status, 0, fused.stderr)
        XCTAssertFalse(fused.stderr.contains("remark:"), fused.stderr)
        let unfused = try cli.mlxc(["compile", cli.fixture("llama_plain"), "--remarks", "--pipeline", "fold-scalar-constants,cse,dce",
                                    "-o", dir.appendingPathComponent("b.mlxc").path])
        XCTAssertEqual(unfused.status, 0, unfused.stderr)
        let lines = unfused.stderr.split(separator: "\n").filter { $0.hasPrefix("remark: ") && $0.contains("softmax left unfused") }
        XCTAssertEqual(lines.count, 2, unfused.stderr)
        XCTAssertTrue(lines.allSatisfy { $0.contains("instruction ") }, unfused.stderr)
    }

    func testArtifactRunsWithoutRecompilingAndRejectsAChangedProgram() throws {
        let dir = try temporaryDirectory()
        let pte = dir.appendingPathComponent("model.pte")
        try FileManager.default.copyItem(atPath: cli.fixture("llama_mlx_fp32"), toPath: pte.path)
        let artifact = dir.appendingPathComponent("model.mlxc").path
        let compile = try cli.mlxc(["compile", pte.path, "-o", artifact])
        XCTAssertEqual(compile.status, 0, compile.stderr)
        let fromArtifact = try cli.mlxc(["run", artifact, "--inputs-dir", fixtureDir("llama_mlx_fp32"), "--output-dir", dir.appendingPathComponent("a").path, "--timing"])
        XCTAssertEqual(fromArtifact.status, 0, fromArtifact.stderr)
        XCTAssertTrue(fromArtifact.stderr.contains("loaded artifact (no LLVM optimization)"), fromArtifact.stderr)
        let jit = try cli.mlxc(["run", "--jit", pte.path, "--inputs-dir", fixtureDir("llama_mlx_fp32"), "--output-dir", dir.appendingPathComponent("j").path])
        XCTAssertEqual(jit.status, 0, jit.stderr)
        for k in 0..<4 {
            XCTAssertEqual(FileManager.default.contents(atPath: dir.appendingPathComponent("a/step\(k).output0.npy").path),
                           FileManager.default.contents(atPath: dir.appendingPathComponent("j/step\(k).output0.npy").path), "step \(k)")
        }
        // Change one byte of the program: the artifact must refuse it.
        var bytes = try Data(contentsOf: pte)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: pte)
        let stale = try cli.mlxc(["run", artifact, "--inputs-dir", fixtureDir("llama_mlx_fp32")])
        XCTAssertEqual(stale.status, 1)
        XCTAssertTrue(stale.stderr.contains("changed since the artifact was built"), stale.stderr)
        // A truncated artifact is reported, not crashed on.
        let art = try Data(contentsOf: URL(fileURLWithPath: artifact))
        try art.prefix(art.count - 10).write(to: URL(fileURLWithPath: artifact))
        let truncated = try cli.mlxc(["run", artifact, "--inputs-dir", fixtureDir("llama_mlx_fp32")])
        XCTAssertEqual(truncated.status, 1)
        XCTAssertTrue(truncated.stderr.contains("truncated"), truncated.stderr)
    }

    func testEmitWritesOneFilePerKernel() throws {
        let dir = try temporaryDirectory()
        for (stage, ext) in [("llvm", ".ll"), ("opt-llvm", ".opt.ll"), ("asm", ".s")] {
            let out = dir.appendingPathComponent(stage).path
            let run = try cli.mlxc(["compile", cli.fixture("llama_mlx_4bit"), "--emit", stage, "--dump-dir", out])
            XCTAssertEqual(run.status, 0, run.stderr)
            let files = try FileManager.default.contentsOfDirectory(atPath: out)
            XCTAssertFalse(files.isEmpty)
            XCTAssertTrue(files.allSatisfy { $0.hasSuffix(ext) }, "\(files)")
            XCTAssertTrue(files.contains { $0.hasPrefix("qmm_affine_w4g32") }, "\(files)")
        }
        let fused = try cli.mlxc(["compile", cli.fixture("llama_mlx_4bit"), "--emit", "fused"])
        XCTAssertTrue(fused.stdout.contains("# execution plan"), fused.stdout)
    }

    func testWrongInputsAreClearErrors() throws {
        let dir = try temporaryDirectory()
        // A float32 .npy where int64 tokens are expected.
        let npy = dir.appendingPathComponent("x.npy")
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        bytes += [UInt8(header.utf8.count), 0] + Array(header.utf8) + [UInt8](repeating: 0, count: 8)
        try Data(bytes).write(to: npy)
        let run = try cli.mlxc(["run", cli.fixture("llama_mlx_fp32"), "--input", npy.path, "--input", npy.path])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("expected dtype i64"), run.stderr)
        let one = try cli.mlxc(["run", cli.fixture("llama_mlx_fp32"), "--input", npy.path])
        XCTAssertEqual(one.status, 1)
        XCTAssertTrue(one.stderr.contains("takes 2 inputs, got 1"), one.stderr)
    }
}
