import Foundation
import XCTest
import Kiln

/// `kiln compile` on bad input, as the built binary: each is a clear message on stderr and a
/// non-zero exit (1 for an error in the request, 64 for a command line that cannot be read: a usage error from swift-argument-parser),
/// never a crash, and no artifact is left behind.
final class CompileCommandErrorTests: KilnBinaryTestCase {
    private var frozen: String { Golden.directory.appendingPathComponent("frozen/frozen_mlp.pb").path }

    /// Runs `kiln compile` and checks the exit status and that stderr holds every fragment.
    private func assertFails(_ arguments: [String], status: Int32 = 1, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let out = path("out-\(UUID().uuidString)")
        let r = try run(["compile"] + arguments + (arguments.contains("--out") ? [] : ["--out", out]))
        XCTAssertEqual(r.status, status, "kiln compile \(arguments.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "expected '\(f)' in: \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), r.stderr, file: file, line: line)
        let written = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        XCTAssertTrue(written.isEmpty, "files written despite the error: \(written)", file: file, line: line)
    }

    private let mlp = ["--feed", "x:0=float32[1,784]", "--fetch", "probs:0", "--name", "mlp"]

    func testUnknownFeedOrFetchNamesAreTensorFlowsNotFoundMessage() throws {
        try assertFails([frozen, "--feed", "nope:0=float32[1,784]", "--fetch", "probs:0", "--name", "mlp"],
                        ["feed 'nope:0'", "The name 'nope:0' refers to a Tensor which does not exist. The operation, 'nope', does not exist in the graph."])
        try assertFails([frozen, "--feed", "x:0=float32[1,784]", "--fetch", "y:0", "--name", "mlp"],
                        ["fetch 'y:0'", "The name 'y:0' refers to a Tensor which does not exist. The operation, 'y', does not exist in the graph."])
        try assertFails([frozen, "--feed", "x:0=float32[1,784]", "--fetch", "probs:3", "--name", "mlp"],
                        ["The name 'probs:3' refers to a Tensor which does not exist. The operation, 'probs', exists but only has 1 outputs."])
    }

    func testFeedWithoutAConcreteShapeOrOfAnotherDtypeOrShapeNamesTheFeed() throws {
        try assertFails([frozen, "--feed", "x:0=float32", "--fetch", "probs:0", "--name", "mlp"], ["feed 'x:0' has no concrete shape"])
        try assertFails([frozen, "--feed", "x:0=float32[?,784]", "--fetch", "probs:0", "--name", "mlp"], ["feed 'x:0' has no concrete shape", "'?'"])
        try assertFails([frozen, "--feed", "x:0=float32[-1,784]", "--fetch", "probs:0", "--name", "mlp"], ["feed 'x:0' has no concrete shape"])
        try assertFails([frozen, "--feed", "x:0", "--fetch", "probs:0", "--name", "mlp"], status: 64, ["feed 'x:0' needs a dtype and a concrete shape"])
        try assertFails([frozen, "--feed", "x:0=float32[2,785]", "--fetch", "probs:0", "--name", "mlp"],
                        ["Cannot feed value of shape [2,785] for Tensor 'x:0', which has shape [?,784]"])
        try assertFails([frozen, "--feed", "x:0=int32[2,784]", "--fetch", "probs:0", "--name", "mlp"],
                        ["Cannot feed value of dtype int32 for Tensor 'x:0', which has dtype float32"])
        try assertFails([frozen, "--feed", "x:0=complex64[2,784]", "--fetch", "probs:0", "--name", "mlp"], ["unknown or unsupported dtype 'complex64'"])
        // An unfed placeholder: TensorFlow's message, and the flag that feeds it.
        try assertFails([frozen, "--fetch", "probs:0", "--name", "mlp"], ["You must feed a value for placeholder tensor 'x'", "--feed x=float32[...]"])
    }

    func testUnknownTargetTripleOrCPUIsAnErrorNamingIt() throws {
        try assertFails([frozen] + mlp + ["--target", "sparc9-nowhere-unknown"], ["sparc9-nowhere-unknown"])
        try assertFails([frozen] + mlp + ["--cpu", "no-such-cpu"], ["no-such-cpu"])
        try assertFails([frozen] + mlp + ["--target", "aarch64-linux-gnu", "--cpu", "skylake-avx512"], ["skylake-avx512"])
    }

    func testBadNameEmitOrMissingFlagsAreUsageOrArgumentErrors() throws {
        try assertFails([frozen, "--feed", "x:0=float32[1,784]", "--fetch", "probs:0", "--name", "my-model"], ["artifact name 'my-model'"])
        try assertFails([frozen, "--feed", "x:0=float32[1,784]", "--fetch", "probs:0", "--name", "int"], ["artifact name 'int'"])
        try assertFails([frozen] + mlp + ["--emit", "wasm"], status: 64, ["--emit takes object or c, got 'wasm'"])
        try assertFails([frozen, "--feed", "x:0=float32[1,784]", "--fetch", "probs:0"], status: 64, ["no artifact name"])
        try assertFails([frozen, "--feed", "x:0=float32[1,784]", "--name", "mlp"], status: 64, ["nothing to fetch"])
        try assertFails(mlp, status: 64, ["no graph file given"])
        let r = try run(["compile", frozen] + mlp)
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.stderr.contains("no output directory"), r.stderr)
        try assertFails([path("missing.pb")] + mlp, ["cannot read GraphDef file"])
        try "a file".write(toFile: path("taken"), atomically: true, encoding: .utf8)
        let taken = try run(["compile", frozen] + mlp + ["--out", path("taken")])
        XCTAssertEqual(taken.status, 1)
        XCTAssertTrue(taken.stderr.contains("--out '\(path("taken"))' is a file, not a directory"), taken.stderr)
        let nested = try run(["compile", frozen] + mlp + ["--out", path("taken") + "/sub"])
        XCTAssertEqual(nested.status, 1)
        XCTAssertTrue(nested.stderr.contains("cannot create the output directory"), nested.stderr)
        try assertFails([frozen] + mlp + ["--checkpoint", path("taken")], ["no checkpoint at"])
        try "not a graph".write(toFile: path("junk.pb"), atomically: true, encoding: .utf8)
        try assertFails([path("junk.pb")] + mlp, ["is not a valid binary GraphDef"])
    }

    func testOpsThatRunOnTheHostAreRefusedByName() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [4], name: "x")
        _ = try g.constant(Tensor("label"), name: "caption")
        _ = try g.whereIndices(g.greater(x, g.constant(0 as Float)), name: "positive")
        _ = try g.identity(x, name: "same")
        let file = path("host.pb")
        try g.graphDef().serializedData().write(to: URL(fileURLWithPath: file))
        try assertFails([file, "--feed", "x=float32[4]", "--fetch", "caption", "--name", "host"], ["'caption' (op: Const)", "runs on the host"])
        try assertFails([file, "--feed", "x=float32[4]", "--fetch", "same", "positive", "--name", "host"], ["'positive' (op: Where)"])
        try assertFails([file, "--feed", "x=string[4]", "--fetch", "same", "--name", "host"], ["an artifact cannot take strings"])
    }

    /// y = x * a + b with variables a and b; `savedVariables` go into a Kiln checkpoint.
    private func variablesGraph(_ name: String, saving savedVariables: (Variable, Variable) -> [Variable]) throws -> (meta: String, prefix: String) {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let a = try g.variable(try Tensor(shape: [2], scalars: [Float(2), 3]), name: "a")
        let b = try g.variable(try Tensor(shape: [2], scalars: [Float(5), 7]), name: "b")
        _ = try g.identity(g.add(g.multiply(x, a), b), name: "y")
        _ = try g.assignAdd(a, g.constant(try Tensor(shape: [2], scalars: [Float(1), 1])), name: "bump")
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let prefix = try Saver(graph: g, varList: savedVariables(a, b)).save(sess, prefix: path("\(name)/model.ckpt"))
        return (prefix + ".meta", prefix)
    }

    func testVariablesNeedACheckpointHoldingEveryOneAndNoFetchMayWriteThem() throws {
        let both = try variablesGraph("both") { [$0, $1] }
        try assertFails([both.meta, "--feed", "x=float32[2]", "--fetch", "y", "--name", "vars"],
                        ["the fetches read variable(s) 'a', 'b'", "--checkpoint"])
        try assertFails([both.meta, "--feed", "x=float32[2]", "--fetch", "bump", "--name", "vars", "--checkpoint", both.prefix],
                        ["write variable(s) 'a'"])
        try assertFails([both.meta, "--feed", "x=float32[2]", "--fetch", "y", "--name", "vars", "--checkpoint", path("nowhere/model.ckpt")],
                        ["no checkpoint at"])
        let onlyA = try variablesGraph("only-a") { a, _ in [a] }
        try assertFails([onlyA.meta, "--feed", "x=float32[2]", "--fetch", "y", "--name", "vars", "--checkpoint", onlyA.prefix],
                        ["has no value for variable(s) 'b'"])
        // With every variable, the same command works.
        let ok = try run(["compile", both.meta, "--feed", "x=float32[2]", "--fetch", "y", "--name", "vars", "--checkpoint", both.prefix,
                          "--emit", "c", "--out", path("vars-out")])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}
