@testable import KilnAOT
import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import XCTest

/// `NAME_runtime.a`: the C runtime built with the target's C compiler, every function renamed
/// with the artifact's prefix, byte-identical from build to build, linking with `cc` alone.
final class ArtifactRuntimeLibraryTests: XCTestCase {
    static let aarch64 = CPUTarget(triple: "aarch64-unknown-linux-gnu", name: "generic", features: "")

    /// Builds the library for `target` into a fresh directory; returns the directory.
    private func build(prefix: String, target: CPUTarget = .host, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let dir = try RuntimeTestFiles.directory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try ArtifactRuntime.buildLibrary(prefix: prefix, target: target, to: "\(dir)/\(ArtifactRuntime.libraryName(String(prefix.dropLast())))",
                                         environment: environment)
        return dir
    }

    /// The library defines exactly the prefixed names of `ArtifactRuntime.functions` (so the
    /// list misses none, and nothing unprefixed can clash with a second artifact), and leaves
    /// no unprefixed kiln_ name undefined.
    func testHostLibraryDefinesExactlyThePrefixedRuntimeFunctions() throws {
        let dir = try build(prefix: "mlp_")
        let nm = try ToolRunner.required("nm", package: "binutils")
        let library = "\(dir)/mlp_runtime.a"
        XCTAssertEqual(try RuntimeTestFiles.definedGlobals(nm: nm, file: library), ArtifactRuntime.functions.map { "mlp_" + $0 }.sorted())
        let undefined = try ToolRunner.succeed([nm, "-u", library], in: dir)
        XCTAssertFalse(undefined.split(separator: "\n").contains { $0.hasSuffix(" kiln_") || $0.contains(" kiln_") }, undefined)
    }

    func testAarch64LibraryDefinesExactlyThePrefixedRuntimeFunctions() throws {
        _ = try ToolRunner.required("aarch64-linux-gnu-gcc", package: "gcc-aarch64-linux-gnu")
        let dir = try build(prefix: "cnn_", target: Self.aarch64)
        let nm = try ToolRunner.required("aarch64-linux-gnu-nm", package: "binutils-aarch64-linux-gnu")
        XCTAssertEqual(try RuntimeTestFiles.definedGlobals(nm: nm, file: "\(dir)/cnn_runtime.a"), ArtifactRuntime.functions.map { "cnn_" + $0 }.sorted())
        let header = try ToolRunner.succeed([try ToolRunner.required("aarch64-linux-gnu-objdump", package: "binutils-aarch64-linux-gnu"), "-f", "\(dir)/cnn_runtime.a"], in: dir)
        XCTAssertTrue(header.contains("aarch64"), header)
    }

    /// Two builds, in different directories, give the same bytes (host and aarch64).
    func testTwoBuildsAreByteIdentical() throws {
        var targets: [CPUTarget] = [.host]
        if ToolRunner.find("aarch64-linux-gnu-gcc") != nil { targets.append(Self.aarch64) }
        else { print("SKIPPED (aarch64 half): install gcc-aarch64-linux-gnu") }
        for target in targets {
            let one = try build(prefix: "same_", target: target), two = try build(prefix: "same_", target: target)
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(one)/same_runtime.a")), b = try Data(contentsOf: URL(fileURLWithPath: "\(two)/same_runtime.a"))
            XCTAssertEqual(a, b, "two builds of the runtime for \(target.triple) differ")
            XCTAssertFalse(String(decoding: a, as: UTF8.self).contains(one), "the library names its build directory")
        }
    }

    /// A C program calling the prefixed products, pool, fault record, messages and powers links
    /// with `cc main.c lib.a -lm -lpthread`, needs nothing beyond libc, libm and pthreads, and
    /// computes the same bytes on 1 and 3 threads as on one per CPU.
    func testHostLibraryLinksWithCcAloneAndComputesOnAnyThreadCount() throws {
        let dir = try build(prefix: "t1_")
        try RuntimeDriver.source.write(toFile: "\(dir)/main.c", atomically: false, encoding: .utf8)
        let cc = try ToolRunner.required("cc", package: "gcc")
        try ToolRunner.succeed([cc, "-O1", "-DPREFIX=t1_", "main.c", "t1_runtime.a", "-lm", "-lpthread", "-o", "main"], in: dir)
        if let ldd = ToolRunner.find("ldd") {
            let libs = try ToolRunner.succeed([ldd, "\(dir)/main"], in: dir).split(separator: "\n")
                .map { $0.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? "" }
            for lib in libs {
                XCTAssertTrue(["linux-vdso", "libc.so", "libm.so", "libpthread.so", "ld-linux", "/lib64/ld-linux"].contains { lib.hasPrefix($0) }, "the program needs \(lib)")
            }
        }
        var hashes: Set<String> = []
        for threads in [1, 3, 0] {
            let out = try ToolRunner.succeed(["\(dir)/main", "\(threads)"], in: dir)
            XCTAssertEqual(RuntimeDriver.value(out, "failures"), "0", out)
            let expectedThreads = threads > 0 ? threads : min(64, ProcessInfo.processInfo.activeProcessorCount)
            XCTAssertEqual(RuntimeDriver.value(out, "threads"), "\(expectedThreads)")
            XCTAssertEqual(RuntimeDriver.value(out, "threads after start"), "\(expectedThreads)", "kiln_pool_configure must not resize a started pool")
            XCTAssertEqual(RuntimeDriver.messages(out), RuntimeDriver.messages.indices.map(RuntimeDriver.expected))
            hashes.insert(RuntimeDriver.value(out, "hash") ?? "none")
        }
        XCTAssertEqual(hashes.count, 1, "products differ between thread counts: \(hashes)")
    }

