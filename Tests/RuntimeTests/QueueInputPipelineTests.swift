import Foundation
import XCTest
import Kiln

/// TensorFlow's input helpers end to end: producers with numEpochs, batch and shuffle_batch fed by
/// queue runners, outOfRange after exactly the right elements, and the checks made when built.
final class QueueInputPipelineTests: XCTestCase {
    private func thrown(_ body: () throws -> Void) -> KilnError? {
        do { try body() } catch { return error as? KilnError }
        return nil
    }

    /// Runs `fetches` until outOfRange (with a cap, so a bug cannot loop forever), then stops and joins.
    private func drain(_ sess: Session, _ fetches: [Output], limit: Int = 100) throws -> (values: [[Tensor]], end: KilnError?) {
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        var values: [[Tensor]] = []
        var end: KilnError?
        while values.count < limit {
            do { values.append(try sess.run(fetches)) } catch let e as KilnError { end = e; break }
        }
        coord.requestStop()
        try coord.join(threads, stopGracePeriod: 30)
        return (values, end)
    }

    func testStringInputProducerHandsOutEachStringNumEpochsTimesThenOutOfRange() throws {
        let g = Graph()
        let q = try g.stringInputProducer(["a", "b", "c"], numEpochs: 2, shuffle: false)
        XCTAssertEqual(q.name, "input_producer")
        let fraction = try g.tensor(named: "input_producer/fraction_of_32_full")
        XCTAssertEqual(fraction.dtype, .float32)
        let name = try q.dequeue()[0]
        let sess = try Session(graph: g)
        try sess.run(g.localVariablesInitializer())
        let (values, end) = try drain(sess, [name])
        XCTAssertEqual(values.map { String(decoding: $0[0].strings[0], as: UTF8.self) }, ["a", "b", "c", "a", "b", "c"])
        XCTAssertEqual(end, KilnError(.outOfRange, "FIFOQueue '_0_input_producer' is closed and has insufficient elements (requested 1, current size 0)"))
        XCTAssertEqual(try sess.run(fraction), Tensor(0 as Float))
    }

    func testStringInputProducerShardKeepsEveryCountthStringFromItsIndex() throws {
        for (index, expected) in [(0, ["a", "c", "e"]), (1, ["b", "d"])] {
            let g = Graph()
            let q = try g.stringInputProducer(["a", "b", "c", "d", "e"], numEpochs: 1, shuffle: false, shardIndex: index, shardCount: 2)
            let name = try q.dequeue()[0]
            let sess = try Session(graph: g)
            try sess.run(g.localVariablesInitializer())
            let (values, end) = try drain(sess, [name])
            XCTAssertEqual(values.map { String(decoding: $0[0].strings[0], as: UTF8.self) }, expected)
            XCTAssertEqual(end?.code, .outOfRange)
        }
        let g = Graph()
        XCTAssertEqual(thrown { _ = try g.stringInputProducer(["a", "b"], shardIndex: 2, shardCount: 2) },
                       .invalidArgument("string_input_producer 'input_producer': shard index 2 is not in 0..<2"))
        XCTAssertEqual(thrown { _ = try g.stringInputProducer(["a", "b"], shardIndex: 0, shardCount: 3) },
                       .invalidArgument("string_input_producer 'input_producer': 2 strings cannot be sharded 3 ways: every shard needs one at least"))
        let fed = try g.placeholder(.string, shape: [4], name: "files")
        XCTAssertEqual(thrown { _ = try g.stringInputProducer(fed, shardIndex: 0, shardCount: 2, name: "fed_producer") },
                       .invalidArgument("string_input_producer 'fed_producer' shards strings known when the graph is built (a constant), got 'files:0' (op: Placeholder)"))
    }

