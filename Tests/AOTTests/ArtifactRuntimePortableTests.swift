@testable import KilnAOT
import Foundation
import KilnIR
import KilnTestSupport
import XCTest

/// The runtime as pasted into a `--emit c` file: strict C99 that every compiler accepts without a
/// warning, exporting nothing, and computing the same products, faults and powers as the library.
final class ArtifactRuntimePortableTests: XCTestCase {
    /// gcc, clang and the aarch64 cross compiler each build the paste with
    /// `-std=c99 -O2 -Wall -Wextra -Werror`, and the object defines no global symbol.
    func testPortablePasteCompilesStrictC99WithEveryCompilerAndExportsNothing() throws {
        let dir = try RuntimeTestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ArtifactRuntime.portableSource().write(toFile: "\(dir)/paste.c", atomically: false, encoding: .utf8)
        for cc in ["gcc", "clang", "aarch64-linux-gnu-gcc"] {
            let compiler = try ToolRunner.required(cc, package: cc == "clang" ? "clang" : cc == "gcc" ? "gcc" : "gcc-aarch64-linux-gnu")
            try ToolRunner.succeed([compiler, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-c", "paste.c", "-o", "paste-\(cc).o"], in: dir)
            let nm = try ToolRunner.required(cc == "aarch64-linux-gnu-gcc" ? "aarch64-linux-gnu-nm" : "nm", package: "binutils")
            let globals = try RuntimeTestFiles.definedGlobals(nm: nm, file: "\(dir)/paste-\(cc).o")
            XCTAssertEqual(globals, [], "the portable paste must define only static functions (\(cc))")
        }
    }

    /// No intrinsics, threads or atomics reach the paste.
    func testPortablePasteUsesNoThreadsAtomicsOrIntrinsics() throws {
        let dir = try RuntimeTestFiles.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ArtifactRuntime.portableSource().write(toFile: "\(dir)/paste.c", atomically: false, encoding: .utf8)
        let gcc = try ToolRunner.required("gcc", package: "gcc")
        let expanded = try ToolRunner.succeed([gcc, "-std=c99", "-E", "-P", "paste.c"], in: dir)
        for banned in ["pthread_create", "_Atomic", "atomic_load", "atomic_store", "atomic_exchange", "atomic_fetch", "atomic_compare", "_mm512_", "_mm_pause", "__builtin_cpu_supports", "_Thread_local", "immintrin"] {
            XCTAssertFalse(expanded.contains(banned), "the portable paste uses \(banned)")
        }
    }
}
