import Foundation
import MLXCIR
import MLXCRuntime

/// How the speech commands (`transcribe`, `run --audio`) load each method of a model's programs: compiled (on the
/// reference executor with --reference), with --threads and the kernel cache options — one definition for the
/// Whisper, Voxtral, Voxtral Realtime and Parakeet paths (a nil method: the program's forward).
func speechProgramLoader(reference: Bool, threads: Int?, cache: CacheOptions) throws
    -> (String, String?) throws -> (any ProgramExecutor, Graph) {
    var jitOptions = JITProgram.Options()
    if let threads { jitOptions.threads = threads }
    try cache.apply(to: &jitOptions)
    return { path, method in
        let loaded = try ProgramLoader.load(path, method: method, engine: reference ? .reference : .jit, options: jitOptions,
                                            mlxcVersion: MLXC.version)
        return (loaded.executor, loaded.graph)
    }
}