    /// The aarch64 library, linked by aarch64-linux-gnu-gcc, runs under qemu with the same results
    /// on 1 and 3 threads.
    func testAarch64LibraryRunsUnderQemu() throws {
        let gcc = try ToolRunner.required("aarch64-linux-gnu-gcc", package: "gcc-aarch64-linux-gnu")
        let qemu = try ToolRunner.required("qemu-aarch64", package: "qemu-user")
        let dir = try build(prefix: "arm_", target: Self.aarch64)
        try RuntimeDriver.source.write(toFile: "\(dir)/main.c", atomically: false, encoding: .utf8)
        try ToolRunner.succeed([gcc, "-O1", "-DPREFIX=arm_", "main.c", "arm_runtime.a", "-lm", "-lpthread", "-o", "main"], in: dir)
        var hashes: Set<String> = []
        for threads in [1, 3] {
            let out = try ToolRunner.succeed([qemu, "-L", "/usr/aarch64-linux-gnu", "\(dir)/main", "\(threads)"], in: dir)
            XCTAssertEqual(RuntimeDriver.value(out, "failures"), "0", out)
            XCTAssertEqual(RuntimeDriver.value(out, "threads"), "\(threads)")
            XCTAssertEqual(RuntimeDriver.messages(out), RuntimeDriver.messages.indices.map(RuntimeDriver.expected))
            hashes.insert(RuntimeDriver.value(out, "hash") ?? "none")
        }
        XCTAssertEqual(hashes.count, 1, "products differ between thread counts: \(hashes)")
    }

