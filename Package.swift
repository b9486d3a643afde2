// swift-tools-version:6.0
import PackageDescription

// Layers point down this list (see docs/architecture.md): IR <- Passes <- Kernels <- CodegenCPU/CodegenC/CodegenGPU
// <- AOT, IR <- Frontend, all of them <- Runtime <- Kiln <- kiln (CLI); Runtime <- KilnDistributed (MPI).
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "Kiln",
    products: [
        .library(name: "Kiln", targets: ["Kiln"]),
        .executable(name: "kiln", targets: ["KilnCLI"]),
        // Data-parallel training over MPI (Open MPI): its own product, so programs that never
        // run on a cluster link nothing of MPI.
        .library(name: "KilnDistributed", targets: ["KilnDistributed"]),
    ],
    dependencies: [
        // The external packages. TensorFlow's file formats are protobuf messages: generated Swift
        // for protos/*.proto is committed (Sources/Frontend/Interchange/Proto, `make proto`). The `kiln` command
        // and the examples read their flags with swift-argument-parser (help and errors from it).
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
    ],
    targets: [
        // C shims. LLVM's C headers are reached through symlinks in CLLVM/include, so a plain
        // `swift build` needs no -I flags; LLVM 15 only (PoCL loads libLLVM-15 into the process).
        .target(name: "CLLVM", linkerSettings: [.linkedLibrary("LLVM-15")]),
        // OpenBLAS is deliberately NOT linked: it must be dlopen'ed after OPENBLAS_CORETYPE is
        // chosen, or Debian's 0.3.21 picks a slow kernel on this CPU (see Kernels/BLAS.swift).
        .target(name: "COpenBLAS"),
        // The worker pool and the float32 matrix product compiled code calls into (C11 atomics,
        // AVX-512 intrinsics behind a runtime check; no Swift runtime on the hot path).
        .target(name: "CKilnRT"),
        // CRC-32C with the CPU's instruction, for TFRecord files and checkpoints.
        .target(name: "CKilnCRC32C"),
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL"),
        // zlib (zlib1g-dev, a prerequisite of Swift on Linux): GZIP/ZLIB streams for TFRecord and data files.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Open MPI (libopenmpi-dev) and the C functions over it KilnDistributed calls: MPI's
        // handles (MPI_COMM_WORLD, MPI_SUM) are macros Swift cannot import.
        .systemLibrary(name: "COpenMPI", path: "Sources/COpenMPI", pkgConfig: "ompi-c"),
        .target(name: "CKilnMPI", dependencies: ["COpenMPI"]),

        .target(name: "KilnIR", path: "Sources/IR"),
        .target(name: "KilnPasses", dependencies: ["KilnIR"], path: "Sources/Passes"),
        // Element rules and kernel structure, written once against the KernelRenderer interface;
        // the C-style renderer (C99, OpenCL C); the Backend and Executable protocols; native
        // executables and the start of the C runtime (with OpenBLAS) they run on.
        .target(name: "KilnKernels", dependencies: ["KilnIR", "KilnPasses", "CKilnRT", "COpenBLAS"], path: "Sources/Kernels"),
        .target(name: "KilnCPU", dependencies: ["KilnIR", "KilnPasses", "KilnKernels", "CLLVM", "CKilnRT"],
                path: "Sources/CodegenCPU"),
        // The C99 backend: kernels rendered by CStyleRenderer, compiled by the system C compiler
        // into a shared object, loaded with dlopen.
        .target(name: "KilnC", dependencies: ["KilnIR", "KilnPasses", "KilnKernels", "CKilnRT"], path: "Sources/CodegenC"),
        // The OpenCL backend: the same kernels rendered as OpenCL C, the device library (GEMM),
        // contexts, program caches, device memory pools and executables.
        .target(name: "KilnOpenCL", dependencies: ["KilnIR", "KilnPasses", "KilnKernels", "COpenCL"],
                path: "Sources/CodegenGPU"),
        // Ahead-of-time artifacts (`kiln compile`): an object file or one C file, a C header and a
        // Swift wrapper, plus the C runtime built for the target (its sources embedded by the plugin).
        .target(name: "KilnAOT", dependencies: ["KilnIR", "KilnPasses", "KilnKernels", "KilnCPU", "KilnC"], path: "Sources/AOT",
                plugins: ["EmbedSources"]),
        // Embeds CKilnRT's sources into KilnAOT and the peers' bench scripts into kiln.
        .plugin(name: "EmbedSources", capability: .buildTool()),
        .target(name: "KilnFrontend",
                dependencies: ["KilnIR", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                path: "Sources/Frontend"),
        .target(name: "KilnRuntime",
                dependencies: ["KilnIR", "KilnPasses", "KilnKernels", "KilnCPU", "KilnC", "KilnOpenCL", "KilnAOT", "KilnFrontend", "CZlib", "CKilnCRC32C",
                               .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                path: "Sources/Runtime"),
        .target(name: "Kiln", dependencies: ["KilnRuntime", "KilnFrontend", "KilnIR"]),
        // `kiln bench --peers` runs the peers' scripts (scripts/peers, embedded by the plugin).
        .executableTarget(name: "KilnCLI", dependencies: ["Kiln", argumentParser], plugins: ["EmbedSources"]),
        // The MPI world, the fused deterministic allreduce behind HorovodAllreduce, the
        // distributed optimizer, the variable broadcast and sharding (above Runtime).
        .target(name: "KilnDistributed", dependencies: ["KilnRuntime", "KilnFrontend", "KilnIR", "CKilnMPI"], path: "Sources/Distributed"),

        .executableTarget(name: "HelloMatmul", dependencies: ["Kiln", argumentParser], path: "Examples/HelloMatmul"),
        .executableTarget(name: "Counter", dependencies: ["Kiln", argumentParser], path: "Examples/Counter"),
        .executableTarget(name: "Digits", dependencies: ["Kiln", "KilnDistributed", argumentParser], path: "Examples/Digits", resources: [.copy("digits.csv.gz")]),
        // Allreduce bandwidth through Kiln beside a plain MPI_Allreduce loop (run under mpirun).
        .executableTarget(name: "AllreduceBench", dependencies: ["Kiln", "KilnDistributed"], path: "Examples/AllreduceBench"),

        // Assertions every test target shares (test targets cannot depend on each other).
        // The test bundle's environment, set by a C constructor before any test runs (the
        // compiled-code cache off unless KILN_CACHE_DIR is set).
        .target(name: "CKilnTestEnvironment", path: "Tests/CKilnTestEnvironment"),
        .target(name: "KilnTestSupport", dependencies: ["KilnIR", "CKilnTestEnvironment"], path: "Tests/KilnTestSupport"),
        .testTarget(name: "IRTests", dependencies: ["KilnIR", "KilnTestSupport"]),
        .testTarget(name: "PassesTests", dependencies: ["KilnPasses", "KilnIR", "KilnTestSupport"]),
        .testTarget(name: "CodegenCPUTests", dependencies: ["KilnCPU", "KilnKernels", "KilnPasses", "KilnIR", "KilnTestSupport"]),
        .testTarget(name: "CodegenCTests", dependencies: ["KilnC", "KilnKernels", "KilnIR", "CKilnRT", "COpenCL", "KilnTestSupport"]),
        // The backend-generic suites: every case runs on every backend present, with a tally per backend.
        .testTarget(name: "KernelTests", dependencies: ["KilnKernels", "KilnCPU", "KilnC", "KilnOpenCL", "KilnPasses", "KilnIR", "CKilnRT", "KilnTestSupport"]),
        .testTarget(name: "CodegenGPUTests", dependencies: ["KilnOpenCL", "KilnKernels", "KilnPasses", "KilnIR", "COpenCL", "KilnTestSupport"]),
        .testTarget(name: "AOTTests", dependencies: ["KilnAOT", "KilnCPU", "KilnKernels", "KilnPasses", "KilnIR", "CKilnRT", "KilnTestSupport"]),
        .testTarget(name: "FrontendTests", dependencies: ["KilnFrontend", "KilnIR", "KilnTestSupport"]),
        .testTarget(name: "RuntimeTests", dependencies: ["KilnRuntime", "Kiln", "KilnTestSupport"], resources: [.copy("Fixtures")]),
        // Saves checkpoints until CheckpointKillTests kills it (built beside the test bundle).
        .executableTarget(name: "CheckpointKillChild", dependencies: ["Kiln"], path: "Tests/CheckpointKillChild"),
        // Trains data-parallel under mpirun (or alone) for DistributedTests (built beside the test bundle).
        .executableTarget(name: "DistributedWorker", dependencies: ["Kiln", "KilnDistributed"], path: "Tests/DistributedWorker"),
        .testTarget(name: "DistributedTests", dependencies: ["KilnDistributed", "KilnRuntime", "Kiln", "KilnTestSupport"]),
    ]
)

// libFuzzer targets (`make fuzz`), declared only when KILN_FUZZ=1: they link compiler-rt's
// libFuzzer, which exists only in a build with `-Xswiftc -sanitize=fuzzer`, so the plain build
// (`make test`, `make demo`) never sees them. `make fuzz` builds them in .build-fuzz.
if Context.environment["KILN_FUZZ"] == "1" {
    let fuzzTargets = ["FuzzGraphDef", "FuzzGraphDefText", "FuzzNPY", "FuzzCheckpoint", "FuzzTFRecord"]
    package.targets += [
        .target(name: "CLibFuzzer", path: "Sources/Fuzz/CLibFuzzer"),
        .target(name: "KilnFuzzSupport", dependencies: ["KilnRuntime", "KilnFrontend", "KilnIR"], path: "Sources/Fuzz/Support"),
    ]
    for name in fuzzTargets {
        // -parse-as-library: the entry point is the @_cdecl'd `<name>_main`, not top-level code.
        package.targets.append(.executableTarget(name: name, dependencies: ["CLibFuzzer", "KilnFuzzSupport", "KilnRuntime", "KilnFrontend", "KilnIR"],
                                                 path: "Sources/Fuzz/\(name)", swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: name, targets: [name]))
    }
}
