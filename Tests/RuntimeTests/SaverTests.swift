import Foundation
import XCTest
import KilnTestSupport
import Kiln
@testable import KilnRuntime

/// A small regression model, y = x·W + b, trained by SGD on one fixed batch; W starts random
/// (unseeded), so a fresh session starts from different values than the one that saved.
struct RegressionModel {
    let graph: Graph
    let x: Output, y: Output
    let loss: Output
    let train: GraphOperation
    let initializer: GraphOperation

    static let xs = try! Tensor(shape: [4, 3], scalars: [1, 2, 0.5, -1, 0, 2, 0.25, -3, 1, 2, 2, -0.5] as [Float])
    static let ys = try! Tensor(shape: [4, 2], scalars: [1, -1, 0.5, 2, -2, 0, 3, 1] as [Float])

    init(graph g: Graph = Graph()) throws {
        graph = g
        x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        y = try g.placeholder(.float32, shape: [nil, 2], name: "y")
        let (w, b) = try g.variableScope("dense") {
            (try g.getVariable("kernel", shape: [3, 2], initializer: .randomNormal()),
             try g.getVariable("bias", shape: [2], initializer: .zeros))
        }
        let step = try g.globalStep()
        let prediction = try g.add(try g.matmul(x, w), b, name: "prediction")
        loss = try g.reduceMean(try g.square(try g.subtract(prediction, y)), name: "loss")
        g.addLoss(loss)
        train = try GradientDescentOptimizer(g, learningRate: 0.05).minimize(loss, globalStep: step)
        g.addToCollection(GraphKeys.trainOp, train)
        initializer = try g.globalVariablesInitializer()
    }

    var feeds: [Output: Tensor] { [x: RegressionModel.xs, y: RegressionModel.ys] }

    /// Every global variable's value in `session`, by name.
    func values(_ session: Session) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: graph.globalVariables.compactMap { v in session.value(of: v).map { (v.name, $0) } })
    }
}

final class SaverTests: ScratchDirectoryTestCase {
    /// A session of `model` initialised and trained `steps` SGD steps.
    private func trained(_ model: RegressionModel, steps: Int) throws -> Session {
        let sess = try Session(graph: model.graph)
        try sess.run(model.initializer)
        for _ in 0..<steps { try sess.run(model.train, feeds: model.feeds) }
        return sess
    }

    // MARK: files

    func testSaveWritesIndexDataMetaAndStateThenRestoresIdenticalValuesIntoAFreshSession() throws {
        let model = try RegressionModel()
        let saver = try Saver(graph: model.graph)
        XCTAssertEqual(saver.variables.map(\.key), ["dense/bias", "dense/kernel", "global_step"])
        let sess = try trained(model, steps: 3)
        let saved = model.values(sess)
        XCTAssertEqual(try saved["global_step"]?.scalar(as: Int64.self), 3)

        let prefix = try saver.save(sess, prefix: path("model.ckpt"), globalStep: 3)
        XCTAssertEqual(prefix, path("model.ckpt-3"))
        XCTAssertEqual(try files(), ["checkpoint", "model.ckpt-3.data-00000-of-00001", "model.ckpt-3.index", "model.ckpt-3.meta"])
        XCTAssertEqual(try String(contentsOfFile: path("checkpoint"), encoding: .utf8),
                       "model_checkpoint_path: \"model.ckpt-3\"\nall_model_checkpoint_paths: \"model.ckpt-3\"\n")
        XCTAssertEqual(try latestCheckpoint(directory: scratch.path), prefix)
        // The checkpoint is a plain bundle keyed by variable op names.
        let reader = try CheckpointReader(prefix: prefix)
        XCTAssertEqual(reader.keys, ["dense/bias", "dense/kernel", "global_step"])
        XCTAssertEqual(try reader.tensor(named: "dense/kernel"), saved["dense/kernel"])
        // The .meta holds this graph and the saver's SaverDef.
        let meta = try MetaGraphFile.read(path: prefix + ".meta")
        XCTAssertEqual(meta.graphDef.node.count, model.graph.operations.count)
        XCTAssertEqual(meta.saverDef, saver.saverDef)

        let fresh = try Session(graph: model.graph)
        try fresh.run(model.initializer)
        XCTAssertNotEqual(model.values(fresh)["dense/kernel"], saved["dense/kernel"])
        try saver.restore(fresh, prefix: prefix)
        XCTAssertEqual(model.values(fresh), saved)
        // Training goes on from the same point in both sessions.
        try sess.run(model.train, feeds: model.feeds)
        try fresh.run(model.train, feeds: model.feeds)
        XCTAssertEqual(model.values(fresh), model.values(sess))
    }

