import ArgumentParser
import Foundation
import MLXCCodegen
import MLXCRuntime

/// The compiled-kernel cache, shared by the commands that compile a program (`run`, `bench`).
struct CacheOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Keep compiled kernels here (default: $MLXC_CACHE_DIR, else $XDG_CACHE_HOME/mlxc, else ~/.cache/mlxc).",
                               valueName: "dir"))
    var cacheDir: String?

    @Flag(help: "Compile every kernel with LLVM; neither read nor write the kernel cache.")
    var noCache = false

    /// The cache to use, or nil. A directory given on the command line that cannot be used is an
    /// error; the default one that cannot be created only turns caching off (said on a terminal; a
    /// log or a pipe keeps its one error line, as with a read-only home in CI).
    func cache() throws -> KernelCache? {
        guard !noCache else { return nil }
        if let cacheDir { return try KernelCache(root: cacheDir, salt: MLXC.version) }
        do {
            return try KernelCache(root: KernelCache.defaultRoot(), salt: MLXC.version)
        } catch {
            if isatty(2) != 0 {
                FileHandle.standardError.write(Data("mlxc: warning: \(error); kernels are compiled without a cache\n".utf8))
            }
            return nil
        }
    }

    /// JIT options with the cache, and a progress line for a slow cold compile when stderr is a
    /// terminal (a log or a pipe gets only what it asked for: errors stay one line).
    func apply(to options: inout JITProgram.Options) throws {
        options.kernelCache = try cache()
        if isatty(2) != 0 {
            options.kernelCache?.onWritesOff = { FileHandle.standardError.write(Data("mlxc: warning: \($0)\n".utf8)) }
            options.compileProgress = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        }
    }
}
