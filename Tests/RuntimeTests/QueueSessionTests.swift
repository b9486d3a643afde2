import Foundation
import XCTest
import Kiln

/// Queue ops run by a Session: values through compiled code, waits that let other threads' runs
/// proceed, session close ending waits, and the checks made when the ops are built.
final class QueueSessionTests: XCTestCase {
    private func thrown(_ body: () throws -> Void) -> KilnError? {
        do { try body() } catch { return error as? KilnError }
        return nil
    }

    func testEnqueuedValuesComeOutInOrderAndFeedCompiledOps() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 10, dtypes: [.float32, .string], shapes: [Shape([2]), Shape([])])
        let x = try g.placeholder(.float32, shape: Shape([3, 2]), name: "x")
        let names = try g.constant(Tensor(shape: [3], strings: [[97], [98], [99]]), name: "names")
        let fill = try q.enqueueMany([x, names])
        let one = try q.dequeue()
        XCTAssertEqual(one[0].shape, Shape([2]))
        let doubled = try g.multiply(one[0], g.constant(2 as Float))
        let two = try q.dequeueMany(2)
        XCTAssertEqual(two[0].shape, Shape([2, 2]))
        XCTAssertEqual(two[0].name, "fifo_queue_DequeueMany:0")
        let size = try q.size()
        let sess = try Session(graph: g)
        try sess.run(fill, feeds: [x: Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6] as [Float])])
        XCTAssertEqual(try sess.run(size), Tensor(3 as Int32))
        let first = try sess.run([doubled, one[1]])
        XCTAssertEqual(first, [try Tensor(shape: [2], scalars: [2, 4] as [Float]), Tensor("a")])
        XCTAssertEqual(try sess.run(two), [try Tensor(shape: [2, 2], scalars: [3, 4, 5, 6] as [Float]), try Tensor(shape: [2], strings: [[98], [99]])])
        try sess.run(q.close())
        XCTAssertEqual(thrown { _ = try sess.run(one[0]) },
                       KilnError(.outOfRange, "FIFOQueue '_0_fifo_queue' is closed and has insufficient elements (requested 1, current size 0)"))
        XCTAssertEqual(thrown { try sess.run(fill, feeds: [x: Tensor(zeros: .float32, shape: [3, 2])]) }, KilnError(.cancelled, "FIFOQueue '_0_fifo_queue' is closed."))
    }

    func testEachSessionHasItsOwnQueueAndSharedNamesShareOne() throws {
        let g = Graph()
        let a = try FIFOQueue(g, capacity: 5, dtypes: [.int32], shapes: [Shape([])], sharedName: "shared")
        let b = try FIFOQueue(g, capacity: 5, dtypes: [.int32], shapes: [Shape([])], sharedName: "shared")
        let put = try a.enqueue([g.constant(7 as Int32)])
        let take = try b.dequeue()[0]
        let s1 = try Session(graph: g), s2 = try Session(graph: g)
        try s1.run(put)
        XCTAssertEqual(try s1.run(take), Tensor(7 as Int32))
        XCTAssertEqual(try s2.run(b.size()), Tensor(0 as Int32))
        let other = try FIFOQueue(g, capacity: 5, dtypes: [.float32], sharedName: "shared")
        XCTAssertEqual(thrown { _ = try s1.run(other.size()) },
                       .invalidArgument("Shared queue 'shared' has component types int32 but requested component types float32"))
    }

    func testADequeueWaitingInOneThreadLetsAnotherThreadsEnqueueRun() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 2, dtypes: [.float32], shapes: [Shape([])])
        let v = try g.placeholder(.float32, shape: Shape([]), name: "v")
        let put = try q.enqueue([v])
        let sum = try g.add(q.dequeue()[0], g.constant(100 as Float))
        let sess = try Session(graph: g)
        let done = expectation(description: "consumer got every value")
        DispatchQueue.global().async {
            // 5 values through a queue of capacity 2: the producer waits for room, the consumer for values.
            let got = (0..<5).compactMap { _ in try? sess.run(sum).scalar(as: Float.self) }
            if got == [100, 101, 102, 103, 104] { done.fulfill() }
        }
        let producer = expectation(description: "producer done")
        DispatchQueue.global().async {
            for i in 0..<5 { try? sess.run(put, feeds: [v: Tensor(Float(i))]) }
            producer.fulfill()
        }
        wait(for: [done, producer], timeout: 60)
    }

    func testClosingTheSessionEndsAWaitingRunWithCancelled() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 2, dtypes: [.float32], shapes: [Shape([])])
        let value = try q.dequeue()[0]
        let sess = try Session(graph: g)
        let ended = expectation(description: "cancelled")
        DispatchQueue.global().async {
            do { _ = try sess.run(value) } catch let e as KilnError where e.code == .cancelled { ended.fulfill() } catch {}
        }
        Thread.sleep(forTimeInterval: 0.2)
        sess.close()
        wait(for: [ended], timeout: 10)
    }

    func testQueueOpsSurviveAGraphDefRoundTripAndRunAfterImport() throws {
        let g = Graph()
        let q = try RandomShuffleQueue(g, capacity: 8, minAfterDequeue: 1, dtypes: [.int32], shapes: [Shape([2])], seed: 4)
        try q.enqueueMany([g.constant(Tensor(shape: [3, 2], scalars: [1, 1, 2, 2, 3, 3] as [Int32]))], name: "fill")
        _ = try q.dequeueMany(2, name: "take")
        try q.close(name: "close")
        let imported = Graph()
        try imported.importGraphDef(g.graphDef(), prefix: "")
        let take = try imported.tensor(named: "take:0")
        XCTAssertEqual(take.shape, Shape([2, 2]))
        let sess = try Session(graph: imported)
        try sess.run(XCTUnwrap(imported.operation(named: "fill")))
        try sess.run(XCTUnwrap(imported.operation(named: "close")))
        let rows = try sess.run(take).scalars(as: Int32.self)
        XCTAssertEqual(rows.count, 4)
        XCTAssertTrue(rows[0] == rows[1] && rows[2] == rows[3] && rows[0] != rows[2])
        XCTAssertEqual(thrown { _ = try sess.run(take) },
                       KilnError(.outOfRange, "RandomShuffleQueue '_0_random_shuffle_queue' is closed and has insufficient elements (requested 2, current size 1)"))
    }

    func testBadQueuesAndQueueOpsAreRejectedWhenBuilt() throws {
        let g = Graph()
        XCTAssertEqual(thrown { _ = try FIFOQueue(g, capacity: 0, dtypes: [.float32]) }?.code, .invalidArgument)
        XCTAssertEqual(thrown { _ = try FIFOQueue(g, capacity: 1, dtypes: []) }?.code, .invalidArgument)
        XCTAssertTrue(thrown { _ = try RandomShuffleQueue(g, capacity: 10, minAfterDequeue: 10, dtypes: [.float32]) }?.message
            .contains("min_after_dequeue (10) must be less than capacity (10)") ?? false)
        let q = try FIFOQueue(g, capacity: 4, dtypes: [.float32], shapes: [Shape([2])])
        XCTAssertTrue(thrown { try q.enqueue([g.constant(1 as Int32)]) }?.message.contains("Type mismatch in tuple component 0. Expected float32, got int32") ?? false)
        XCTAssertTrue(thrown { try q.enqueue([g.constant(1 as Float)]) }?.message.contains("Shape mismatch in tuple component 0") ?? false)
        XCTAssertTrue(thrown { try q.enqueue([g.constant(1 as Float), g.constant(1 as Float)]) }?.message.contains("Wrong number of components") ?? false)
        XCTAssertTrue(thrown { _ = try q.dequeueMany(-1) }?.message.contains("DequeueManyOp requested -1 < 0 elements") ?? false)
    }
}