    func testRestoreIntoANewGraphBuiltTheSameWayGivesIdenticalValuesAndTraining() throws {
        let model = try RegressionModel()
        let sess = try trained(model, steps: 4)
        let prefix = try Saver(graph: model.graph).save(sess, prefix: path("run/model.ckpt"), globalStep: 4)

        let rebuilt = try RegressionModel()
        let other = try Session(graph: rebuilt.graph)
        try Saver(graph: rebuilt.graph).restore(other, prefix: prefix)
        XCTAssertEqual(rebuilt.values(other), model.values(sess))
        XCTAssertEqual(try other.run(rebuilt.loss, feeds: rebuilt.feeds), try sess.run(model.loss, feeds: model.feeds))
        try other.run(rebuilt.train, feeds: rebuilt.feeds)
        try sess.run(model.train, feeds: model.feeds)
        XCTAssertEqual(rebuilt.values(other), model.values(sess))
        XCTAssertEqual(try rebuilt.values(other)["global_step"]?.scalar(as: Int64.self), 5)
    }

    func testDictionaryVarListSavesUnderTheGivenKeysAndRestoresFromThem() throws {
        let model = try RegressionModel()
        let sess = try trained(model, steps: 1)
        let kernel = try XCTUnwrap(model.graph.globalVariables.first { $0.name == "dense/kernel" })
        let saver = try Saver(graph: model.graph, varList: ["old_scope/w": kernel])
        let prefix = try saver.save(sess, prefix: path("renamed"), writeMetaGraph: false)
        XCTAssertEqual(try CheckpointReader(prefix: prefix).keys, ["old_scope/w"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: prefix + ".meta"))

        let fresh = try Session(graph: model.graph)
        try saver.restore(fresh, prefix: prefix)
        XCTAssertEqual(fresh.value(of: kernel), sess.value(of: kernel))
        assertKilnError(.invalidArgument, contains: ["No variables"]) { _ = try Saver(graph: Graph()) }
    }

    func testMaxToKeepDeletesTheOldestCheckpointsWithAllTheirFiles() throws {
        let model = try RegressionModel()
        let sess = try trained(model, steps: 0)
        let saver = try Saver(graph: model.graph, maxToKeep: 2)
        for step in 1...4 { try saver.save(sess, prefix: path("model.ckpt"), globalStep: step) }
        XCTAssertEqual(try files(), ["checkpoint"] + [3, 4].flatMap { step in
            ["data-00000-of-00001", "index", "meta"].map { "model.ckpt-\(step).\($0)" }
        })
        XCTAssertEqual(saver.lastCheckpoints.map(\.path), [path("model.ckpt-3"), path("model.ckpt-4")])
        let state = try XCTUnwrap(try CheckpointState.read(directory: scratch.path))
        XCTAssertEqual(state.allModelCheckpointPaths, [path("model.ckpt-3"), path("model.ckpt-4")])
        XCTAssertEqual(state.modelCheckpointPath, path("model.ckpt-4"))
        // Saving a kept path again moves it to the end instead of adding a third.
        try saver.save(sess, prefix: path("model.ckpt"), globalStep: 3)
        XCTAssertEqual(saver.lastCheckpoints.map(\.path), [path("model.ckpt-4"), path("model.ckpt-3")])
        XCTAssertEqual(try latestCheckpoint(directory: scratch.path), path("model.ckpt-3"))

        // A new saver (a restarted training process) adopts the existing checkpoints.
        let later = try Saver(graph: model.graph, maxToKeep: 2)
        later.recoverLastCheckpoints(state.allModelCheckpointPaths.reversed() + [path("model.ckpt-99")])
        XCTAssertEqual(later.lastCheckpoints.map(\.path), [path("model.ckpt-4"), path("model.ckpt-3")])
        try later.save(sess, prefix: path("model.ckpt"), globalStep: 5)
        XCTAssertFalse(CheckpointPaths.exists(prefix: path("model.ckpt-4")))
        XCTAssertTrue(CheckpointPaths.exists(prefix: path("model.ckpt-3")))

        // maxToKeep 0 keeps everything.
        let keepAll = try Saver(graph: model.graph, maxToKeep: 0)
        for step in 10...16 { try keepAll.save(sess, prefix: path("all"), globalStep: step, writeMetaGraph: false) }
        XCTAssertEqual(try files().filter { $0.hasPrefix("all-") && $0.hasSuffix(".index") }.count, 7)
    }

