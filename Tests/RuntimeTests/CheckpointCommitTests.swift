import Foundation
import XCTest
@testable import KilnRuntime
import Kiln
import KilnTestSupport

/// The commit sequence of a checkpoint save (CheckpointCommit), stopped by a simulated kill after
/// each of its steps: whatever step it stops at, a reader and the next save find one whole
/// checkpoint, the old one before the commit point and the new one from it on, and nothing left
/// over.
final class CheckpointCommitTests: ScratchDirectoryTestCase {
    private func values(_ v: Float) throws -> [String: Tensor] {
        ["w": try Tensor(shape: [2, 3], scalars: [Float](repeating: v, count: 6)), "name": Tensor("save \(v)"), "b": Tensor(Int64(v))]
    }

    private func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tempstate") || $0.hasSuffix(CheckpointCommit.recordSuffix) }
    }

    private func kill(at step: CheckpointCommit.Step) -> CheckpointCommit.Hook {
        { if $0 == step { throw CheckpointCommit.SimulatedKill() } }
    }

    /// A bundle replacing one with the same prefix: 2 renames.
    func testAKillAtEachStepOfOverwritingAPrefixLeavesTheOldOrTheNewCheckpoint() throws {
        let steps = CheckpointCommit.Step.sequence(operations: 2)
        for (n, step) in steps.enumerated() {
            for nextAction in ["restore", "save"] {
                let dir = path("\(n)-\(nextAction)")
                let prefix = dir + "/model.ckpt"
                try CheckpointWriter.write(values(1), prefix: prefix)
                XCTAssertThrowsError(try CheckpointWriter.write(values(2).map { (key: $0.key, tensor: $0.value) }, prefix: prefix, hook: kill(at: step))) {
                    XCTAssertTrue($0 is CheckpointCommit.SimulatedKill, "\($0)")
                }
                XCTAssertNotEqual(try leftovers(dir), [], "a kill at \(step) leaves its files as they are")
                let committed = n >= steps.firstIndex(of: .recordCommitted)!
                let expected = try values(committed ? 2 : 1)
                if nextAction == "restore" {
                    XCTAssertEqual(try CheckpointReader(prefix: prefix).allTensors(), expected, "killed at \(step)")
                    // What recovery leaves is exactly what a clean save writes (TensorFlow reads it).
                    let clean = path("clean-\(n)/model.ckpt")
                    try CheckpointWriter.write(expected, prefix: clean)
                    for file in [CheckpointPaths.index(prefix: prefix), CheckpointPaths.data(prefix: prefix)] {
                        XCTAssertEqual(FileManager.default.contents(atPath: file),
                                       FileManager.default.contents(atPath: file.replacingOccurrences(of: prefix, with: clean)), "killed at \(step): \(file)")
                    }
                } else {
                    try CheckpointWriter.write(values(3), prefix: dir + "/other")
                    XCTAssertEqual(try leftovers(dir), [], "the next save in the directory cleans up after a kill at \(step)")
                    XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir)),
                                   ["model.ckpt.index", "model.ckpt.data-00000-of-00001", "other.index", "other.data-00000-of-00001"])
                    try CheckpointWriter.write(values(4), prefix: prefix)
                    XCTAssertEqual(try CheckpointReader(prefix: prefix).allTensors(), try values(4))
                }
                XCTAssertEqual(try leftovers(dir), [], "killed at \(step), then \(nextAction)")
            }
        }
    }

    /// A Saver save with a global step and maxToKeep 1: data, index, .meta and the state file
    /// renamed, then the previous checkpoint's index, data and .meta deleted, as one commit.
    func testAKillAtEachStepOfASaverSaveLeavesTheOldOrTheNewStateWithItsCheckpointsOnly() throws {
        let steps = CheckpointCommit.Step.sequence(operations: 7)
        for (n, step) in steps.enumerated() {
            let model = try RegressionModel()
            let sess = try Session(graph: model.graph)
            try sess.run(model.initializer)
            let saver = try Saver(graph: model.graph, maxToKeep: 1)
            let dir = path("saver-\(n)")
            let first = try saver.save(sess, prefix: dir + "/model.ckpt", globalStep: 1)
            let before = model.values(sess)
            try sess.run(model.train, feeds: model.feeds)
            let after = model.values(sess)
            saver.commitHook = kill(at: step)
            XCTAssertThrowsError(try saver.save(sess, prefix: dir + "/model.ckpt", globalStep: 2))

            let committed = n >= steps.firstIndex(of: .recordCommitted)!
            let latest = try XCTUnwrap(try latestCheckpoint(directory: dir), "killed at \(step)")
            XCTAssertEqual(latest, committed ? dir + "/model.ckpt-2" : first, "killed at \(step)")
            let kept = committed ? "model.ckpt-2" : "model.ckpt-1"
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(),
                           ["checkpoint", kept + ".data-00000-of-00001", kept + ".index", kept + ".meta"], "killed at \(step)")
            let fresh = try Session(graph: model.graph)
            try saver.restore(fresh, prefix: latest)
            XCTAssertEqual(model.values(fresh), committed ? after : before, "killed at \(step)")
        }
    }

    func testATornCommitRecordIsDiscardedWithItsTemporariesAndTheCheckpointKept() throws {
        let prefix = path("model")
        try CheckpointWriter.write(values(1), prefix: prefix)
        let files = try CheckpointWriter.temporaries(values(2).map { (key: $0.key, tensor: $0.value) }, prefix: prefix)
        var record = try CheckpointCommit.encode(renames: files.map { (($0.temporaryPath as NSString).lastPathComponent, ($0.path as NSString).lastPathComponent) }, removals: [])
        record[record.count / 2] ^= 1
        try Data(record).write(to: URL(fileURLWithPath: prefix + CheckpointCommit.recordSuffix))
        files.forEach { $0.release() }
        XCTAssertEqual(try CheckpointReader(prefix: prefix).allTensors(), try values(1))
        XCTAssertEqual(try leftovers(scratch.path), [])
    }

    func testTheSweepKeepsTemporariesALiveWriterHoldsAndFilesThatAreNotCheckpoints() throws {
        let live = try AtomicFile(path: path("model.index"))
        let npy = path("x.npy.tempstate123")
        let dead = path("model.data-00000-of-00001.tempstate42")
        for p in [npy, dead] { XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data([1]))) }
        try CheckpointCommit.recover(directory: scratch.path)
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.temporaryPath), "a temporary still being written")
        XCTAssertTrue(FileManager.default.fileExists(atPath: npy))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dead), "a killed writer's temporary")
        live.abort()
        for name in ["a.index.tempstate1", "a.meta.tempstate2", "checkpoint.tempstate3", "a.kiln-commit.tempstate4", "a.data-00001-of-00002.tempstate5"] {
            XCTAssertTrue(CheckpointCommit.isCheckpointTemporary(name), name)
        }
        for name in ["a.index.tempstate", "a.index.tempstateX", ".index.tempstate1", "a.data-1-of-2.tempstate5", "notes.txt.tempstate6"] {
            XCTAssertFalse(CheckpointCommit.isCheckpointTemporary(name), name)
        }
    }

    func testCommitRecordsRoundTripAnyFileNameAndRejectDamage() throws {
        let renames = [("a b\n\"c\".index.tempstate1", "a b\n\"c\".index"), ("模型.data-00000-of-00001.tempstate2", "模型.data-00000-of-00001")]
        let record = try CheckpointCommit.encode(renames: renames, removals: ["old.index", "old.meta"])
        let decoded = try XCTUnwrap(CheckpointCommit.decode(record))
        XCTAssertEqual(decoded.renames.map { [$0.0, $0.1] }, renames.map { [$0.0, $0.1] })
        XCTAssertEqual(decoded.removals, ["old.index", "old.meta"])
        XCTAssertNil(CheckpointCommit.decode(Array(record.dropLast(3))), "torn")
        XCTAssertNil(CheckpointCommit.decode(try CheckpointCommit.encode(renames: [("x.tempstate1", "../escape")], removals: [])), "a name outside the directory")
    }

    func testASaveMayNotSpanTwoDirectories() throws {
        let files = [try AtomicFile.complete([1], path: path("a/x.index")), try AtomicFile.complete([2], path: path("b/x.meta"))]
        assertKilnError(.invalidArgument, contains: ["one directory"]) {
            try CheckpointCommit.commit(files, removing: [], name: path("a/x"))
        }
        XCTAssertEqual(try leftovers(path("a")) + leftovers(path("b")), [])
    }
}
