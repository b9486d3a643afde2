import Foundation
import XCTest
import KilnTestSupport
import KilnIR
import KilnPasses
import KilnKernels
@testable import KilnC

/// The C backend's compiled-code cache: the second compile of the same function loads the
/// shared object stored by the first (the C compiler does not run) and computes the same; a
/// corrupt cache file is compiled again; another compiler (KILN_CC) is another key.
final class CCodeCacheTests: ScratchDirectoryTestCase {

    func compile(_ backend: CBackend) throws -> (exe: any Executable, results: [Tensor]) {
        var f = try Parser.parse("""
        func @m(%0: f32[300] feed "x", %1: f32[300] feed "y") {
          %2 = mul %0, %1
          %3 = exp %2
          %4 = reduce.sum %3 axes=[0]
          return %3, %4
        }
        """)
        try PassManager.standard().run(&f)
        var options = CompileOptions()
        options.codeCacheRoot = scratch
        let exe = try backend.compile(f, options: options)
        var p = [try Tensor(shape: [300], scalars: (0..<300).map { Float($0) / 300 }), try Tensor(shape: [300], scalars: (0..<300).map { Float($0 % 7) / 7 })]
        return (exe, try exe.run(&p))
    }

    func testASecondCompileLoadsTheSharedObjectFromDisk() throws {
        let first = try compile(try CBackend())
        XCTAssertEqual([first.exe.stats.objectsCompiled, first.exe.stats.objectsFromDisk], [1, 0])
        let second = try compile(try CBackend())
        XCTAssertEqual([second.exe.stats.objectsCompiled, second.exe.stats.objectsFromDisk], [0, 1])
        XCTAssertEqual(second.results, first.results)

        let cDir = scratch.appendingPathComponent("c")
        for name in try FileManager.default.contentsOfDirectory(atPath: cDir.path) where name.hasSuffix(".kobj") {
            let url = cDir.appendingPathComponent(name)
            let bytes = try Data(contentsOf: url)
            try bytes.prefix(bytes.count / 2).write(to: url)
        }
        let third = try compile(try CBackend())
        XCTAssertEqual(third.exe.stats.objectsCompiled, 1, "a truncated cache file must be compiled again")
        XCTAssertEqual(third.results, first.results)
    }

    func testAnotherCompilerCommandIsAnotherEntry() throws {
        _ = try compile(try CBackend())
        // The same compiler spelled with an extra (harmless) argument: a different command line.
        var env = ProcessInfo.processInfo.environment
        env["KILN_CC"] = "cc -w"
        let other = try compile(try CBackend(environment: env))
        XCTAssertEqual(other.exe.stats.objectsCompiled, 1)
    }
}