    func testKeepCheckpointEveryNHoursPreservesOneCheckpointPerPeriod() throws {
        let model = try RegressionModel()
        let sess = try trained(model, steps: 0)
        var now = 0.0
        let saver = try Saver(graph: model.graph, maxToKeep: 1, keepCheckpointEveryNHours: 1)
        saver.clock = { now }
        saver.nextPreservedTime = 3600
        for step in 1...6 {
            now = Double(step) * 1800   // half an hour apart
            try saver.save(sess, prefix: path("m"), globalStep: step, writeMetaGraph: false)
        }
        // Only the newest is tracked; an older one leaving the list survives when it is newer
        // than the preservation mark, which then moves an hour on: m-3 (t=1.5 h) and m-5 (2.5 h).
        XCTAssertEqual(try files().filter { $0.hasSuffix(".index") }, ["m-3.index", "m-5.index", "m-6.index"])
        XCTAssertEqual(saver.lastCheckpoints.map(\.path), [path("m-6")])
    }

    func testFailedSaveLeavesThePreviousCheckpointReadableAndTheStateUnchanged() throws {
        let model = try RegressionModel()
        let sess = try trained(model, steps: 1)
        let saver = try Saver(graph: model.graph)
        let first = try saver.save(sess, prefix: path("model.ckpt"), globalStep: 1)
        let before = model.values(sess)
        let stateBefore = try String(contentsOfFile: path("checkpoint"), encoding: .utf8)
        try sess.run(model.train, feeds: model.feeds)

        struct DiskFull: Error {}
        saver.commitHook = { if $0 == .temporariesSynced { throw DiskFull() } }
        // A new checkpoint, and an overwrite of the existing one, both fail before committing.
        XCTAssertThrowsError(try saver.save(sess, prefix: path("model.ckpt"), globalStep: 2))
        XCTAssertThrowsError(try saver.save(sess, prefix: path("model.ckpt"), globalStep: 1))
        XCTAssertEqual(try files(), ["checkpoint", "model.ckpt-1.data-00000-of-00001", "model.ckpt-1.index", "model.ckpt-1.meta"])
        XCTAssertEqual(try String(contentsOfFile: path("checkpoint"), encoding: .utf8), stateBefore)
        XCTAssertEqual(try latestCheckpoint(directory: scratch.path), first)
        let fresh = try Session(graph: model.graph)
        try saver.restore(fresh, prefix: first)
        XCTAssertEqual(model.values(fresh), before)

        saver.commitHook = nil
        XCTAssertEqual(try saver.save(sess, prefix: path("model.ckpt"), globalStep: 2), path("model.ckpt-2"))
    }

    func testSavingAnUninitializedVariableFailsNamingItAndWritesNothing() throws {
        let model = try RegressionModel()
        let sess = try Session(graph: model.graph)
        assertKilnError(.failedPrecondition, contains: ["dense/bias"]) {
            try Saver(graph: model.graph).save(sess, prefix: path("model.ckpt"), globalStep: 0)
        }
        XCTAssertEqual(try files(), [])
    }

