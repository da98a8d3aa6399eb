import Foundation
import FuzzSupport
import LLVMKit
import MLXCFrontend
import MLXCRuntime

/// An `.mlxc` artifact's reader and checks, as `mlxc run X.mlxc` does them before any object code
/// reaches LLVM: magic, header length, JSON header, object size and hash, then version, CPU and the
/// program's size and hash against a fixture program.
let artifactTarget = FuzzTarget(
    name: "artifact",
    summary: ".mlxc artifact: header, JSON, object size/hash, version/CPU/program checks",
    run: { bytes in
        let (header, _) = try Artifact.read(bytes: bytes, name: "fuzz.mlxc")
        guard let program = ArtifactFuzz.program else { return }
        try header.check(version: ArtifactFuzz.version, host: HostTarget.current, program: program)
    },
    seeds: { fixtures, corpus in
        // Artifacts as `mlxc compile` writes them, for this host and the fixture program; the object
        // code is opaque to the reader (it is only sized and hashed), so a few stand-in objects do.
        guard let program = ArtifactFuzz.program else { return }
        let host = HostTarget.current
        for (i, objectSize) in [0, 1, 64, 1000].enumerated() {
            let object = (0..<objectSize).map { UInt8(truncatingIfNeeded: $0 &* 131) }
            let header = Artifact(mlxcVersion: ArtifactFuzz.version, programPath: program.path, programBytes: program.file.view.count,
                                  programHash: Artifact.hash(program.file.view), method: "forward", cpu: host.cpuName,
                                  features: host.features, kernels: ["k\(i)"], plan: ["kernel k\(i)", "reference add"],
                                  objectBytes: object.count, pipeline: i % 2 == 0 ? nil : ["cse", "dce"])
            let path = corpus.appendingPathComponent("artifact\(i).mlxc").path
            try Artifact.write(header, object: object, to: path)
        }
    })

enum ArtifactFuzz {
    static let version = "fuzz"
    static let program: PTEFile? = try? PTEFile(path: FuzzEnvironment.fixtures.appendingPathComponent("linear_plain_ptd/model.pte").path)
}
