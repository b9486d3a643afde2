import Foundation
import XCTest
import Kiln

/// GraphDefs that TensorFlow wrote, imported and run.
final class GraphDefGoldenTests: XCTestCase {
    private var frozenPath: String { Golden.directory.appendingPathComponent("frozen/frozen_mlp.pb").path }

    private func ioPairs() throws -> [(x: Tensor, probs: Tensor)] {
        let data = try Data(contentsOf: Golden.directory.appendingPathComponent("frozen/io.json"))
        let io = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return try (io["pairs"] as! [[String: Any]]).map { pair in
            (try Golden.tensor(pair["x:0"] as! [String: Any]), try Golden.tensor(pair["probs:0"] as! [String: Any]))
        }
    }

    private static func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Double {
        zip(a.doubles, b.doubles).map { Swift.abs($0 - $1) }.max() ?? 0
    }

    func testFrozenMLPFromTensorFlowReproducesProbsWithin1e5() throws {
        let g = Graph()
        try g.importGraphDef(contentsOf: frozenPath, prefix: "")
        XCTAssertEqual(g.operations.map(\.type), ["Placeholder", "Const", "Const", "Const", "Const", "Identity", "MatMul", "Identity",
                                                  "AddV2", "Relu", "Identity", "MatMul", "Identity", "AddV2", "Softmax"])
        let x = try g.tensor(named: "x:0")
        let probs = try g.tensor(named: "probs:0")
        XCTAssertEqual(x.shape, Shape(dims: [nil, 784]))
        XCTAssertEqual(probs.shape, Shape(dims: [nil, 10]))
        let sess = try Session(graph: g)
        let pairs = try ioPairs()
        XCTAssertFalse(pairs.isEmpty)
        var worst = 0.0
        for (input, want) in pairs {
            let got = try sess.run(probs, feeds: [x: input])
            XCTAssertEqual(got.shape, want.shape)
            worst = max(worst, Self.maxAbsDifference(got, want))
        }
        XCTAssertLessThanOrEqual(worst, 1e-5)
        print("frozen_mlp.pb: max |probs - TensorFlow| = \(worst) over \(pairs.count) input(s)")

        // All pairs' rows as one batch.
        let rows = pairs.map { $0.x.shape[0] }.reduce(0, +)
        let batch = try Tensor(shape: [rows, 784], scalars: pairs.flatMap { try $0.x.scalars(as: Float.self) })
        let all = try sess.run(probs, feeds: [x: batch])
        let want = try Tensor(shape: [rows, 10], scalars: pairs.flatMap { try $0.probs.scalars(as: Float.self) })
        XCTAssertLessThanOrEqual(Self.maxAbsDifference(all, want), 1e-5)
    }

    func testFrozenGraphUnderAPrefixFedThroughAnInputMap() throws {
        let g = Graph()
        let images = try g.placeholder(.float32, shape: [nil, 784], name: "images")
        let scaled = try g.multiply(images, try g.constant(1 as Float))
        try g.importGraphDef(contentsOf: frozenPath, prefix: "mlp", inputMap: ["x:0": scaled])
        let probs = try g.tensor(named: "mlp/probs:0")
        let (input, want) = try ioPairs()[0]
        let got = try Session(graph: g).run(probs, feeds: [images: input])
        XCTAssertLessThanOrEqual(Self.maxAbsDifference(got, want), 1e-5)
    }

    func testExportedFrozenGraphImportsAgainAndComputesTheSame() throws {
        let g = Graph()
        try g.importGraphDef(contentsOf: frozenPath, prefix: "")
        let again = Graph()
        try again.importGraphDef(serialized: try g.serializedGraphDef(), prefix: "")
        let (input, want) = try ioPairs()[0]
        let got = try Session(graph: again).run(try again.tensor(named: "probs:0"), feeds: [try again.tensor(named: "x:0"): input])
        XCTAssertLessThanOrEqual(Self.maxAbsDifference(got, want), 1e-5)
    }

    func testGraphWithVariablesRunsTheSameAfterExportAndImport() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 2], name: "x")
        let w = try g.variable([[1, -1], [2, 0.5]] as [[Float]], name: "w")
        let step = try g.variable(0 as Int32, name: "step", trainable: false)
        _ = try g.reduceSum(try g.relu(try g.matmul(x, w)), axes: [1], name: "y")
        _ = try g.assignAdd(step, try g.constant(1 as Int32), name: "bump")
        _ = try g.globalVariablesInitializer()

        let copy = Graph()
        try copy.importGraphDef(text: g.graphDefText(), prefix: "")
        let feed = try Tensor(shape: [2, 2], scalars: [1, 2, -3, 1] as [Float])
        var results: [[Float]] = []
        for graph in [g, copy] {
            let sess = try Session(graph: graph)
            try sess.run(XCTUnwrap(graph.operation(named: "init")))
            try sess.run(XCTUnwrap(graph.operation(named: "bump")))
            try sess.run(XCTUnwrap(graph.operation(named: "bump")))
            XCTAssertEqual(try sess.run(graph.tensor(named: "step:0")).scalar(as: Int32.self), 2)
            results.append(try sess.run(graph.tensor(named: "y:0"), feeds: [try graph.tensor(named: "x:0"): feed]).scalars(as: Float.self))
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], [5, 3.5])
    }

    /// The GraphDef inside TensorFlow's .meta (MetaGraphDef field 2) uses resource variables and
    /// the Saver's SaveV2/RestoreV2: every node type Kiln lacks is reported at once, with counts;
    /// once all are registered the graph builds.
    func testCheckpointMetaGraphReportsEveryUnsupportedNodeTypeOrBuilds() throws {
        let url = Golden.directory.appendingPathComponent("checkpoint/model.ckpt-20.meta")
        let meta = try Tensorflow_MetaGraphDef(serializedBytes: try Data(contentsOf: url))
        let def = meta.graphDef
        XCTAssertEqual(meta.saverDef.restoreOpName, "save/restore_all")
        XCTAssertEqual(def.node.filter { $0.op == "SaveV2" }.count, 1)
        XCTAssertEqual(def.node.filter { $0.op == "RestoreV2" }.count, 1)

        var missing: [String: Int] = [:]
        for n in def.node where !OpRegistry.registeredTypes.contains(n.op) { missing[n.op, default: 0] += 1 }
        let g = Graph()
        if missing.isEmpty {
            try g.importGraphDef(def, prefix: "")
            XCTAssertEqual(g.operations.count, def.node.count)
            return
        }
        XCTAssertThrowsError(try g.importGraphDef(def, prefix: "")) { error in
            let e = error as! KilnError
            XCTAssertEqual(e.code, .unimplemented)
            print("model.ckpt-20.meta graph_def: \(e.message)")
            XCTAssertTrue(e.message.contains("\(missing.count) op type(s)"), e.message)
            for (type, count) in missing {
                XCTAssertTrue(e.message.contains("\(type) (\(count) node\(count == 1 ? "" : "s"))"), "\(type) x\(count) missing from: \(e.message)")
            }
        }
        XCTAssertTrue(g.operations.isEmpty)
    }
}