    func testLimitEpochsPassesTheTensorNumEpochsTimesThenReachesItsLimit() throws {
        let g = Graph()
        let limited = try g.limitEpochs(g.constant(Tensor(shape: [2], scalars: [1, 2] as [Float])), numEpochs: 2)
        XCTAssertEqual(limited.name, "limit_epochs:0")
        XCTAssertEqual(g.localVariables.map(\.name), ["limit_epochs/epochs"])
        let sess = try Session(graph: g)
        XCTAssertEqual(thrown { _ = try sess.run(limited) }, .failedPrecondition("Attempting to use uninitialized value limit_epochs/epochs"))
        try sess.run(g.localVariablesInitializer())
        for _ in 0..<2 { XCTAssertEqual(try sess.run(limited), try Tensor(shape: [2], scalars: [1, 2] as [Float])) }
        XCTAssertEqual(thrown { _ = try sess.run(limited) }, .outOfRange("Reached limit of 2"))
        XCTAssertEqual(try sess.value(of: XCTUnwrap(g.localVariables.first)), Tensor(Int64(2)))
    }

    func testShuffledProducerGivesAPermutationPerEpochFixedBySeed() throws {
        func order() throws -> [String] {
            let g = Graph()
            let names = (0..<8).map { "file\($0)" }
            let q = try g.stringInputProducer(names, numEpochs: 2, seed: 5)
            let name = try q.dequeue()[0]
            let sess = try Session(graph: g)
            try sess.run(g.localVariablesInitializer())
            let (values, end) = try drain(sess, [name])
            XCTAssertEqual(end?.code, .outOfRange)
            let got = values.map { String(decoding: $0[0].strings[0], as: UTF8.self) }
            XCTAssertEqual(got.count, 16)
            XCTAssertEqual(Array(got[0..<8]).sorted(), names)
            XCTAssertEqual(Array(got[8..<16]).sorted(), names)
            return got
        }
        let a = try order()
        XCTAssertNotEqual(a, (0..<8).map { "file\($0)" } + (0..<8).map { "file\($0)" })
        XCTAssertEqual(try order(), a)
    }

