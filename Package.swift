// swift-tools-version:5.9
import PackageDescription

// LLVM 19 lives here on Debian (`llvm-19-dev`, installed by tools/setup). Keep the path in this one place.
let llvmPrefix = "/usr/lib/llvm-19"
let llvmSwift: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-I\(llvmPrefix)/include"])]
let llvmLink: [LinkerSetting] = [.unsafeFlags(["-L\(llvmPrefix)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(llvmPrefix)/lib"])]

let package = Package(
    name: "mlxc",
    products: [
        .executable(name: "mlxc", targets: ["mlxc"]),
        // Libraries for packages that build on mlxc by path (tools/fuzzing: the libFuzzer targets).
        .library(name: "MLXCIR", targets: ["MLXCIR"]),
        .library(name: "MLXCFrontend", targets: ["MLXCFrontend"]),
        .library(name: "MLXCRuntime", targets: ["MLXCRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Lock-free counters for the kernel thread pool (spinning workers keep launch latency in microseconds).
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CLLVM", path: "Sources/CLLVM"),
        .target(name: "LLVMKit", dependencies: ["CLLVM"], path: "Sources/LLVMKit",
                swiftSettings: llvmSwift, linkerSettings: llvmLink),
        .target(name: "MLXCIR", path: "Sources/MLXCIR"),
        .target(name: "MLXCFrontend", dependencies: ["MLXCIR"], path: "Sources/MLXCFrontend"),
        .target(name: "MLXCPasses", dependencies: ["MLXCIR"], path: "Passes"),
        .target(name: "MLXCCodegen", dependencies: ["MLXCIR", "LLVMKit"], path: "Sources/MLXCCodegen",
                swiftSettings: llvmSwift, linkerSettings: llvmLink),
        .target(name: "MLXCRuntime", dependencies: ["MLXCIR", "MLXCFrontend", "MLXCCodegen", "LLVMKit", "MLXCPasses",
                                                 .product(name: "Atomics", package: "swift-atomics")], path: "Runtime",
                swiftSettings: llvmSwift, linkerSettings: llvmLink),
        .executableTarget(
            name: "mlxc",
            dependencies: [
                "MLXCIR", "MLXCFrontend", "MLXCPasses", "MLXCRuntime", "MLXCCodegen", "LLVMKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/mlxc",
            swiftSettings: llvmSwift, linkerSettings: llvmLink),
        .testTarget(name: "MLXCFrontendTests", dependencies: ["MLXCFrontend", "MLXCIR"],
                    path: "Tests/MLXCFrontendTests", resources: []),
        .testTarget(name: "MLXCIRTests", dependencies: ["MLXCIR"], path: "Tests/MLXCIRTests"),
        // IR-text helpers the pass and runtime tests share.
        .target(name: "IRTestSupport", path: "Tests/IRTestSupport"),
        .testTarget(name: "PassesTests", dependencies: ["MLXCPasses", "MLXCIR", "IRTestSupport"], path: "Tests/PassesTests"),
        .testTarget(name: "LLVMKitTests", dependencies: ["LLVMKit"], path: "Tests/LLVMKitTests",
                    swiftSettings: llvmSwift, linkerSettings: llvmLink),
        .testTarget(name: "RuntimeTests", dependencies: ["MLXCRuntime", "MLXCFrontend", "MLXCIR", "MLXCCodegen", "LLVMKit", "MLXCPasses", "IRTestSupport"],
                    path: "Tests/RuntimeTests", swiftSettings: llvmSwift, linkerSettings: llvmLink),
        .testTarget(name: "CLITests", dependencies: ["mlxc"], path: "Tests/CLITests"),
        .testTarget(name: "TokenizerTests", dependencies: ["MLXCRuntime"], path: "Tests/TokenizerTests",
                    swiftSettings: llvmSwift, linkerSettings: llvmLink),
    ]
)