    // MARK: TensorFlow's checkpoint

    func testRestoringTheGoldenCheckpointIntoAKilnGraphReproducesVariablesJSONExactly() throws {
        let g = Graph()
        for (name, shape) in [("conv1/weights", [3, 3, 1, 4]), ("conv1/bias", [4]), ("fc/weights", [16, 10]), ("fc/bias", [10])] {
            _ = try g.variable(Tensor(zeros: .float32, shape: shape), name: name)
        }
        _ = try g.globalStep()
        let saver = try Saver(graph: g)
        for name in ["model.ckpt-10", "model.ckpt-20"] {
            let sess = try Session(graph: g)
            try saver.restore(sess, prefix: Golden.checkpointDirectory + "/" + name)
            let want = try Golden.checkpointVariables(name)
            XCTAssertEqual(Set(g.globalVariables.map(\.name)), Set(want.keys))
            for v in g.globalVariables {
                XCTAssertEqual(sess.value(of: v), want[v.name], "\(name): \(v.name)")
                // The value the graph reads is the restored one.
                XCTAssertEqual(try sess.run(v), want[v.name], "\(name): \(v.name)")
            }
        }
        XCTAssertEqual(try latestCheckpoint(directory: Golden.checkpointDirectory), Golden.checkpointDirectory + "/model.ckpt-20")
    }

    // MARK: failed restores leave the session alone

    /// A trained session and its checkpoint, plus values that differ from the checkpoint's.
    private func sessionWithCheckpoint() throws -> (RegressionModel, Saver, Session, String, [String: Tensor]) {
        let model = try RegressionModel()
        let saver = try Saver(graph: model.graph)
        let sess = try trained(model, steps: 2)
        let prefix = try saver.save(sess, prefix: path("model.ckpt"), globalStep: 2)
        try sess.run(model.train, feeds: model.feeds)
        return (model, saver, sess, prefix, model.values(sess))
    }

    func testRestoreWithAMissingDataFileIsNotFoundNamingItAndChangesNothing() throws {
        let (model, saver, sess, prefix, before) = try sessionWithCheckpoint()
        let data = CheckpointPaths.data(prefix: prefix)
        try FileManager.default.removeItem(atPath: data)
        assertKilnError(.notFound, contains: [data]) { try saver.restore(sess, prefix: prefix) }
        XCTAssertEqual(model.values(sess), before)
        assertKilnError(.notFound, contains: [path("nothing-here")]) { try saver.restore(sess, prefix: path("nothing-here")) }
    }

