import Foundation
import XCTest
import KilnTestSupport
import Kiln
@testable import KilnRuntime

/// MetaGraphDefs: Kiln's own .meta files and TensorFlow's (golden/checkpoint/model.ckpt-20.meta,
/// written by TensorFlow 2.21 with resource variables).
final class MetaGraphTests: ScratchDirectoryTestCase {
    private var goldenMeta: String { Golden.checkpointDirectory + "/model.ckpt-20.meta" }
    private func goldenPrefix(_ step: Int) -> String { Golden.checkpointDirectory + "/model.ckpt-\(step)" }

    // MARK: export

    func testVariableDefMatchesTensorFlowsBytes() throws {
        let g = Graph()
        let v = try g.variable(try g.constant(1 as Float), name: "v1")
        // FORMATS.md §5: 0a 04 "v1:0" 12 09 "v1/Assign" 1a 09 "v1/read:0" 32 07 "Const:0" 38 01.
        let expected: [UInt8] = [0x0A, 4] + Array("v1:0".utf8) + [0x12, 9] + Array("v1/Assign".utf8) + [0x1A, 9] + Array("v1/read:0".utf8)
            + [0x32, 7] + Array("Const:0".utf8) + [0x38, 1]
        XCTAssertEqual([UInt8](try v.variableDef.serializedData()), expected)
    }

    func testExportWritesGraphSaverDefAndEveryCollection() throws {
        let model = try RegressionModel()
        let g = model.graph
        let saver = try Saver(graph: g)
        g.addToCollection(GraphKeys.updateOps, model.train)
        g.addToCollection(GraphKeys.summaries, model.loss)
        g.addToCollection("notes", "trained on four rows")
        g.addToCollection("sizes", 4)
        g.addToCollection("rates", 0.05)
        let meta = try g.exportMetaGraph(saverDef: saver.saverDef)
        XCTAssertEqual(meta.metaInfoDef.tensorflowVersion, "kiln")
        XCTAssertEqual(meta.graphDef, g.graphDef())
        XCTAssertEqual(meta.saverDef, saver.saverDef)
        XCTAssertEqual(Set(meta.collectionDef.keys), ["variables", "trainable_variables", "global_step", "train_op", "update_ops",
                                                      "losses", "summaries", "notes", "sizes", "rates"])
        let variables = try meta.collectionDef["variables"]!.bytesList.value.map { try Tensorflow_VariableDef(serializedBytes: $0) }
        XCTAssertEqual(variables.map(\.variableName), ["dense/kernel:0", "dense/bias:0", "global_step:0"])
        XCTAssertEqual(variables.map(\.initializerName), ["dense/kernel/Assign", "dense/bias/Assign", "global_step/Assign"])
        XCTAssertEqual(variables.map(\.snapshotName), ["dense/kernel/read:0", "dense/bias/read:0", "global_step/read:0"])
        XCTAssertEqual(variables.map(\.trainable), [true, true, false])
        XCTAssertEqual(variables[2].initialValueName, "global_step/Initializer/zeros:0")
        XCTAssertEqual(meta.collectionDef["trainable_variables"]!.bytesList.value.count, 2)
        XCTAssertEqual(meta.collectionDef["train_op"]!.nodeList.value, [model.train.name])
        XCTAssertEqual(meta.collectionDef["losses"]!.nodeList.value, ["loss:0"])
        XCTAssertEqual(meta.collectionDef["summaries"]!.nodeList.value, ["loss:0"])
        XCTAssertEqual(meta.collectionDef["notes"]!.bytesList.value, [Data("trained on four rows".utf8)])
        XCTAssertEqual(meta.collectionDef["sizes"]!.int64List.value, [4])
        XCTAssertEqual(meta.collectionDef["rates"]!.floatList.value, [0.05])

        // Only the collections asked for; one that cannot be written is an error when asked for.
        XCTAssertEqual(Set(try g.exportMetaGraph(collections: ["losses"]).collectionDef.keys), ["losses"])
        g.addToCollection("mixed", model.loss)
        g.addToCollection("mixed", 3)
        XCTAssertNil(try g.exportMetaGraph().collectionDef["mixed"])
        assertKilnError(.invalidArgument, contains: ["'mixed'"]) { _ = try g.exportMetaGraph(collections: ["mixed"]) }
    }

