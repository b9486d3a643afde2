import Foundation
import KilnTestSupport
import XCTest

/// Data-parallel training under mpirun (Tests/DistributedWorker): after K steps every rank's
/// variables equal those of one process trained on the same global batches, bit-identical across
/// ranks, across runs and with or without tensor fusion; a dead, stalled or different rank makes
/// the others fail with an error naming it, within the timeout. Skipped loudly without mpirun.
final class DistributedTrainingTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-distributed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// A program built beside the test bundle by `swift build --build-tests`, or a failure.
    private func built(_ name: String) throws -> String {
        let path = ToolRunner.built(name, besideBundleOf: DistributedTrainingTests.self).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("no \(name) at \(path): build it with `swift build --build-tests` first")
            throw CocoaError(.fileNoSuchFile)
        }
        return path
    }

    /// `mpirun -np N worker mpi DIR arguments`; a failure rather than a hang past `limit` seconds.
    /// `recovery`: mpirun leaves the job running when a rank dies or exits non-zero (by default
    /// it ends the job at once, naming the dead rank itself), so each survivor's own report of
    /// the failure can be checked; mpirun's status then says nothing of the ranks'.
    private func mpirun(_ n: Int, _ directory: String, _ arguments: [String], program: String = "DistributedWorker", recovery: Bool = false,
                        limit: Double = 240) throws -> (status: Int32, output: String, seconds: Double) {
        let mpirun = try ToolRunner.required("mpirun", package: "openmpi-bin")
        let path = try built(program)
        let argv = [mpirun, "--allow-run-as-root", "--oversubscribe"] + (recovery ? ["--mca", "orte_enable_recovery", "1", "--mca", "orte_abort_on_non_zero_status", "0"] : [])
            + ["-np", String(n)] + (program == "DistributedWorker" ? [path, "mpi", directory] : [path]) + arguments
        let start = Date()
        guard let result = withDeadline(limit, { try ToolRunner.run(argv) }) else {
            XCTFail("`\(argv.joined(separator: " "))` did not finish within \(limit) s")
            throw CocoaError(.executableLoad)
        }
        let (status, output) = try result.get()
        return (status, output, Date().timeIntervalSince(start))
    }

    private func single(_ directory: String, _ arguments: [String]) throws {
        try ToolRunner.succeed([try built("DistributedWorker"), "single", directory] + arguments)
    }

    /// name -> values, from a file the worker wrote.
    private func variables(_ path: String) throws -> [String: [Double]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var out: [String: [Double]] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            out[String(parts[0])] = parts.dropFirst().map { Double($0)! }
        }
        return out
    }

    private func trainAndCompare(ranks n: Int, _ arguments: [String]) throws {
        let dir = scratch.appendingPathComponent("np\(n)").path
        let r = try mpirun(n, dir, arguments)
        XCTAssertEqual(r.status, 0, r.output)
        try single(dir, arguments)
        let expected = try variables(dir + "/single.txt")
        XCTAssertFalse(expected.isEmpty)
        let rank0 = try variables(dir + "/rank0.txt")
        for rank in 0..<n {
            let got = try variables(dir + "/rank\(rank).txt")
            XCTAssertEqual(got.keys.sorted(), expected.keys.sorted())
            for (name, values) in expected {
                let v = try XCTUnwrap(got[name])
                XCTAssertEqual(v.count, values.count, name)
                // As one process trained on the global batches; the same bits on every rank.
                for (a, b) in zip(v, values) { XCTAssertEqual(a, b, accuracy: 1e-6, "rank \(rank) of \(n), \(name)") }
                XCTAssertEqual(v, rank0[name], "rank \(rank) of \(n) differs from rank 0 in \(name)")
            }
        }
        // Training moved the variables away from the initial values (the test could fail).
        XCTAssertGreaterThan(try XCTUnwrap(expected["global_step"]?.first), 0)
    }

    /// With the allreduce overlapping the backward pass: buckets of at most 100 bytes (three or
    /// four per step for this model), each reduced while the earlier layers' gradients are computed.
    private let overlapped = ["--overlap", "on", "--fusion", "100"]

    func testTwoRanksTrainLikeOneProcessOnTheGlobalBatches() throws {
        try trainAndCompare(ranks: 2, ["--steps", "6", "--optimizer", "momentum"] + overlapped)
    }

    func testFourRanksTrainLikeOneProcessOnTheGlobalBatches() throws {
        try trainAndCompare(ranks: 4, ["--steps", "4", "--optimizer", "adam"] + overlapped)
    }

    /// The reduction order is fixed: two runs, a run with fusion off (every gradient its own
    /// allreduce), and runs overlapping the allreduce with the backward pass (in buckets of 100
    /// bytes, and one per gradient) give the same bits.
    func testResultsAreBitIdenticalAcrossRunsWithoutFusionAndWithOverlap() throws {
        var files: [String] = []
        for (k, (fusion, overlap)) in [("67108864", "off"), ("67108864", "off"), ("0", "off"), ("100", "on"), ("0", "on")].enumerated() {
            let dir = scratch.appendingPathComponent("run\(k)").path
            let r = try mpirun(3, dir, ["--steps", "4", "--batch", "9", "--fusion", fusion, "--overlap", overlap])
            XCTAssertEqual(r.status, 0, r.output)
            files.append(try String(contentsOfFile: dir + "/rank1.txt", encoding: .utf8))
        }
        for k in 1..<files.count { XCTAssertEqual(files[0], files[k], "run \(k)") }
    }

    /// A rank killed before step 2: each survivor fails within the timeout (plus the grace
    /// period and start-up) with an error naming rank 1 and step 2, instead of hanging; rank 2,
    /// whose ring neighbour rank 1 is not, names it too.
    func testKilledRankMakesTheOthersFailNamingItWithinTheTimeout() throws {
        let r = try mpirun(3, scratch.path, ["--steps", "5", "--timeout", "5", "--die-rank", "1", "--die-step", "2"], recovery: true, limit: 120)
        for survivor in [0, 2] {
            XCTAssertTrue(r.output.contains("DistributedWorker rank \(survivor): deadlineExceeded: allreduce of 4 tensors"), "rank \(survivor) did not report:\n\(r.output)")
            XCTAssertTrue(r.output.contains("on rank \(survivor) of 3: rank 1 did not answer"), r.output)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path + "/rank0.txt"), "rank 0 finished training")
        // Start-up and compiles included: far below the minutes of a hang.
        XCTAssertLessThan(r.seconds, 90)
        XCTAssertTrue(r.output.contains("at step 2 timed out after 5.0 s"), r.output)
        XCTAssertTrue(r.output.contains("rank 1 did not answer"), r.output)
        XCTAssertFalse(r.output.contains("rank 0 did not answer") || r.output.contains("rank 2 did not answer"), r.output)
    }

    /// The same while the survivors' allreduce overlaps their backward pass: the first bucket
    /// (the last layer's gradients) times out on its thread, the later buckets are not started,
    /// and the step fails naming rank 1 and step 2 within the timeout.
    func testKilledRankDuringAnOverlappedAllreduceMakesTheOthersFailNamingIt() throws {
        let r = try mpirun(3, scratch.path, ["--steps", "5", "--timeout", "5", "--die-rank", "1", "--die-step", "2"] + overlapped, recovery: true, limit: 120)
        for survivor in [0, 2] {
            XCTAssertTrue(r.output.contains("DistributedWorker rank \(survivor): deadlineExceeded: allreduce of "), "rank \(survivor) did not report:\n\(r.output)")
            XCTAssertTrue(r.output.contains("at step 2 timed out after 5.0 s on rank \(survivor) of 3: rank 1 did not answer"), r.output)
        }
        // One bucket's deadline, not one per bucket.
        XCTAssertEqual(r.output.components(separatedBy: "timed out after").count - 1, 2, r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path + "/rank0.txt"), "rank 0 finished training")
        XCTAssertLessThan(r.seconds, 90)
    }

    /// A rank that stops answering (alive, so mpirun cannot see it): the other fails naming it,
    /// and its exit makes mpirun end the job, the stalled rank included.
    func testStalledRankMakesTheOthersFailNamingIt() throws {
        let r = try mpirun(2, scratch.path, ["--steps", "4", "--timeout", "4", "--die-rank", "1", "--die-step", "1", "--stall"], limit: 120)
        XCTAssertEqual(r.status, 3, r.output)
        XCTAssertLessThan(r.seconds, 90)
        XCTAssertTrue(r.output.contains("DistributedWorker rank 0: "), r.output)
        XCTAssertTrue(r.output.contains("at step 1 timed out after 4.0 s on rank 0 of 2: rank 1 did not answer"), r.output)
    }

    /// Ranks whose graphs differ fail at the first step with a clear error, on every rank.
    func testRanksWithDifferentGraphsFailAtTheFirstStep() throws {
        let r = try mpirun(2, scratch.path, ["--steps", "2", "--timeout", "20", "--optimizer", "sgd", "--mismatch-rank", "1"], recovery: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path + "/rank0.txt"), "rank 0 finished training")
        for rank in 0..<2 {
            XCTAssertTrue(r.output.contains("DistributedWorker rank \(rank): invalidArgument: the ranks' graphs differ: the list of tensors to allreduce at step 0"), r.output)
        }
        XCTAssertTrue(r.output.contains("on rank 0 but a different hash on rank 1"), r.output)
    }

    /// The hash covers how the round is reduced: a rank that overlaps (in buckets) beside ranks
    /// that reduce at once would exchange mismatched buffers; every rank fails at the first step.
    func testRanksThatOverlapDifferentlyFailAtTheFirstStep() throws {
        let r = try mpirun(2, scratch.path, ["--steps", "2", "--timeout", "20", "--fusion", "100", "--overlap-rank", "1"], recovery: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path + "/rank0.txt"), "rank 0 finished training")
        for rank in 0..<2 {
            XCTAssertTrue(r.output.contains("DistributedWorker rank \(rank): invalidArgument: the ranks' graphs differ"), r.output)
        }
        XCTAssertTrue(r.output.contains("reduced overlapped in buckets"), r.output)
    }

    /// The digits example under `mpirun -np 2 --distributed`: each rank trains on its shard,
    /// the model still learns (the self-test), and rank 0 alone prints the summary line.
    func testDigitsTrainsUnderMpirunAndOnlyRankZeroReports() throws {
        let r = try mpirun(2, scratch.path, ["--distributed", "--self-test", "--train-dir", scratch.path, "--log-every", "0"], program: "Digits", limit: 400)
        XCTAssertEqual(r.status, 0, r.output)
        let summaries = r.output.split(separator: "\n").filter { $0.hasPrefix("digits: ") }
        XCTAssertEqual(summaries.count, 1, r.output)
        XCTAssertTrue(summaries.first?.contains(" ranks=2 ") ?? false, r.output)
        XCTAssertTrue(r.output.contains("self-test: passed"), r.output)
        // Rank 0 alone saved the checkpoint.
        XCTAssertEqual(r.output.components(separatedBy: "saved ").count - 1, 1, r.output)
    }
}