    func testSliceInputProducerHandsOutMatchingRowsForNumEpochs() throws {
        let g = Graph()
        let x = try g.constant(Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6] as [Float]))
        let y = try g.constant(Tensor(shape: [3], scalars: [10, 20, 30] as [Int32]))
        let row = try g.sliceInputProducer([x, y], numEpochs: 1, shuffle: false)
        XCTAssertEqual(row[0].shape, Shape([2]))
        let sess = try Session(graph: g)
        try sess.run(g.localVariablesInitializer())
        let (values, end) = try drain(sess, row)
        XCTAssertEqual(values.map { try! $0[1].scalar(as: Int32.self) }, [10, 20, 30])
        XCTAssertEqual(values.map { try! $0[0].scalars(as: Float.self) }, [[1, 2], [3, 4], [5, 6]])
        XCTAssertEqual(end?.code, .outOfRange)
    }

    func testBatchStacksElementsAndTheSmallerFinalBatchIsOnlyGivenWhenAllowed() throws {
        func batches(allowSmaller: Bool) throws -> ([[Int32]], KilnError?, Output) {
            let g = Graph()
            let q = try g.rangeInputProducer(10, numEpochs: 1, shuffle: false)
            let value = try q.dequeue()[0]
            let b = try g.batch([value], batchSize: 4, numThreads: 2, capacity: 8, allowSmallerFinalBatch: allowSmaller)
            _ = try g.tensor(named: "batch/fraction_of_8_full")
            let sess = try Session(graph: g)
            try sess.run(g.localVariablesInitializer())
            let (values, end) = try drain(sess, [b[0]])
            return (values.map { try! $0[0].scalars(as: Int32.self) }, end, b[0])
        }
        let (strict, strictEnd, strictOut) = try batches(allowSmaller: false)
        XCTAssertEqual(strictOut.shape, Shape([4]))
        XCTAssertEqual(strictOut.name, "batch:0")
        XCTAssertEqual(strict.count, 2)
        // Two threads enqueue, so the order within the 10 may vary; 2 are left behind.
        XCTAssertEqual(Set(strict.flatMap { $0 }).count, 8)
        XCTAssertTrue(strict.flatMap { $0 }.allSatisfy { (0..<10).contains($0) })
        // The number in the queue's name is the order in which the session first used its queues.
        XCTAssertEqual(strictEnd?.code, .outOfRange)
        XCTAssertTrue(strictEnd?.message.hasPrefix("FIFOQueue '_") ?? false)
        XCTAssertTrue(strictEnd?.message.hasSuffix("_batch/fifo_queue' is closed and has insufficient elements (requested 4, current size 2)") ?? false, "\(String(describing: strictEnd))")
        let (loose, looseEnd, looseOut) = try batches(allowSmaller: true)
        XCTAssertEqual(looseOut.shape, Shape(dims: [nil]))
        XCTAssertEqual(loose.map(\.count), [4, 4, 2])
        XCTAssertEqual(loose.flatMap { $0 }.sorted(), (0..<10).map(Int32.init))
        XCTAssertEqual(looseEnd?.code, .outOfRange)
    }

    func testShuffleBatchDrawsBatchesOfEveryElementOnce() throws {
        let g = Graph()
        let x = try g.constant(Tensor(shape: [20, 2], scalars: (0..<40).map(Float.init)))
        let row = try g.sliceInputProducer([x], numEpochs: 1, shuffle: false)
        let b = try g.shuffleBatch(row, batchSize: 5, capacity: 12, minAfterDequeue: 6, numThreads: 2, seed: 3)
        XCTAssertEqual(b[0].shape, Shape([5, 2]))
        _ = try g.tensor(named: "shuffle_batch/fraction_over_6_of_6_full")
        let sess = try Session(graph: g)
        try sess.run(g.localVariablesInitializer())
        let (values, end) = try drain(sess, b)
        XCTAssertEqual(values.count, 4)
        let rows = values.flatMap { v in (0..<5).map { i in try! Array(v[0].scalars(as: Float.self)[2 * i..<2 * i + 2]) } }
        XCTAssertEqual(rows.map { $0[0] }.sorted(), (0..<20).map { Float(2 * $0) })
        XCTAssertTrue(rows.allSatisfy { $0[1] == $0[0] + 1 })
        XCTAssertNotEqual(rows.map { $0[0] }, (0..<20).map { Float(2 * $0) })
        XCTAssertEqual(end?.code, .outOfRange)
    }

    func testBadPipelinesAreRejectedWhenBuilt() throws {
        let g = Graph()
        let v = try g.constant(1 as Float)
        XCTAssertEqual(thrown { _ = try g.batch([v], batchSize: 0) }?.code, .invalidArgument)
        XCTAssertEqual(thrown { _ = try g.batch([], batchSize: 2) }, .invalidArgument("Expected at least one tensor in batch()."))
        let unknown = try g.placeholder(.float32, shape: Shape(dims: [nil]), name: "unknown")
        XCTAssertTrue(thrown { _ = try g.batch([unknown], batchSize: 2) }?.message.contains("All shapes must be fully defined") ?? false)
        XCTAssertTrue(thrown { _ = try g.shuffleBatch([v], batchSize: 2, capacity: 5, minAfterDequeue: 5) }?.message
            .contains("min_after_dequeue (5) must be less than capacity (5)") ?? false)
        XCTAssertEqual(thrown { _ = try g.batch([v], batchSize: 2, capacity: 0) }?.code, .invalidArgument)
        XCTAssertEqual(thrown { _ = try g.stringInputProducer([String]()) }, .invalidArgument("string_input_producer requires a non-null input tensor"))
        XCTAssertEqual(thrown { _ = try g.stringInputProducer(["a"], numEpochs: 0) }, .invalidArgument("num_epochs must be > 0 not 0."))
    }
}