    // MARK: Kiln's own .meta

    func testKilnMetaGraphImportsWithVariablesCollectionsAndSaverAndTrainsOnIdentically() throws {
        let model = try RegressionModel()
        let sess = try Session(graph: model.graph)
        try sess.run(model.initializer)
        for _ in 0..<3 { try sess.run(model.train, feeds: model.feeds) }
        let prefix = try Saver(graph: model.graph).save(sess, prefix: path("model.ckpt"), globalStep: 3)

        let g = Graph()
        let (imported, saver) = try importMetaGraph(contentsOf: prefix + ".meta", into: g)
        let restored = try XCTUnwrap(saver)
        XCTAssertEqual(imported.operations.count, model.graph.operations.count)
        XCTAssertEqual(g.globalVariables.map(\.name), ["dense/kernel", "dense/bias", "global_step"])
        XCTAssertEqual(g.trainableVariables.map(\.name), ["dense/kernel", "dense/bias"])
        XCTAssertEqual(try g.globalStep().name, "global_step")
        for (a, b) in zip(g.globalVariables, model.graph.globalVariables) {
            XCTAssertEqual(a.initializer.name, b.initializer.name)
            XCTAssertEqual(a.value.name, b.value.name)
            XCTAssertEqual(a.initialValue.name, b.initialValue.name)
            XCTAssertEqual(a.shape, b.shape)
        }
        XCTAssertEqual(restored.variables.map(\.key), ["dense/bias", "dense/kernel", "global_step"])
        let train = try XCTUnwrap(g.collection(GraphKeys.trainOp).first as? GraphOperation)
        XCTAssertEqual(train.name, model.train.name)
        let loss = try XCTUnwrap(g.collection(GraphKeys.losses).first as? Output)
        XCTAssertEqual(loss.name, "loss:0")

        let other = try Session(graph: g)
        try restored.restore(other, prefix: prefix)
        let values = { (graph: Graph, s: Session) in Dictionary(uniqueKeysWithValues: graph.globalVariables.map { ($0.name, s.value(of: $0)) }) }
        XCTAssertEqual(values(g, other), values(model.graph, sess))
        let feeds = [try g.tensor(named: "x:0"): RegressionModel.xs, try g.tensor(named: "y:0"): RegressionModel.ys]
        XCTAssertEqual(try other.run(loss, feeds: feeds), try sess.run(model.loss, feeds: model.feeds))
        try other.run(train, feeds: feeds)
        try sess.run(model.train, feeds: model.feeds)
        XCTAssertEqual(values(g, other), values(model.graph, sess))

        // The imported saver saves again, with the same SaverDef in its .meta.
        let again = try restored.save(other, prefix: path("again"), globalStep: 4)
        XCTAssertEqual(try MetaGraphFile.read(path: again + ".meta").saverDef, restored.saverDef)
        XCTAssertEqual(try CheckpointReader(prefix: again).tensor(named: "global_step").scalar(as: Int64.self), 4)
    }

    func testImportUnderAScopePrefixesOpsCollectionsAndTheSaverButKeepsCheckpointKeys() throws {
        let model = try RegressionModel()
        let sess = try Session(graph: model.graph)
        try sess.run(model.initializer)
        let prefix = try Saver(graph: model.graph).save(sess, prefix: path("model.ckpt"))
        let meta = try MetaGraphFile.read(path: prefix + ".meta")

        let g = Graph()
        let (first, saver) = try importMetaGraph(meta, into: g, importScope: "tower")
        let (second, _) = try importMetaGraph(meta, into: g, importScope: "tower")
        XCTAssertEqual(first.scope, "tower/")
        XCTAssertEqual(second.scope, "tower_1/")
        XCTAssertNotNil(g.operation(named: "tower_1/dense/kernel"))
        XCTAssertEqual(first.scoped("x:0"), "tower/x:0")
        XCTAssertEqual(g.globalVariables.map(\.name), ["tower/dense/kernel", "tower/dense/bias", "tower/global_step",
                                                       "tower_1/dense/kernel", "tower_1/dense/bias", "tower_1/global_step"])
        XCTAssertEqual(first.saverDef?.restoreOpName, "tower/save/restore_all")
        let restored = try XCTUnwrap(saver)
        XCTAssertEqual(restored.variables.map(\.key), ["dense/bias", "dense/kernel", "global_step"])
        XCTAssertEqual(restored.variables.map(\.variable.name), ["tower/dense/bias", "tower/dense/kernel", "tower/global_step"])
        let other = try Session(graph: g)
        try restored.restore(other, prefix: prefix)
        XCTAssertEqual(other.value(of: try XCTUnwrap(g.operation(named: "tower/dense/kernel"))),
                       sess.value(of: try XCTUnwrap(model.graph.operation(named: "dense/kernel"))))
    }

