import Foundation
import XCTest
import Kiln

/// `kiln debug`, as the built binary: `--until has_inf_or_nan` prints the matching tensors one
/// per line (the Log inside the fused kernel first), and a scripted `tfdbg>` session on stdin
/// finds it too.
final class DebugCommandTests: KilnBinaryTestCase {
    /// A GraphDef whose loss is NaN through scope/Log of a zero, fused with what follows.
    func writeGraph() throws -> (graph: String, feed: String) {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([2, 3]), name: "x")
        let y = try g.nameScope("scope") { () -> Output in
            try g.add(try g.multiply(try g.log(x), try g.constant(Tensor(0 as Float), name: "zero")), try g.constant(Tensor(1 as Float), name: "one"))
        }
        _ = try g.reduceSum(y, name: "loss")
        let graph = path("nan.pbtxt"), feed = path("x.npy")
        try g.graphDefText().write(toFile: graph, atomically: true, encoding: .utf8)
        try NPY.write(try Tensor(shape: [2, 3], scalars: [1, 2, 0, 4, 5, 6] as [Float]), path: feed)
        return (graph, feed)
    }

    func testUntilHasInfOrNaNPrintsTheLogFirst() throws {
        let (graph, feed) = try writeGraph()
        let r = try run(["debug", graph, "--feed", "x:0=\(feed)", "--fetch", "loss:0", "--until", "has_inf_or_nan"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.map { String($0.prefix(while: { $0 != " " })) }, ["scope/Log:0", "scope/mul:0", "scope/add:0", "loss:0"], r.stdout)
        // Nothing but the inputs in the scratch directory: the debugger wrote no dump.
        XCTAssertEqual(try files(), ["nan.pbtxt", "x.npy"])
    }

    func testAScriptedPromptSessionFindsTheLog() throws {
        let (graph, feed) = try writeGraph()
        let script = "help\nrun -f has_inf_or_nan\nni scope/Log\npt scope/Log:0[0]\nexit\n"
        let r = try run(["debug", graph, "--feed", "x:0=\(feed)", "--fetch", "loss:0"], input: script)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("tfdbg> "), r.stdout)
        XCTAssertTrue(r.stdout.contains("4 tensor(s) matched has_inf_or_nan"), r.stdout)
        XCTAssertTrue(r.stdout.contains("\nscope/Log:0  Log  float32[2,3]  #0"), r.stdout)
        // An imported node was made by the importer, not by user code.
        XCTAssertTrue(r.stdout.contains("Created at: unknown"), r.stdout)
        XCTAssertTrue(r.stdout.contains("array([0., 0.6931472, -inf])"), r.stdout)
    }

    func testAnUnknownFilterIsAnError() throws {
        let (graph, feed) = try writeGraph()
        let r = try run(["debug", graph, "--feed", "x:0=\(feed)", "--fetch", "loss:0", "--until", "bogus"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("no tensor filter named 'bogus'"), r.stderr)
    }
}