    /// Without aarch64-linux-gnu-gcc on PATH, a clang that can target aarch64 builds the library;
    /// linked by the cross gcc it runs under qemu.
    func testAarch64LibraryBuildsWithClangWhenThereIsNoCrossGcc() throws {
        let clang = try ToolRunner.required("clang", package: "clang")
        let gcc = try ToolRunner.required("aarch64-linux-gnu-gcc", package: "gcc-aarch64-linux-gnu")
        let qemu = try ToolRunner.required("qemu-aarch64", package: "qemu-user")
        let archiver = try ToolRunner.required("llvm-ar", package: "llvm")
        // A PATH holding only clang and llvm-ar.
        let bin = try RuntimeTestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: bin) }
        try FileManager.default.createSymbolicLink(atPath: "\(bin)/clang", withDestinationPath: clang)
        try FileManager.default.createSymbolicLink(atPath: "\(bin)/llvm-ar", withDestinationPath: archiver)
        guard Toolchain.clangWorks("\(bin)/clang", triple: Self.aarch64.triple, environment: ["PATH": bin]) else {
            throw XCTSkip("SKIPPED: clang cannot build for aarch64 here (it needs the aarch64 C library headers: apt-get install libc6-dev-arm64-cross)")
        }
        let dir = try build(prefix: "cl_", target: Self.aarch64, environment: ["PATH": bin])
        let nm = try ToolRunner.required("aarch64-linux-gnu-nm", package: "binutils-aarch64-linux-gnu")
        XCTAssertEqual(try RuntimeTestFiles.definedGlobals(nm: nm, file: "\(dir)/cl_runtime.a"), ArtifactRuntime.functions.map { "cl_" + $0 }.sorted())
        try RuntimeDriver.source.write(toFile: "\(dir)/main.c", atomically: false, encoding: .utf8)
        try ToolRunner.succeed([gcc, "-O1", "-DPREFIX=cl_", "main.c", "cl_runtime.a", "-lm", "-lpthread", "-o", "main"], in: dir)
        let out = try ToolRunner.succeed([qemu, "-L", "/usr/aarch64-linux-gnu", "\(dir)/main", "2"], in: dir)
        XCTAssertEqual(RuntimeDriver.value(out, "failures"), "0", out)
    }

    /// The portable paste, built into a program with `cc -std=c99 -O2`, computes what the library
    /// does, on one thread whatever is asked.
    func testPortablePasteComputesLikeTheLibrary() throws {
        let dir = try RuntimeTestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ArtifactRuntime.portableSource().write(toFile: "\(dir)/paste.c", atomically: false, encoding: .utf8)
        try RuntimeDriver.source.write(toFile: "\(dir)/main.c", atomically: false, encoding: .utf8)
        let cc = try ToolRunner.required("cc", package: "gcc")
        try ToolRunner.succeed([cc, "-std=c99", "-O2", "-DPORTABLE", "main.c", "-lm", "-o", "main"], in: dir)
        let out = try ToolRunner.succeed(["\(dir)/main", "4"], in: dir)
        XCTAssertEqual(RuntimeDriver.value(out, "failures"), "0", out)
        XCTAssertEqual(RuntimeDriver.value(out, "threads"), "1")
        XCTAssertEqual(RuntimeDriver.messages(out), RuntimeDriver.messages.indices.map(RuntimeDriver.expected))
    }

    /// The portable product's vector-typed tile and its plain-loop fallback (for compilers without
    /// GCC's vector types), and the x86 and aarch64 builds, sum every element in the same order:
    /// without contraction into FMAs, all give the same bytes.
    func testPortableProductsGiveTheSameBytesWithPlainLoopsAndOnAarch64() throws {
        let dir = try RuntimeTestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ArtifactRuntime.portableSource().write(toFile: "\(dir)/paste.c", atomically: false, encoding: .utf8)
        try RuntimeDriver.source.write(toFile: "\(dir)/main.c", atomically: false, encoding: .utf8)
        let gcc = try ToolRunner.required("gcc", package: "gcc")
        var hashes: [String: String] = [:]
        for (label, flags) in [("vector", [String]()), ("plain", ["-DKILN_PLAIN_PRODUCTS"])] {
            try ToolRunner.succeed([gcc, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-DPORTABLE"] + flags + ["main.c", "-lm", "-o", label], in: dir)
            let out = try ToolRunner.succeed(["\(dir)/\(label)", "1"], in: dir)
            XCTAssertEqual(RuntimeDriver.value(out, "failures"), "0", out)
            hashes[label] = RuntimeDriver.value(out, "hash")
        }
        if let cross = ToolRunner.find("aarch64-linux-gnu-gcc"),
           let qemu = ToolRunner.find("qemu-aarch64") {
            try ToolRunner.succeed([cross, "-std=c99", "-O2", "-ffp-contract=off", "-DPORTABLE", "main.c", "-lm", "-o", "arm"], in: dir)
            let out = try ToolRunner.succeed([qemu, "-L", "/usr/aarch64-linux-gnu", "\(dir)/arm", "1"], in: dir)
            XCTAssertEqual(RuntimeDriver.value(out, "failures"), "0", out)
            hashes["aarch64"] = RuntimeDriver.value(out, "hash")
        } else {
            print("SKIPPED (aarch64 half): install gcc-aarch64-linux-gnu and qemu-user")
        }
        XCTAssertEqual(Set(hashes.values).count, 1, "\(hashes)")
        XCTAssertNotNil(hashes["vector"])
    }

    /// A foreign triple with no compiler for it is `unavailable`, naming the Debian package.
    func testForeignTripleWithoutACompilerIsUnavailableAndNamesThePackage() throws {
        let empty = try RuntimeTestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let riscv = CPUTarget(triple: "riscv64-unknown-linux-gnu", name: "generic-rv64", features: "")
        assertKilnError(.unavailable, contains: ["riscv64-unknown-linux-gnu", "riscv64-linux-gnu-gcc", "apt-get install gcc-riscv64-linux-gnu"]) {
            try build(prefix: "r_", target: riscv, environment: ["PATH": empty])
        }
        assertKilnError(.unavailable, contains: ["KILN_CC", "'no-such-cc'"]) {
            try build(prefix: "h_", environment: ["PATH": empty, "KILN_CC": "no-such-cc"])
        }
    }

    /// A prefix that is not a C identifier is refused before anything is compiled.
    func testPrefixMustBeACIdentifier() {
        for bad in ["", "1x_", "a b_", "x;_", "é_"] {
            assertKilnError(.invalidArgument, contains: ["prefix"]) { try build(prefix: bad) }
        }
    }

    /// A compiler that fails is an error carrying the end of its output.
    func testCompilerFailureCarriesTheCompilersOutput() throws {
        let cc = try ToolRunner.required("cc", package: "gcc")
        var environment = ProcessInfo.processInfo.environment
        environment["KILN_CC"] = "\(cc) -include /nonexistent/kiln-missing.h"
        assertKilnError(.internal, contains: ["kiln-missing.h", "runtime library"]) {
            try build(prefix: "bad_", environment: environment)
        }
    }

    /// Cross-tool names derived from triples, and triples compared across vendor spellings.
    func testCrossToolNamesFollowDebian() {
        XCTAssertEqual(Toolchain.gnuPrefix("aarch64-unknown-linux-gnu"), "aarch64-linux-gnu")
        XCTAssertEqual(Toolchain.gnuPrefix("aarch64-linux-gnu"), "aarch64-linux-gnu")
        XCTAssertEqual(Toolchain.gnuPrefix("arm-unknown-linux-gnueabihf"), "arm-linux-gnueabihf")
        XCTAssertNil(Toolchain.gnuPrefix("arm64-apple-macosx"))
        XCTAssertTrue(Toolchain.sameTriple("x86_64-unknown-linux-gnu", "x86_64-linux-gnu"))
        XCTAssertTrue(Toolchain.sameTriple("x86_64-pc-linux-gnu", "x86_64-unknown-linux-gnu"))
        XCTAssertFalse(Toolchain.sameTriple("aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"))
    }
}
