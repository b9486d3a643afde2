import Foundation
import XCTest
import Kiln
import KilnPasses
import KilnCPU
import KilnTestSupport

/// The driver's frozen function, before any code is written: its parameters are exactly the
/// feeds, no variable is left, and the reference evaluator computes what Session.run does.
final class AheadOfTimeFreezingTests: ScratchDirectoryTestCase {
    func testFeedFlagsParseTensorFlowDtypeNamesAndConcreteShapes() throws {
        XCTAssertEqual(try ArtifactCompiler.parseFeed("x:0=float32[2,784]").type, TensorType(.float32, [2, 784]))
        XCTAssertEqual(try ArtifactCompiler.parseFeed("scope/x=double[ 3 , 1 ]").type, TensorType(.float64, [3, 1]))
        XCTAssertEqual(try ArtifactCompiler.parseFeed("s=int64[]").type, TensorType(.int64, []))
        XCTAssertEqual(try ArtifactCompiler.parseFeed("e=bool[0,4]").type, TensorType(.bool, [0, 4]))
        XCTAssertEqual(try ArtifactCompiler.parseFeed("u=uint8[5]").name, "u")
        assertKilnError(.invalidArgument, contains: ["feed 'x' has no concrete shape"]) { _ = try ArtifactCompiler.parseFeed("x=float32") }
        assertKilnError(.invalidArgument, contains: ["feed 'x' has no concrete shape", "'None'"]) { _ = try ArtifactCompiler.parseFeed("x=float32[None,2]") }
        assertKilnError(.invalidArgument, contains: ["feed 'x' has no concrete shape"]) { _ = try ArtifactCompiler.parseFeed("x=float32[1,2") }
        assertKilnError(.invalidArgument, contains: ["feed 'x' has no concrete shape", "dimension ''"]) { _ = try ArtifactCompiler.parseFeed("x=float32[1,,2]") }
        assertKilnError(.invalidArgument, contains: ["feed 'x' has no concrete shape", "'2.5'"]) { _ = try ArtifactCompiler.parseFeed("x=float32[2.5]") }
        XCTAssertEqual(try ArtifactCompiler.parseFeed("h=half[2]").type, TensorType(.float16, [2]))
        XCTAssertEqual(try ArtifactCompiler.parseFeed("b=bfloat16[2]").type, TensorType(.bfloat16, [2]))
        assertKilnError(.invalidArgument, contains: ["unsupported dtype 'complex64'"]) { _ = try ArtifactCompiler.parseFeed("x=complex64[2]") }
        assertKilnError(.invalidArgument, contains: ["NAME=DTYPE"]) { _ = try ArtifactCompiler.parseFeed("=float32[2]") }
        assertKilnError(.invalidArgument, contains: ["too large"]) { _ = try ArtifactCompiler.parseFeed("x=float32[9223372036854775807,2]") }
    }

    func testKilnCheckpointVariablesBecomeConstantsAndTheFunctionTakesOnlyTheFeeds() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let w = try g.variable(try Tensor(shape: [3, 2], scalars: (0..<6).map { Float($0) / 4 - 0.5 }), name: "dense/w")
        let b = try g.variable(try Tensor(shape: [2], scalars: [Float(0.25), -1]), name: "dense/b")
        let y = try g.identity(g.relu(g.add(g.matmul(x, w), b)), name: "y")
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        // Values the initialisers did not give, so the constants must come from the checkpoint.
        try sess.setValue(try Tensor(shape: [2], scalars: [Float(0.5), 0.75]), of: b)
        let prefix = try Saver(graph: g).save(sess, prefix: path("model.ckpt"))

