import XCTest
import Foundation
import KilnIR
import KilnTestSupport
@testable import KilnC

/// Finding the system C compiler, its failures, and loading what it built.
final class CCompilerTests: XCTestCase {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"

    func testAMissingCompilerIsUnavailableAndSaysWhatToInstall() {
        assertKilnError(.unavailable, contains: ["/nonexistent", "KILN_CC", "apt-get install gcc"]) {
            try CCompiler(environment: ["KILN_CC": "/nonexistent", "PATH": path])
        }
        assertKilnError(.unavailable, contains: ["'cc'", "on PATH", "apt-get install gcc"]) {
            try CCompiler(environment: ["PATH": "/nonexistent-directory"])
        }
    }

    func testKilnCCNamesTheCompilerAndItsExtraArguments() throws {
        let cc = try CCompiler(environment: ["KILN_CC": "cc -DKILN_PROBE=41", "PATH": path])
        XCTAssertTrue(cc.command[0].hasPrefix("/"), "\(cc.command)")
        XCTAssertEqual(Array(cc.command.dropFirst()), ["-DKILN_PROBE=41"])
        let so = try cc.load(source: "__attribute__((visibility(\"default\"))) int probe(void) { return KILN_PROBE + 1; }\n")
        let probe = unsafeBitCast(try so.symbol("probe"), to: (@convention(c) () -> Int32).self)
        XCTAssertEqual(probe(), 42)
    }

    func testACompileErrorKeepsTheFileAndQuotesTheCompiler() throws {
        let e = assertKilnError(.internal, contains: ["failed with status", "kept for inspection", "kiln_does_not_exist"]) {
            try CCompiler().load(source: "int f(void) { return kiln_does_not_exist; }\n")
        }
        let message = try XCTUnwrap(e?.message)
        // The kept file is named in the message; it is still there, with the source.
        let file = try XCTUnwrap(message.split(separator: " ").first { $0.hasSuffix("kernels.c") }.map(String.init))
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "int f(void) { return kiln_does_not_exist; }\n")
        try FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent)
    }

    func testAssemblyIsTheCompilersWithTheSameFlags() throws {
        let asm = try CCompiler().assembly(source: "void scale(float *restrict x, int n) { for (int i = 0; i < n; i++) x[i] *= 2.0f; }\n")
        XCTAssertTrue(asm.contains("scale:"), asm)
        XCTAssertTrue(asm.contains("addps"), "the loop is vectorised (x * 2 is x + x):\n\(asm)")
    }

    func testLoadedObjectsLeaveNoFilesBehind() throws {
        let dir = NSTemporaryDirectory() + "/kiln-c-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try CCompiler().load(source: "__attribute__((visibility(\"default\"))) int answer(void) { return 42; }\n", temporary: dir)
        XCTAssertEqual(unsafeBitCast(try so.symbol("answer"), to: (@convention(c) () -> Int32).self)(), 42)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        assertKilnError(.internal, contains: ["no symbol missing"]) { try so.symbol("missing") }
    }
}