    func testGarbageAndMissingMetaFilesAreClearErrors() throws {
        try Data((0..<200).map { UInt8(($0 * 37 + 11) % 256) }).write(to: URL(fileURLWithPath: path("garbage.meta")))
        assertKilnError(.dataLoss, contains: [path("garbage.meta"), "MetaGraphDef"]) { _ = try importMetaGraph(contentsOf: path("garbage.meta"), into: Graph()) }
        assertKilnError(.notFound, contains: [path("absent.meta")]) { _ = try importMetaGraph(contentsOf: path("absent.meta"), into: Graph()) }
        // A collection naming a node the graph does not have.
        var meta = try Graph().exportMetaGraph()
        var list = Tensorflow_CollectionDef()
        list.nodeList.value = ["ghost:0"]
        meta.collectionDef["losses"] = list
        assertKilnError(.notFound, contains: ["losses", "ghost"]) { _ = try importMetaGraph(meta, into: Graph()) }
    }

    func testAttributesStrippedAsDefaultsAreRestoredFromTheStrippedOpList() throws {
        let g = Graph()
        let v = try g.variable(1 as Float, name: "v")
        var meta = try g.exportMetaGraph()
        let assign = try XCTUnwrap(meta.graphDef.node.firstIndex { $0.name == v.initializer.name })
        meta.graphDef.node[assign].attr["use_locking"] = nil
        meta.graphDef.node[assign].attr["validate_shape"] = nil
        // The writer's defaults, which need not be Kiln's: use_locking false here.
        var op = Tensorflow_OpDef()
        op.name = "Assign"
        var locking = Tensorflow_OpDef.AttrDef()
        locking.name = "use_locking"
        locking.type = "bool"
        var no = Tensorflow_AttrValue()
        no.b = false
        locking.defaultValue = no
        op.attr = [locking]
        meta.metaInfoDef.strippedOpList.op = [op]
        meta.metaInfoDef.strippedDefaultAttrs = true
        let copy = Graph()
        try copy.importMetaGraph(meta)
        let imported = try XCTUnwrap(copy.operation(named: v.initializer.name))
        XCTAssertEqual(imported.attrs["use_locking"], .bool(false))
        // Attributes the op list does not know keep Kiln's defaults.
        XCTAssertEqual(imported.attrs["validate_shape"], .bool(true))
        XCTAssertEqual(copy.globalVariables.map(\.name), ["v"])
    }

    // MARK: TensorFlow's .meta

