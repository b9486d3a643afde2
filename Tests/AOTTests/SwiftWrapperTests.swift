import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import XCTest
@testable import KilnAOT

/// NAME.swift: compiled with swiftc against NAME.h and the C artifact's object, its typed
/// accessors carry the feeds in and the fetches out, `run()` throws the artifact's error, and a
/// feed of the wrong size is refused before the C code could read past it.
final class SwiftWrapperTests: XCTestCase {
    /// Feeds of every dtype (one named `in`, a Swift keyword, one `swap`, a function the wrapper calls), a checked gather, a product,
    /// fetches of every dtype (one a feed passed through).
    let text = """
    func @m(%0: f32[6,4] feed "p", %1: i32[3,2] feed "i", %2: f64[3] feed "d", %3: i64[] feed "n", %4: u8[2] feed "swap", %5: bool[2] feed "in") {
      %6 = check.index %1 bounds=[6] node="emb/lookup" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
      %7 = gather %0, %6 axis=0 batch_dims=0
      %8 = reduce.sum %2 axes=[0]
      %9 = mul %3, %3
      %10 = cast %4 to=i32
      %11 = dot %0, %0 transpose_a=true transpose_b=false
      return %7, %8, %9, %10, %5, %11
    }
    """

    func testWrapperNamesAndTypesEachFeedAndFetch() throws {
        let spec = try CArtifactHarness.spec(text, name: "tiny_net")
        let source = SwiftWrapper.source(try ArtifactLayout(spec: spec, emit: .c, description: CArtifact.description))
        for line in ["public struct TinyNet {",
                     "    public var p: [Swift.Float] = [Swift.Float](repeating: 0, count: 24)",
                     "    public var i: [Swift.Int32] = [Swift.Int32](repeating: 0, count: 6)",
                     "    public var d: [Swift.Double] = [Swift.Double](repeating: 0, count: 3)",
                     "    public var n: [Swift.Int64] = [Swift.Int64](repeating: 0, count: 1)",
                     "    public var swap: [Swift.UInt8] = [Swift.UInt8](repeating: 0, count: 2)",
                     "    public var `in`: [Swift.Bool] = [Swift.Bool](repeating: false, count: 2)",
                     "    public private(set) var out0: [Swift.Float] = [Swift.Float](repeating: 0, count: 24)",
                     "    public private(set) var out4: [Swift.Bool] = [Swift.Bool](repeating: false, count: 2)",
                     "#if canImport(CTinyNet)",
                     "    public mutating func run() throws {",
                     "    public static func setThreads(_ threads: Swift.Int) -> Swift.Int {"] {
            XCTAssertTrue(source.contains(line + "\n"), "missing \(line) in\n\(source)")
        }
        XCTAssertEqual(SwiftWrapper.typeName("mnist_mlp"), "MnistMlp")
        XCTAssertEqual(SwiftWrapper.typeName("MNIST"), "MNIST")
        XCTAssertEqual(SwiftWrapper.typeName("self"), "SelfArtifact")
        // A fetch with a feed's identifier, and identifiers naming the type's own members.
        let (feeds, fetches) = SwiftWrapper.memberNames(feeds: ["x", "run", "default", "Swift"], fetches: ["x", "out"])
        XCTAssertEqual(feeds, ["x", "run_2", "`default`", "Swift_2"])
        XCTAssertEqual(fetches, ["x_2", "out"])
    }

    /// main.swift sets the feeds, runs, prints the fetches; then a bad index and a short feed.
    func testWrapperOverTheCFileCompilesWithSwiftcAndRuns() throws {
        try XCTSkipUnless(ToolRunner.find("cc") != nil, "needs a C compiler: apt-get install gcc")
        try XCTSkipUnless(ToolRunner.find("swiftc") != nil, "needs swiftc (the Swift toolchain) on PATH")
        let dir = try CArtifactHarness.directory(self)
        _ = try AheadOfTime.compile(try CArtifactHarness.spec(text, name: "tiny_net"), emit: .c, to: dir)
        try ToolRunner.succeed(["cc", "-O2", "-std=c99", "-c", "tiny_net.c", "-o", "tiny_net.o"], in: dir)
        try assertProgramRuns(dir, linking: ["tiny_net.o"], threads: 1)
    }

    /// The same main.swift over the object artifact and its runtime library, which splits work
    /// on a pool of the threads asked for.
    func testWrapperOverTheObjectCompilesWithSwiftcAndRuns() throws {
        try XCTSkipUnless(ToolRunner.find("cc") != nil, "needs a C compiler: apt-get install gcc")
        try XCTSkipUnless(ToolRunner.find("swiftc") != nil, "needs swiftc (the Swift toolchain) on PATH")
        let dir = try CArtifactHarness.directory(self)
        let files = try AheadOfTime.compile(try CArtifactHarness.spec(text, name: "tiny_net"), emit: .object, to: dir)
        let library = try XCTUnwrap(files.library, "the product calls the runtime")
        try assertProgramRuns(dir, linking: ["tiny_net.o", (library as NSString).lastPathComponent, "-lpthread"], threads: 4)
    }

    func assertProgramRuns(_ dir: String, linking: [String], threads: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        try """
            print(TinyNet.setThreads(4))
            var net = TinyNet()
            net.p = (0..<24).map { Float($0) }
            net.i = [5, 0, 1, 2, 3, 4]
            net.d = [0.5, 0.25, 2]
            net.n = [-7]
            net.swap = [255, 3]
            net.in = [true, false]
            try net.run()
            print(net.out0[0..<4].map { String($0) }.joined(separator: " "), net.out1, net.out2, net.out3, net.out4, net.out5[0])
            net.i = [0, 5, 1, 6, 2, -1]
            do {
                try net.run()
                print("no error")
            } catch let e as TinyNet.Error {
                print(e.code, e.message)
            }
            net.i = [1]
            do {
                try net.run()
                print("no error")
            } catch let e as TinyNet.Error {
                print(e.code, e.message)
            }
            print(TinyNet.arenaBytes >= 0)
            """.write(toFile: "\(dir)/main.swift", atomically: true, encoding: .utf8)
        try ToolRunner.succeed(["swiftc", "-import-objc-header", "tiny_net.h", "main.swift", "tiny_net.swift"] + linking + ["-o", "prog"], in: dir)
        XCTAssertEqual(try ToolRunner.succeed(["./prog"], in: dir), """
            \(threads)
            20.0 21.0 22.0 23.0 [2.75] [49] [255, 3] [true, false] 880.0
            3 indices[1,1] = 6 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')
            3 feed 1 'i:0' (i) has 1 elements, tiny_net takes 6
            true

            """, file: file, line: line)
    }
}