        let spec = try ArtifactCompiler.spec(graph: g, feeds: [("x", TensorType(.float32, [4, 3]))], fetches: ["y:0", "x"],
                                             checkpoint: try CheckpointReader(prefix: prefix), name: "dense", target: .host, origin: "test")
        XCTAssertEqual(spec.function.params.map(\.kind), [.feed])
        XCTAssertEqual(spec.function.params.map(\.type), [TensorType(.float32, [4, 3])])
        XCTAssertFalse(spec.function.body.contains { $0.op == .varRead || $0.op == .varWrite })
        XCTAssertEqual(spec.feeds.map(\.identifier), ["x"])
        XCTAssertEqual(spec.fetches.map(\.identifier), ["y", "x"])
        XCTAssertEqual(spec.fetches.map(\.type), [TensorType(.float32, [4, 2]), TensorType(.float32, [4, 3])])
        let input = try Tensor(shape: [4, 3], scalars: (0..<12).map { Float($0) / 3 - 2 })
        let got = try ReferenceEvaluator.run(spec.function, parameters: [input]).results
        XCTAssertEqual(got, try sess.run([y, x], feeds: [x: input]))
    }

    func testTextGraphDefsLoadAndVariablesWithoutACheckpointKeyUseTheirOpNames() throws {
        let g = Graph()
        let x = try g.placeholder(.float64, shape: [2], name: "x")
        let v = try g.variable(try Tensor(shape: [2], scalars: [Double(1), 2]), name: "scale")
        _ = try g.identity(g.multiply(x, v), name: "y")
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let prefix = try Saver(graph: g).save(sess, prefix: path("text.ckpt"), writeMetaGraph: false)
        try g.graphDefText().write(toFile: path("graph.pbtxt"), atomically: true, encoding: .utf8)
        let (loaded, keys) = try ArtifactCompiler.loadGraph(path: path("graph.pbtxt"))
        XCTAssertTrue(keys.isEmpty)
        let spec = try ArtifactCompiler.spec(graph: loaded, feeds: [("x", TensorType(.float64, [2]))], fetches: ["y"],
                                             checkpoint: try CheckpointReader(prefix: prefix), name: "text", target: .host, origin: "test")
        let input = try Tensor(shape: [2], scalars: [Double(3), -4])
        XCTAssertEqual(try ReferenceEvaluator.run(spec.function, parameters: [input]).results, [try Tensor(shape: [2], scalars: [Double(3), -8])])
        // A checkpoint variable of another shape is an error naming both.
        try sess.setValue(try Tensor(shape: [2], scalars: [Double(5), 6]), of: v)
        let g2 = Graph()
        let x2 = try g2.placeholder(.float64, shape: [2], name: "x")
        let v2 = try g2.variable(try Tensor(shape: [3], scalars: [Double(1), 2, 3]), name: "scale")
        _ = try g2.identity(g2.multiply(x2, g2.reduceSum(v2)), name: "y")
        assertKilnError(.invalidArgument, contains: ["variable 'scale' is float64[3]", "holds float64[2]"]) {
            _ = try ArtifactCompiler.spec(graph: g2, feeds: [("x", TensorType(.float64, [2]))], fetches: ["y"],
                                          checkpoint: try CheckpointReader(prefix: prefix), name: "text", target: .host, origin: "test")
        }
    }

    func testTensorFlowCheckpointKeysComeFromTheMetaGraphsSaver() throws {
        let prefix = Golden.checkpointDirectory + "/model.ckpt-20"
        let (g, keys) = try ArtifactCompiler.loadGraph(path: prefix + ".meta")
        XCTAssertEqual(Set(keys.values), ["conv1/weights", "conv1/bias", "fc/weights", "fc/bias", "global_step"])
        let spec = try ArtifactCompiler.spec(graph: g, feeds: [("x:0", TensorType(.float32, [1, 4, 4, 1]))], fetches: ["fc/logits:0"],
                                             checkpoint: try CheckpointReader(prefix: prefix), keys: keys, name: "tf", target: .host, origin: "test")
        let x = try Tensor(shape: [1, 4, 4, 1], scalars: (0..<16).map { Float($0) / 8 })
        let sess = try Session(graph: g)
        try Saver(graph: g, saverDef: try MetaGraphFile.read(path: prefix + ".meta").saverDef).restore(sess, prefix: prefix)
        let want = try sess.run(g.tensor(named: "fc/logits:0"), feeds: [g.tensor(named: "x:0"): x])
        let got = try ReferenceEvaluator.run(spec.function, parameters: [x]).results[0]
        XCTAssertEqual(got.shape, want.shape)
        for (a, b) in zip(got.doubles, want.doubles) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testRandomOpsAndUnfedPlaceholdersAreRefused() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let noise = try g.add(x, g.randomUniform([2], name: "noise"), name: "noisy")
        _ = try g.add(x, g.placeholder(.float32, shape: [2], name: "other"), name: "sum")
        assertKilnError(.unimplemented, contains: ["'noise/RandomUniform' (op: RandomUniform)", "random"]) {
            _ = try ArtifactCompiler.spec(graph: g, feeds: [("x", TensorType(.float32, [2]))], fetches: [noise.name], checkpoint: nil,
                                          name: "r", target: .host, origin: "test")
        }
        assertKilnError(.invalidArgument, contains: ["You must feed a value for placeholder tensor 'other'"]) {
            _ = try ArtifactCompiler.spec(graph: g, feeds: [("x", TensorType(.float32, [2]))], fetches: ["sum"], checkpoint: nil,
                                          name: "r", target: .host, origin: "test")
        }
        assertKilnError(.invalidArgument, contains: ["feed 'x:0' is given twice"]) {
            _ = try ArtifactCompiler.spec(graph: g, feeds: [("x", TensorType(.float32, [2])), ("x:0", TensorType(.float32, [2]))], fetches: ["sum"],
                                          checkpoint: nil, name: "r", target: .host, origin: "test")
        }
    }
}
