import FuzzSupport

// libFuzzer calls these two; `tools/fuzz` names the target in MLXC_FUZZ_TARGET.
let frontendTargets = [pteProgramTarget, mlxPayloadTarget, xnnPayloadTarget, ptdTarget, irTextTarget]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    FuzzDriver.initialize(frontendTargets)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzDriver.testOneInput(data, count)
}

@_cdecl("FrontendFuzz_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.main(argc, argv, fuzzerTestOneInput)
}