    func testGoldenMetaGraphImportsWithResourceVariablesCollectionsAndItsSaver() throws {
        let g = Graph()
        let (imported, saver) = try importMetaGraph(contentsOf: goldenMeta, into: g)
        XCTAssertEqual(imported.operations.count, try MetaGraphFile.read(path: goldenMeta).graphDef.node.count)
        XCTAssertEqual(imported.operations.count, 99)
        XCTAssertEqual(g.globalVariables.map(\.name), ["conv1/weights", "conv1/bias", "fc/weights", "fc/bias", "global_step"])
        XCTAssertEqual(g.trainableVariables.map(\.name), ["conv1/weights", "conv1/bias", "fc/weights", "fc/bias"])
        XCTAssertEqual(try g.globalStep().name, "global_step")
        let weights = g.globalVariables[0]
        XCTAssertEqual(weights.variableOp.type, "VarHandleOp")
        XCTAssertEqual(weights.dtype, .float32)
        XCTAssertEqual(weights.shape, Shape([3, 3, 1, 4]))
        XCTAssertEqual(weights.value.name, "conv1/weights/Read/ReadVariableOp:0")
        XCTAssertEqual(weights.initializer.type, "AssignVariableOp")
        XCTAssertEqual(weights.initialValue.name, "conv1/weights/Initializer/truncated_normal:0")
        XCTAssertTrue(weights.variableDef.isResource)
        let restored = try XCTUnwrap(saver)
        XCTAssertEqual(restored.saverDef.restoreOpName, "save/restore_all")
        XCTAssertEqual(restored.maxToKeep, 5)
        XCTAssertEqual(restored.variables.map(\.key), ["conv1/bias", "conv1/weights", "fc/bias", "fc/weights", "global_step"])
        XCTAssertEqual(restored.variables.map(\.variable.type), Array(repeating: "VarHandleOp", count: 5))
    }

