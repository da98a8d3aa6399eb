import FuzzSupport

// libFuzzer calls these two; `tools/fuzz` names the target in MLXC_FUZZ_TARGET.
let runtimeTargets = [tokenizerJSONTarget, tokenizeTarget, chatTemplateTarget, artifactTarget, audioTarget]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    FuzzDriver.initialize(runtimeTargets)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzDriver.testOneInput(data, count)
}

@_cdecl("RuntimeFuzz_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.main(argc, argv, fuzzerTestOneInput)
}
