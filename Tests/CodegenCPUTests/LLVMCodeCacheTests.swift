import Foundation
import XCTest
import KilnTestSupport
import KilnIR
import KilnPasses
import KilnKernels
@testable import KilnCPU

/// The LLVM backend's compiled-code cache: a second compile of the same function (its first
/// executable gone, so the JIT holds none of its code) loads every module's object from disk,
/// compiles nothing and computes the same; while the first is alive the code is shared; a
/// corrupt cache file is recompiled; another function misses.
final class LLVMCodeCacheTests: ScratchDirectoryTestCase {

    func function(scale: String = "2.0") throws -> Function {
        var f = try Parser.parse("""
        func @c(%0: f32[64,48] feed "a", %1: f32[48,40] feed "b") {
          %2 = dot %0, %1 transpose_a=false transpose_b=false
          %3 = reduce.sum %2 axes=[1]
          %4 = constant f32[] \(scale)
          %5 = broadcast %4 shape=[64,40] dims=[]
          %6 = mul %2, %5
          %7 = exp %6
          %8 = reduce.max %7 axes=[0]
          %9 = tanh %0
          %10 = reduce.sum %9 axes=[0]
          return %3, %8, %10
        }
        """)
        try PassManager.standard().run(&f)
        return f
    }

    var parameters: [Tensor] {
        get throws {
            func seq(_ n: Int, _ k: Int) -> [Float] { (0..<n).map { Float(($0 * 31 + k) % 97) / 970 - 0.05 } }
            return [try Tensor(shape: [64, 48], scalars: seq(64 * 48, 1)), try Tensor(shape: [48, 40], scalars: seq(48 * 40, 2))]
        }
    }

    func run(_ exe: any Executable) throws -> [Tensor] {
        var p = try parameters
        return try exe.run(&p)
    }

    func options(shards: Int) -> CompileOptions {
        var o = CompileOptions(shards: shards)
        o.codeCacheRoot = scratch
        return o
    }

    func testASecondCompileLoadsEveryObjectFromDiskAndComputesTheSame() throws {
        let f = try function()
        for shards in [1, 3] {
            var first: (any Executable)? = try LLVMBackend().compile(f, options: options(shards: shards))
            XCTAssertEqual(first!.stats.objectsCompiled, first!.stats.shards, "\(shards) shards")
            XCTAssertEqual(first!.stats.objectsFromDisk, 0)
            let want = try run(first!)
            first = nil   // unloads its code: the next compile cannot share it

            let second = try LLVMBackend().compile(f, options: options(shards: shards))
            XCTAssertEqual(second.stats.objectsCompiled, 0, "\(shards) shards: the second compile compiled again")
            XCTAssertEqual(second.stats.objectsFromDisk, second.stats.shards)
            XCTAssertTrue(second.stats.compiledNothing)
            let got = try run(second)
            XCTAssertEqual(got.count, want.count)
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w) }
        }
    }

    func testALiveExecutableSharesItsCodeWithTheSameFunction() throws {
        let f = try function()
        let first = try LLVMBackend().compile(f, options: options(shards: 2))
        let second = try LLVMBackend().compile(f, options: options(shards: 2))
        XCTAssertEqual(second.stats.objectsShared, second.stats.shards)
        XCTAssertEqual(second.stats.objectsCompiled + second.stats.objectsFromDisk, 0)
        let want = try run(first)
        withExtendedLifetime(first) {}
        // The first executable gone, the second still runs the shared code.
        XCTAssertEqual(try run(second), want)
    }

    func testAnotherFunctionMissesAndACorruptFileIsRecompiled() throws {
        let f = try function()
        var exe: (any Executable)? = try LLVMBackend().compile(f, options: options(shards: 1))
        let want = try run(exe!)
        exe = nil
        let other = try LLVMBackend().compile(try function(scale: "3.0"), options: options(shards: 1))
        XCTAssertEqual(other.stats.objectsCompiled, 1, "a different constant is different code")
        XCTAssertNotEqual(try run(other)[1], want[1])

        let llvmDir = scratch.appendingPathComponent("llvm")
        for name in try FileManager.default.contentsOfDirectory(atPath: llvmDir.path) where name.hasSuffix(".kobj") {
            let url = llvmDir.appendingPathComponent(name)
            var bytes = try Data(contentsOf: url)
            bytes[bytes.count / 2] ^= 0xff
            try bytes.write(to: url)
        }
        let again = try LLVMBackend().compile(f, options: options(shards: 1))
        XCTAssertEqual(again.stats.objectsCompiled, 1, "a corrupt cache file must be recompiled, not loaded")
        XCTAssertEqual(try run(again), want)
    }

    func testAnIntactFileTheJITRefusesIsRecompiled() throws {
        let f = try function()
        var exe: (any Executable)? = try LLVMBackend().compile(f, options: options(shards: 2))
        let want = try run(exe!)
        exe = nil
        // Whole, checksummed entries whose payload is no object file.
        let cache = try XCTUnwrap(CodeCache.shared(kind: "llvm", root: scratch))
        for name in try FileManager.default.contentsOfDirectory(atPath: cache.files.directory.path) where name.hasSuffix(".kobj") {
            cache.store(String(name.dropLast(".kobj".count)), Array("not an ELF object".utf8))
        }
        let again = try LLVMBackend().compile(f, options: options(shards: 2))
        XCTAssertEqual(again.stats.objectsCompiled, 2)
        XCTAssertEqual(try run(again), want)
        exe = nil
        withExtendedLifetime(again) {}
    }

    func testCodeThatRunsOnceIsOptimisedLessUnderItsOwnKeyAndComputesTheSame() throws {
        // Elementwise work only (as an initializer's fills are): no sum whose order the pipeline may change.
        var f = try Parser.parse("""
        func @i(%0: f32[1000] feed "x") {
          %1 = exp %0
          %2 = tanh %1
          %3 = mul %2, %0
          return %3
        }
        """)
        try PassManager.standard().run(&f)
        var once = options(shards: 1)
        once.runsOnce = true
        let quick = try LLVMBackend().compile(f, options: once)
        let full = try LLVMBackend().compile(f, options: options(shards: 1))
        XCTAssertEqual([quick.stats.objectsCompiled, full.stats.objectsCompiled], [1, 1], "the one-run pipeline's code and the kernel pipeline's are different entries")
        var p1 = [try Tensor(shape: [1000], scalars: (0..<1000).map { Float($0) / 250 - 2 })], p2 = p1
        XCTAssertEqual(try quick.run(&p1), try full.run(&p2))
    }

    func testNoCacheRootCompilesEveryTime() throws {
        let f = try function()
        var o = CompileOptions(shards: 1)
        o.codeCacheRoot = nil
        let a = try LLVMBackend().compile(f, options: o)
        let b = try LLVMBackend().compile(f, options: o)
        XCTAssertEqual([a.stats.objectsCompiled, b.stats.objectsCompiled], [1, 1])
        XCTAssertEqual(try run(a), try run(b))
    }
}
