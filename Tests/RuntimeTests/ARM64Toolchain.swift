import Foundation
import XCTest

/// The cross toolchain the ARM64 checks use: `aarch64-linux-gnu-gcc` (Debian's
/// gcc-aarch64-linux-gnu + libc6-dev-arm64-cross) links mlxc's aarch64 kernels with the replay
/// driver (tools/arm64/replay.c), and `qemu-aarch64` (qemu-user) runs the result. tools/setup
/// installs both. Without them the emulation tests skip, unless MLXC_ARM64=1 asks for them
/// (then a missing tool fails); MLXC_ARM64=0 skips them.
struct ARM64Toolchain {
    let gcc: String, qemu: String
    static let sysroot = "/usr/aarch64-linux-gnu"
    static let replaySource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/arm64/replay.c").path

    /// The toolchain, or XCTSkip (tools missing and not asked for, or MLXC_ARM64=0).
    static func require() throws -> ARM64Toolchain {
        let wanted = ProcessInfo.processInfo.environment["MLXC_ARM64"]
        if wanted == "0" { throw XCTSkip("MLXC_ARM64=0") }
        let gcc = which("aarch64-linux-gnu-gcc"), qemu = which("qemu-aarch64")
        guard let gcc, let qemu else {
            let missing = [gcc == nil ? "aarch64-linux-gnu-gcc" : nil, qemu == nil ? "qemu-aarch64" : nil].compactMap { $0 }
            let message = "ARM64 emulation check needs \(missing.joined(separator: " and ")) (tools/setup installs them)"
            if wanted == "1" { XCTFail(message) }
            throw XCTSkip(message)
        }
        return ARM64Toolchain(gcc: gcc, qemu: qemu)
    }

    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// A C table of the kernels by name, for replay.c. Kernel names are not C identifiers
    /// (`…_n64+32+32_…`), so each is declared with a quoted assembler name.
    /// `kernels`: (the name launches are traced under, the aarch64 symbol that replays them).
    static func kernelTable(_ kernels: [(traced: String, symbol: String)]) -> String {
        var c = "#include <stdint.h>\ntypedef void (*kernel_fn)(void **, const int64_t *, int64_t, int64_t);\n"
        c += "struct kernel_entry { const char *name; kernel_fn fn; };\n"
        for (i, k) in kernels.enumerated() {
            c += "void mlxc_k\(i)(void **, const int64_t *, int64_t, int64_t) __asm__(\"\\\"\(k.symbol)\\\"\");\n"
        }
        c += "const struct kernel_entry mlxc_kernels[] = {\n"
        c += kernels.enumerated().map { "  {\"\($0.element.traced)\", mlxc_k\($0.offset)}," }.joined(separator: "\n")
        c += "\n  {0, 0}\n};\nconst int mlxc_kernel_count = \(kernels.count);\n"
        return c
    }

    /// Links the aarch64 object with the replay driver into a static executable in `dir`.
    func linkReplay(object: [UInt8], kernels: [(traced: String, symbol: String)], in dir: URL) throws -> String {
        let objectPath = dir.appendingPathComponent("kernels.o").path, tablePath = dir.appendingPathComponent("table.c").path
        let exe = dir.appendingPathComponent("replay").path
        try Data(object).write(to: URL(fileURLWithPath: objectPath))
        try Data(Self.kernelTable(kernels).utf8).write(to: URL(fileURLWithPath: tablePath))
        try run(gcc, ["-O1", "-static", "-o", exe, Self.replaySource, tablePath, objectPath, "-lm"])
        return exe
    }

    /// Runs the replay under qemu on `trace`, returning what it wrote.
    func replay(_ exe: String, trace: Data, in dir: URL) throws -> Data {
        let tracePath = dir.appendingPathComponent("trace.bin"), outPath = dir.appendingPathComponent("results.bin")
        try trace.write(to: tracePath)
        try run(qemu, ["-L", Self.sysroot, exe, tracePath.path, outPath.path])
        return try Data(contentsOf: outPath)
    }

    @discardableResult
    func run(_ tool: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "ARM64Toolchain", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\((tool as NSString).lastPathComponent) failed (\(p.terminationStatus)): \(message)"])
        }
        return message
    }
}