    func testRestoreWithAFlippedDataByteIsDataLossNamingFileAndTensorAndChangesNothing() throws {
        let (model, saver, sess, prefix, before) = try sessionWithCheckpoint()
        let entry = try XCTUnwrap(CheckpointReader(prefix: prefix).entries["dense/kernel"])
        let data = CheckpointPaths.data(prefix: prefix)
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: data))
        bytes[Int(entry.offset) + 5] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: data))
        assertKilnError(.dataLoss, contains: [data, "'dense/kernel'", "checksum"]) { try saver.restore(sess, prefix: prefix) }
        XCTAssertEqual(model.values(sess), before)
    }

    func testRestoreOfAVariableMissingFromTheCheckpointIsNotFoundNamingItAndChangesNothing() throws {
        let (model, _, sess, _, before) = try sessionWithCheckpoint()
        let kernel = try XCTUnwrap(model.graph.globalVariables.first { $0.name == "dense/kernel" })
        let partial = try Saver(graph: model.graph, varList: [kernel]).save(sess, prefix: path("partial"), writeMetaGraph: false)
        try sess.run(model.train, feeds: model.feeds)
        let current = model.values(sess)
        XCTAssertNotEqual(current, before)
        assertKilnError(.notFound, contains: ["dense/bias", path("partial")]) { try Saver(graph: model.graph).restore(sess, prefix: partial) }
        XCTAssertEqual(model.values(sess), current)
    }

    func testRestoreOfAMisshapedOrMistypedVariableIsInvalidArgumentNamingItAndChangesNothing() throws {
        let (model, saver, sess, _, before) = try sessionWithCheckpoint()
        let good = try CheckpointReader(prefix: path("model.ckpt-2")).allTensors()
        var shapes = good
        shapes["dense/bias"] = try Tensor(shape: [3], scalars: [1, 2, 3] as [Float])
        try CheckpointWriter.write(shapes, prefix: path("misshaped"))
        assertKilnError(.invalidArgument, contains: ["dense/bias", "[3]", "[2]"]) { try saver.restore(sess, prefix: path("misshaped")) }
        var types = good
        types["global_step"] = Tensor(Int32(7))
        try CheckpointWriter.write(types, prefix: path("mistyped"))
        assertKilnError(.invalidArgument, contains: ["global_step", "int32", "int64"]) { try saver.restore(sess, prefix: path("mistyped")) }
        XCTAssertEqual(model.values(sess), before)
    }

    // MARK: the save/ subgraph

    func testSaverBuildsTensorFlowsSaveSubgraphAndItsOpsRunThroughTheSession() throws {
        let model = try RegressionModel()
        let g = model.graph
        let saver = try Saver(graph: g)
        XCTAssertEqual(saver.saverDef.filenameTensorName, "save/Const:0")
        XCTAssertEqual(saver.saverDef.saveTensorName, "save/control_dependency:0")
        XCTAssertEqual(saver.saverDef.restoreOpName, "save/restore_all")
        XCTAssertEqual(saver.saverDef.maxToKeep, 5)
        XCTAssertEqual(saver.saverDef.keepCheckpointEveryNHours, 10000)
        XCTAssertEqual(saver.saverDef.version, .v2)
        let save = try XCTUnwrap(g.operation(named: "save/SaveV2"))
        XCTAssertEqual(save.inputs.map(\.name), ["save/Const:0", "save/SaveV2/tensor_names:0", "save/SaveV2/shape_and_slices:0",
                                                 "dense/bias:0", "dense/kernel:0", "global_step:0"])
        XCTAssertEqual(g.operation(named: "save/restore_all")?.controlInputs.map(\.name), ["save/Assign", "save/Assign_1", "save/Assign_2"])
        XCTAssertEqual(g.operation(named: "save/Assign_2")?.inputs.map(\.name), ["global_step:0", "save/RestoreV2:2"])
        XCTAssertEqual(g.operation(named: "save/RestoreV2")?.device, "/device:CPU:0")
        // A second saver gets its own scope.
        XCTAssertEqual(try Saver(graph: g).saverDef.restoreOpName, "save_1/restore_all")

        let sess = try trained(model, steps: 2)
        let filename = try g.tensor(named: saver.saverDef.filenameTensorName)
        let prefix = path("through-graph")
        let written = try sess.run(try g.tensor(named: saver.saverDef.saveTensorName), feeds: [filename: Tensor(prefix)])
        XCTAssertEqual(written, Tensor(prefix))
        XCTAssertEqual(try CheckpointReader(prefix: prefix).allTensors(), Dictionary(uniqueKeysWithValues: model.values(sess).map { ($0.key, $0.value) }))

        let fresh = try Session(graph: g)
        try fresh.run(try XCTUnwrap(g.operation(named: saver.saverDef.restoreOpName)), feeds: [filename: Tensor(prefix)])
        XCTAssertEqual(model.values(fresh), model.values(sess))
        XCTAssertEqual(fresh.compileCount, 1)
        // The default filename is TensorFlow's "model".
        XCTAssertEqual(try fresh.run(filename), Tensor("model"))
        assertKilnError(.notFound, contains: [path("absent")]) {
            try fresh.run(try XCTUnwrap(g.operation(named: "save/restore_all")), feeds: [filename: Tensor(path("absent"))])
        }
    }
}