    /// The scenario: import TensorFlow's .meta, find tensors and ops by name, restore the
    /// checkpoint, then add an op on top and run it, fed through the imported placeholder.
    func testGoldenMetaGraphRestoresVariablesJSONAndRunsANewOpFedThroughTheImportedPlaceholder() throws {
        let g = Graph()
        let (_, saver) = try importMetaGraph(contentsOf: goldenMeta, into: g)
        let x = try g.tensor(named: "x:0")
        XCTAssertEqual(x.shape, Shape(dims: [nil, 4, 4, 1]))
        let logitsOp = try XCTUnwrap(g.operation(named: "fc/logits"))
        let sess = try Session(graph: g)
        try XCTUnwrap(saver).restore(sess, prefix: goldenPrefix(20))
        let want = try Golden.checkpointVariables("model.ckpt-20")
        for v in g.globalVariables {
            XCTAssertEqual(sess.value(of: v), want[v.name], v.name)
            XCTAssertEqual(try sess.run(v.value), want[v.name], v.name)
        }

        let addOn = try g.multiply(logitsOp.output(), try g.constant(2 as Float), name: "add_on")
        let input = try Tensor(shape: [2, 4, 4, 1], scalars: (0..<32).map { Float(($0 * 7) % 11) / 10 - 0.4 })
        let got = try sess.run(addOn, feeds: [x: input])
        XCTAssertEqual(got.shape, [2, 10])
        let expected = try Self.referenceLogits(input, want).map { 2 * $0 }
        for (a, b) in zip(try got.scalars(as: Float.self), expected) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// conv1 (3x3, stride 2, SAME, + bias, relu) -> reshape [-1, 16] -> fc, computed directly.
    private static func referenceLogits(_ x: Tensor, _ vars: [String: Tensor]) throws -> [Float] {
        let w = try vars["conv1/weights"]!.scalars(as: Float.self), b = try vars["conv1/bias"]!.scalars(as: Float.self)
        let fw = try vars["fc/weights"]!.scalars(as: Float.self), fb = try vars["fc/bias"]!.scalars(as: Float.self)
        let xs = try x.scalars(as: Float.self)
        var out: [Float] = []
        for n in 0..<x.shape[0] {
            var hidden: [Float] = []
            // SAME with stride 2 on 4x4: 2x2 outputs, padding 0 before and 1 after.
            for oy in 0..<2 {
                for ox in 0..<2 {
                    for c in 0..<4 {
                        var s = b[c]
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let iy = oy * 2 + ky, ix = ox * 2 + kx
                                guard iy < 4, ix < 4 else { continue }
                                s += xs[n * 16 + iy * 4 + ix] * w[(ky * 3 + kx) * 4 + c]
                            }
                        }
                        hidden.append(max(s, 0))
                    }
                }
            }
            for j in 0..<10 {
                var s = fb[j]
                for i in 0..<16 { s += hidden[i] * fw[i * 10 + j] }
                out.append(s)
            }
        }
        return out
    }

    func testGoldenGraphsOwnOpsInitializeRestoreUpdateAndSaveThroughTheSession() throws {
        let g = Graph()
        try g.importMetaGraph(contentsOf: goldenMeta)
        let sess = try Session(graph: g)
        let isInitialized = try g.tensor(named: "conv1/weights/IsInitialized/VarIsInitializedOp:0")
        XCTAssertEqual(try sess.run(isInitialized), Tensor(false))
        try sess.run(try XCTUnwrap(g.operation(named: "init")))
        XCTAssertEqual(try sess.run(isInitialized), Tensor(true))
        XCTAssertEqual(try sess.run(try g.tensor(named: "fc/bias/Read/ReadVariableOp:0")), try Tensor(zeros: .float32, shape: [10]))

        // save/restore_all with the filename fed restores model.ckpt-10 ...
        let filename = try g.tensor(named: "save/Const:0")
        try sess.run(try XCTUnwrap(g.operation(named: "save/restore_all")), feeds: [filename: Tensor(goldenPrefix(10))])
        let at10 = try Golden.checkpointVariables("model.ckpt-10"), at20 = try Golden.checkpointVariables("model.ckpt-20")
        for v in g.globalVariables { XCTAssertEqual(sess.value(of: v), at10[v.name], v.name) }
        // ... and the graph's own AssignAddVariableOps (+0.01, as TensorFlow ran between the saves)
        // give model.ckpt-20's floats bit for bit; ReadVariableOp (^AssignAddVariableOp) reads after the add.
        let bumped = try sess.run(try ["ReadVariableOp", "ReadVariableOp_1", "ReadVariableOp_2", "ReadVariableOp_3"].map { try g.tensor(named: $0 + ":0") })
        XCTAssertEqual(bumped, [at20["conv1/weights"]!, at20["conv1/bias"]!, at20["fc/weights"]!, at20["fc/bias"]!])
        try sess.setValue(at20["global_step"]!, of: try XCTUnwrap(g.operation(named: "global_step")))

        // save/control_dependency:0 writes the checkpoint TensorFlow wrote, byte for byte.
        let prefix = path("model.ckpt-20")
        XCTAssertEqual(try sess.run(try g.tensor(named: "save/control_dependency:0"), feeds: [filename: Tensor(prefix)]), Tensor(prefix))
        for file in [CheckpointPaths.index(prefix: prefix), CheckpointPaths.data(prefix: prefix)] {
            let golden = file.replacingOccurrences(of: prefix, with: goldenPrefix(20))
            XCTAssertEqual(FileManager.default.contents(atPath: file), FileManager.default.contents(atPath: golden), file)
        }
    }

    func testResourceVariablesTrainWithGradientsThroughReadVariableOp() throws {
        let g = Graph()
        let (_, saver) = try importMetaGraph(contentsOf: goldenMeta, into: g)
        let logits = try g.tensor(named: "fc/logits:0")
        let loss = try g.reduceMean(try g.square(logits))
        let train = try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss, varList: g.trainableVariables)
        let sess = try Session(graph: g)
        try XCTUnwrap(saver).restore(sess, prefix: goldenPrefix(20))
        let feeds = [try g.tensor(named: "x:0"): try Tensor(shape: [1, 4, 4, 1], scalars: (0..<16).map { Float($0) / 8 })]
        let before = try sess.run(loss, feeds: feeds).scalar(as: Float.self)
        let bias = g.trainableVariables[3]
        let biasBefore = try XCTUnwrap(sess.value(of: bias)).scalars(as: Float.self)
        let gradient = try sess.run(try XCTUnwrap(g.gradients([loss], [bias.ref])[0]), feeds: feeds).scalars(as: Float.self)
        try sess.run(train, feeds: feeds)
        let after = try sess.run(loss, feeds: feeds).scalar(as: Float.self)
        XCTAssertLessThan(after, before)
        // The update is exactly SGD's: bias -= 0.1 * dloss/dbias.
        let biasAfter = try XCTUnwrap(sess.value(of: bias)).scalars(as: Float.self)
        for k in 0..<10 { XCTAssertEqual(biasAfter[k], biasBefore[k] - 0.1 * gradient[k], accuracy: 1e-6) }
        XCTAssertTrue(gradient.contains { $0 != 0 })
    }
}
