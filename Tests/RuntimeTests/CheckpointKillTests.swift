import Foundation
import XCTest
@testable import KilnRuntime
import Kiln

/// Checkpoints survive SIGKILL at any moment: a child process (CheckpointKillChild) saves again
/// and again to one place and is killed at random moments; after each kill the checkpoint must
/// restore to one complete save (every value from the same save, no older than the last save
/// that returned), the restore must leave no temporaries behind, and neither may the next save.
final class CheckpointKillTests: KilnBinaryTestCase {
    private var child: URL { kiln.deletingLastPathComponent().appendingPathComponent("CheckpointKillChild") }

    /// What the kills left, for the log (the report quotes these numbers).
    private struct Tally {
        var kills = 0, restores = 0, leftFiles = 0, leftTemporaries = 0, leftCommitRecords = 0, cleanedBySave = 0
    }

    func testRepeatedSavesToOnePrefixSurviveRandomKills() throws {
        try killRepeatedly(mode: "writer", kills: 50, seconds: 45) { snapshot, last in
            try self.assertOneSave(CheckpointReader(prefix: snapshot + "/model").allTensors(), after: last, keys: ["a/weights", "b/step", "c/name", "d/table"])
        }
    }

    func testSaverWithGlobalStepSurvivesRandomKills() throws {
        try killRepeatedly(mode: "saver", kills: 15, seconds: 30) { snapshot, last in
            let state = try XCTUnwrap(try CheckpointState.read(directory: snapshot), "no checkpoint state after a kill")
            let step = try self.assertOneSave(CheckpointReader(prefix: state.modelCheckpointPath).allTensors(), after: last, keys: ["a/weights", "b/step", "d/table"])
            XCTAssertEqual(state.modelCheckpointPath, snapshot + "/model.ckpt-\(step)")
            XCTAssertEqual(state.allModelCheckpointPaths.last, state.modelCheckpointPath)
            // Exactly the listed checkpoints are on disk, each whole with its graph: the
            // deletions beyond maxToKeep commit with the save.
            for p in state.allModelCheckpointPaths {
                XCTAssertNoThrow(try CheckpointReader(prefix: p).allTensors(), p)
                XCTAssertTrue(FileManager.default.fileExists(atPath: p + ".meta"), p)
            }
            let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: snapshot).filter { $0.hasPrefix("model.ckpt-") }
                .map { $0.components(separatedBy: ".")[0...1].joined(separator: ".") })
            XCTAssertEqual(onDisk, Set(state.allModelCheckpointPaths.map { ($0 as NSString).lastPathComponent }))
        }
    }

    func testSaveV2RunThroughASessionSurvivesRandomKills() throws {
        try killRepeatedly(mode: "savev2", kills: 15, seconds: 30) { snapshot, last in
            try self.assertOneSave(CheckpointReader(prefix: snapshot + "/model").allTensors(), after: last, keys: ["a/weights", "b/step", "d/table"])
        }
    }

    // MARK: the harness

    /// Every tensor holds the same save number, which is the last one the child reported saved
    /// or the one after it (killed after its commit point but before it printed).
    @discardableResult
    private func assertOneSave(_ tensors: [String: Tensor], after last: Int, keys: [String]) throws -> Int {
        XCTAssertEqual(tensors.keys.sorted(), keys)
        let step = Int(try XCTUnwrap(tensors["b/step"]).element(at: 0).asDouble)
        XCTAssertTrue(step == last || step == last + 1, "restored save \(step), but save \(last) had returned before the kill")
        for (key, t) in tensors {
            if t.dtype == .string {
                XCTAssertEqual(t.strings, [Array("save-\(step)".utf8)], key)
            } else {
                for i in 0..<t.elementCount where t.element(at: i).asDouble != Double(step) {
                    XCTFail("\(key)[\(i)] is \(t.element(at: i).asDouble) in save \(step): values from two saves")
                    break
                }
            }
        }
        return step
    }

    /// Files a killed save may leave: temporaries and commit records.
    private func leftovers(_ dir: String) throws -> (temporaries: [String], records: [String]) {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        return (names.filter { $0.contains(".tempstate") }, names.filter { $0.hasSuffix(CheckpointCommit.recordSuffix) })
    }

    private func killRepeatedly(mode: String, kills: Int, seconds: Double,
                                check: (_ snapshot: String, _ lastSaved: Int) throws -> Void) throws {
        guard FileManager.default.isExecutableFile(atPath: child.path) else {
            XCTFail("no CheckpointKillChild at \(child.path): build it with `swift build --build-tests` first")
            return
        }
        let dir = path("ckpt")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var tally = Tally()
        var next = 1
        var rng = SystemRandomNumberGenerator()
        let deadline = Date().addingTimeInterval(seconds)
        while tally.kills < kills && Date() < deadline {
            let left = try leftovers(dir)
            if !(left.temporaries + left.records).isEmpty { tally.leftFiles += 1 }
            if !left.temporaries.isEmpty { tally.leftTemporaries += 1 }
            if !left.records.isEmpty { tally.leftCommitRecords += 1 }

            let p = Process()
            p.executableURL = child
            p.arguments = [mode, dir, String(next)]
            let out = Pipe(), input = Pipe()
            p.standardOutput = out
            p.standardInput = input
            p.standardError = FileHandle.nullDevice
            try p.run()
            // The first save, then a pause: it must have cleaned up what the last kill left.
            var text = ""
            while !text.contains("\n") {
                let d = out.fileHandleForReading.availableData
                if d.isEmpty { break }
                text += String(decoding: d, as: UTF8.self)
            }
            guard text.hasPrefix("saved \(next)\n") else {
                p.waitUntilExit()
                XCTFail("\(mode) child exited with \(p.terminationStatus) before its first save (printed '\(text)')")
                return
            }
            let after = try leftovers(dir)
            XCTAssertEqual(after.temporaries + after.records, [], "the save after a kill left files behind")
            if !(left.temporaries + left.records).isEmpty && (after.temporaries + after.records).isEmpty { tally.cleanedBySave += 1 }

            input.fileHandleForWriting.write(Data("go\n".utf8))
            usleep(UInt32.random(in: 0...40_000, using: &rng))
            kill(p.processIdentifier, SIGKILL)
            text += String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            tally.kills += 1
            let last = text.split(separator: "\n").compactMap { Int($0.dropFirst(6)) }.max() ?? next

            // Restore from a copy, so that the original shows the next save's cleanup.
            let snapshot = path("snapshot-\(tally.kills)")
            try FileManager.default.copyItem(atPath: dir, toPath: snapshot)
            let failures = testRun?.failureCount ?? 0
            do { try check(snapshot, last) } catch { XCTFail("kill \(tally.kills) (\(mode)): restoring failed: \(error)") }
            let restored = try leftovers(snapshot)
            XCTAssertEqual(restored.temporaries + restored.records, [], "restoring after a kill left files behind")
            if testRun?.failureCount == failures { tally.restores += 1 }
            try FileManager.default.removeItem(atPath: snapshot)
            next = last + 2
        }
        let report = "\(mode): \(tally.kills) kills, \(tally.restores) restored one complete save; \(tally.leftFiles) kills left files " +
            "(\(tally.leftTemporaries) temporaries, \(tally.leftCommitRecords) a commit record to roll forward), the next save cleaned \(tally.cleanedBySave) of them"
        FileHandle.standardError.write(Data("CheckpointKillTests \(report)\n".utf8))
        XCTAssertGreaterThanOrEqual(tally.kills, min(kills, 10), "too few kills in \(seconds) s: \(report)")
        XCTAssertEqual(tally.restores, tally.kills, report)
    }
}
