// swift-tools-version:5.9
import PackageDescription

// libFuzzer targets for every reader of untrusted bytes (issue 17). Built by `tools/fuzz`, which
// passes `-sanitize=fuzzer,address -parse-as-library` to every module: libFuzzer supplies `main`,
// each executable supplies `LLVMFuzzerTestOneInput` and picks its target from MLXC_FUZZ_TARGET.
// Two executables so the front-end targets build without the runtime (and LLVM codegen).
let package = Package(
    name: "mlxc-fuzzing",
    dependencies: [.package(name: "mlxc", path: "../..")],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        .executableTarget(name: "FrontendFuzz",
                          dependencies: ["FuzzSupport",
                                         .product(name: "MLXCFrontend", package: "mlxc"),
                                         .product(name: "MLXCIR", package: "mlxc")],
                          path: "Sources/FrontendFuzz"),
        .executableTarget(name: "RuntimeFuzz",
                          dependencies: ["FuzzSupport",
                                         .product(name: "MLXCRuntime", package: "mlxc"),
                                         .product(name: "MLXCFrontend", package: "mlxc")],
                          path: "Sources/RuntimeFuzz"),
    ]
)
