import Foundation
import XCTest
@testable import KilnAOT
import KilnCPU
import KilnIR
import KilnTestSupport

/// `AheadOfTime.compile` with `--emit object`: the files it writes link with the documented line
/// (`cc main.c DIR/NAME.o DIR/NAME_runtime.a -lm -lpthread`) into a program that includes
/// `NAME.h`, and run as in-process.
final class ObjectCompileTests: XCTestCase {
    func testCompiledFilesLinkWithTheHeaderAndTheDocumentedLine() throws {
        let program = try ObjectProgram(ObjectRuntimeTests.products, name: "mlp", build: false)
        defer { program.remove() }
        let dir = program.directory.appendingPathComponent("out").path
        let files = try AheadOfTime.compile(program.layout.spec, emit: .object, to: dir)
        XCTAssertEqual(files.code, dir + "/mlp.o")
        XCTAssertEqual(files.library, dir + "/mlp_runtime.a", "products call the runtime")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: files.code)), Data(program.object), "the object ObjectArtifact wrote")

        var source = ObjectProgram.program(program.layout, inputs: program.inputs, threads: 2, header: true)
        // The header's figures are the layout's.
        source += """
        _Static_assert(MLP_FEED_COUNT == 4 && MLP_FETCH_COUNT == 3, "counts");
        _Static_assert(MLP_ARENA_BYTES == \(program.layout.arenaBytes), "arena");
        _Static_assert(MLP_FEED0_BYTES == 64 * 48 * 4 && MLP_FETCH1_BYTES == 9 * 5 * 8, "bytes");

        """
        let main = program.directory.appendingPathComponent("main.c").path
        try source.write(toFile: main, atomically: true, encoding: .utf8)
        let linked = try ToolRunner.run(["cc", "-I", dir, main, files.code, files.library!, "-lm", "-lpthread", "-o", program.executable])
        XCTAssertEqual(linked.status, 0, linked.output)
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        XCTAssertEqual(result.threads, 2)
        try assertClose(result.fetches, try program.expected(), tolerance: ObjectRuntimeTests.productTolerance)

        // An object that calls no runtime gets no library, and a stale one of the same name goes.
        let plain = try ObjectProgram(ObjectArtifactTests.elementwise, name: "mlp", build: false)
        defer { plain.remove() }
        let again = try AheadOfTime.compile(plain.layout.spec, emit: .object, to: dir)
        XCTAssertNil(again.library)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/mlp_runtime.a"))
    }
}
