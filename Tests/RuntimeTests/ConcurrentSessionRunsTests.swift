import Foundation
import XCTest
import Kiln
import KilnTestSupport

/// Runs of one session from several threads (a training loop beside its queue runners): compiled
/// code runs with the session's lock let go, yet runs that use variables stay one at a time, so
/// no update is lost and no read sees half a write; closing the session meanwhile ends the other
/// threads' runs with `cancelled`.
final class ConcurrentSessionRunsTests: XCTestCase {
    /// A counter bumped by `bump`, and `square` (x times x, no variable) of a fed matrix.
    private struct Model {
        let g = Graph()
        let counter: Variable
        let bump: Output
        let x: Output
        let square: Output
        let input: Tensor

        init() throws {
            counter = try g.variable(Tensor(Float(0)), name: "counter")
            bump = try g.assignAdd(counter, g.constant(Float(1)), name: "bump")
            x = try g.placeholder(.float32, shape: Shape([48, 48]), name: "x")
            square = try g.matmul(x, x, name: "square")
            input = try Tensor(shape: [48, 48], scalars: (0..<(48 * 48)).map { Float($0 % 7) - 3 })
        }
    }

    func testVariableUpdatesFromSeveralThreadsAreNeverLostAndReadsSeeWholeValues() throws {
        let m = try Model()
        let sess = try Session(graph: m.g)
        try sess.run(m.g.globalVariablesInitializer())
        let expected = try sess.run(m.square, feeds: [m.x: m.input])
        let runs = 150
        let failures = LockedList<String>()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                switch worker {
                case 0, 1:
                    for _ in 0..<runs { _ = try sess.run(m.bump) }
                case 2:
                    for _ in 0..<runs where try sess.run(m.square, feeds: [m.x: m.input]) != expected {
                        failures.add("a run of square computed another matrix")
                    }
                default:
                    var last: Float = 0
                    for _ in 0..<runs {
                        let seen = try XCTUnwrap(sess.value(of: m.counter)).scalar(as: Float.self)
                        if seen < last || seen != seen.rounded() || seen > Float(2 * runs) { failures.add("read \(seen) after \(last)") }
                        last = seen
                    }
                }
            } catch { failures.add("worker \(worker): \(error)") }
        }
        XCTAssertEqual(failures.all(), [])
        XCTAssertEqual(try sess.run(m.counter.value).scalar(as: Float.self), Float(2 * runs))
    }

    /// The digits pipeline's shape: two queue runners read 32 records a run, parse and decode
    /// them (a batch, parsed with the session's lock let go) and enqueue them, while the main
    /// thread's steps dequeue batches and add their labels to a variable. Every record arrives
    /// once, whole, every update lands, and the input ends with outOfRange.
    func testBatchesParsedOnRunnerThreadsBesideStepsArriveOnceAndWhole() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-concurrent-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let count = 1000
        let paths = try (0..<2).map { file in
            let path = dir.appendingPathComponent("part\(file).tfrecord").path
            try TFRecordWriter.write(try (0..<(count / 2)).map { r in
                let i = file * count / 2 + r
                return try Example(["label": .int64([Int64(i)]), "raw": .bytes([[UInt8(i % 256), UInt8(i / 256), 7]])]).serialized()
            }, to: path)
            return path
        }
        let g = Graph()
        let files = try g.stringInputProducer(paths, numEpochs: 1, shuffle: false)
        let (_, serialized) = try TFRecordReader(graph: g).readUpTo(files.handle, numRecords: 32)
        let f = try g.parseExample(serialized, features: ["label": FixedLenFeature([], .int64), "raw": FixedLenFeature([], .string)])
        let raw = try g.reshape(g.decodeRaw(f["raw"]!.dense!, outType: .uint8), [-1, 3])
        let b = try g.batch([f["label"]!.dense!, raw], batchSize: 24, numThreads: 2, capacity: 100, enqueueMany: true, allowSmallerFinalBatch: true)
        let total = try g.variable(Tensor(Int64(0)), name: "total")
        let add = try g.assignAdd(total, g.reduceSum(b[0]))
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        try sess.run(g.localVariablesInitializer())
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        var labels: [Int64] = [], wrong: [Int64] = []
        do {
            while labels.count <= count {
                let r = try sess.run([b[0], b[1], add])
                let l = try r[0].scalars(as: Int64.self), bytes = try r[1].scalars(as: UInt8.self)
                for (k, i) in l.enumerated() where bytes[(3 * k)..<(3 * k + 3)] != [UInt8(i % 256), UInt8(i / 256), 7] { wrong.append(i) }
                labels += l
            }
        } catch let e as KilnError where e.code == .outOfRange {}
        coord.requestStop()
        try coord.join(threads, stopGracePeriod: 30)
        XCTAssertEqual(wrong, [])
        XCTAssertEqual(labels.sorted(), (0..<Int64(count)).map { $0 })
        XCTAssertEqual(try sess.run(total.value), Tensor(Int64(count * (count - 1) / 2)))
    }

    func testClosingTheSessionWhileOtherThreadsRunEndsTheirRunsWithCancelled() throws {
        let m = try Model()
        let sess = try Session(graph: m.g)
        try sess.run(m.g.globalVariablesInitializer())
        let started = DispatchGroup()
        let ended = DispatchGroup()
        let failures = LockedList<String>()
        for worker in 0..<3 {
            started.enter()
            ended.enter()
            Thread.detachNewThread {
                var runs = 0
                do {
                    while true {
                        if worker == 2 { _ = try sess.run(m.square, feeds: [m.x: m.input]) } else { _ = try sess.run(m.bump) }
                        runs += 1
                        if runs == 20 { started.leave() }
                    }
                } catch let error as KilnError where error.code == .cancelled {
                    if runs < 20 { started.leave() }
                } catch {
                    failures.add("worker \(worker): \(error)")
                    if runs < 20 { started.leave() }
                }
                ended.leave()
            }
        }
        XCTAssertEqual(started.wait(timeout: .now() + 60), .success)
        sess.close()
        XCTAssertEqual(ended.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(failures.all(), [])
    }
}
