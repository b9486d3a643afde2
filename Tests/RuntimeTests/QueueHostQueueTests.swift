import Foundation
import XCTest
import Kiln

/// HostQueue, the queue resource behind FIFOQueue and RandomShuffleQueue: order, batching, close
/// semantics and TensorFlow's error texts, and waits that other threads end.
final class QueueHostQueueTests: XCTestCase {
    private func ints(_ q: HostQueue, _ n: Int) throws -> [Int32] {
        try (0..<n).map { _ in try q.dequeue()[0].scalar(as: Int32.self) }
    }

    private func thrown(_ body: () throws -> Void) -> KilnError? {
        do { try body() } catch { return error as? KilnError }
        return nil
    }

    func testFIFOHandsOutElementsInOrderAndBatchesStackAlongANewFirstDimension() throws {
        let q = try HostQueue(name: "q", capacity: 10, dtypes: [.int32, .string], shapes: [[2], []])
        try q.enqueueMany([Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6] as [Int32]), Tensor(shape: [3], strings: [[97], [98], [99]])])
        try q.enqueue([Tensor(shape: [2], scalars: [7, 8] as [Int32]), Tensor("d")])
        XCTAssertEqual(q.size, 4)
        let one = try q.dequeue()
        XCTAssertEqual(one, [try Tensor(shape: [2], scalars: [1, 2] as [Int32]), Tensor("a")])
        let two = try q.dequeueMany(2)
        XCTAssertEqual(two[0], try Tensor(shape: [2, 2], scalars: [3, 4, 5, 6] as [Int32]))
        XCTAssertEqual(two[1], try Tensor(shape: [2], strings: [[98], [99]]))
        q.close()
        // A closed queue still hands out what it holds; DequeueUpTo takes fewer than asked for.
        let rest = try q.dequeueUpTo(5)
        XCTAssertEqual(rest[0].shape, [1, 2])
        XCTAssertEqual(rest[1], try Tensor(shape: [1], strings: [[100]]))
    }

    func testRandomShuffleOrderIsAPermutationFixedBySeeds() throws {
        func order(_ seed: Int, _ seed2: Int) throws -> [Int32] {
            let q = try HostQueue(name: "s", kind: .randomShuffle(minAfterDequeue: 0, seed: seed, seed2: seed2), capacity: 100, dtypes: [.int32], shapes: [[]])
            try q.enqueueMany([Tensor(shape: [20], scalars: (0..<20).map(Int32.init))])
            return try ints(q, 20)
        }
        let a = try order(7, 3)
        XCTAssertEqual(a.sorted(), (0..<20).map(Int32.init))
        XCTAssertNotEqual(a, (0..<20).map(Int32.init))
        XCTAssertEqual(try order(7, 3), a)
        XCTAssertNotEqual(try order(8, 3), a)
    }

    func testClosedQueueErrorsUseTensorFlowsWords() throws {
        let q = try HostQueue(name: "_0_input_producer", capacity: 4, dtypes: [.float32], shapes: [[]])
        try q.enqueue([Tensor(1 as Float)])
        q.close()
        XCTAssertTrue(q.isClosed)
        XCTAssertEqual(thrown { try q.enqueue([Tensor(2 as Float)]) }, KilnError(.cancelled, "FIFOQueue '_0_input_producer' is closed."))
        XCTAssertEqual(thrown { _ = try q.dequeueMany(2) },
                       KilnError(.outOfRange, "FIFOQueue '_0_input_producer' is closed and has insufficient elements (requested 2, current size 1)"))
        XCTAssertEqual(try q.dequeue(), [Tensor(1 as Float)])
        XCTAssertEqual(thrown { _ = try q.dequeue() },
                       KilnError(.outOfRange, "FIFOQueue '_0_input_producer' is closed and has insufficient elements (requested 1, current size 0)"))
        XCTAssertEqual(thrown { _ = try q.dequeueUpTo(3) }?.code, .outOfRange)
        let s = try HostQueue(name: "shuffle", kind: .randomShuffle(minAfterDequeue: 5, seed: 1, seed2: 1), capacity: 10, dtypes: [.int32])
        s.close()
        XCTAssertEqual(thrown { _ = try s.dequeue() },
                       KilnError(.outOfRange, "RandomShuffleQueue 'shuffle' is closed and has insufficient elements (requested 1, current size 0)"))
    }

    func testElementsOfFixedShapesKeepTheirValuesAcrossGrowthAndReusedRows() throws {
        // Rows of a queue with shapes are reused once dequeued and the storage doubles past 64:
        // every element still comes out as it went in, in order.
        let q = try HostQueue(name: "rows", capacity: -1, dtypes: [.int32, .float64], shapes: [[2], []])
        var next: Int32 = 0, expected: Int32 = 0
        func put(_ n: Int) throws {
            let ids = (0..<Int32(n)).map { next + $0 }
            try q.enqueueMany([Tensor(shape: [n, 2], scalars: ids.flatMap { [$0, -$0] }), Tensor(shape: [n], scalars: ids.map { Double($0) / 4 })])
            next += Int32(n)
        }
        func check(_ n: Int) throws {
            let b = try q.dequeueMany(n)
            let ids = (0..<Int32(n)).map { expected + $0 }
            XCTAssertEqual(b[0], try Tensor(shape: [n, 2], scalars: ids.flatMap { [$0, -$0] }))
            XCTAssertEqual(b[1], try Tensor(shape: [n], scalars: ids.map { Double($0) / 4 }))
            expected += Int32(n)
        }
        try put(50)
        try check(30)
        try put(100)      // 20 reused rows, then growth to 128 and 256 rows
        try check(70)
        try put(200)
        try check(250)
        XCTAssertEqual(q.size, 0)
        try q.enqueue([Tensor(shape: [2], scalars: [7, -7] as [Int32]), Tensor(1.75)])
        XCTAssertEqual(try q.dequeue(), [try Tensor(shape: [2], scalars: [7, -7] as [Int32]), Tensor(1.75)])
    }

    func testADequeueThatCannotBatchItsElementsLeavesThemInTheQueue() throws {
        // Without shapes, elements of different shapes cannot be stacked: the batch fails and
        // nothing is lost.
        let q = try HostQueue(name: "any", capacity: 4, dtypes: [.int32])
        try q.enqueue([Tensor(shape: [1], scalars: [1] as [Int32])])
        try q.enqueue([Tensor(shape: [2], scalars: [2, 3] as [Int32])])
        XCTAssertEqual(thrown { _ = try q.dequeueMany(2) },
                       .invalidArgument("Shape mismatch in tuple component 0: elements of shapes [1] and [2] cannot be batched"))
        XCTAssertEqual(q.size, 2)
        XCTAssertEqual(try q.dequeue(), [try Tensor(shape: [1], scalars: [1] as [Int32])])
        XCTAssertEqual(try q.dequeue(), [try Tensor(shape: [2], scalars: [2, 3] as [Int32])])
    }

    func testBadTuplesAndParametersAreRejected() throws {
        let q = try HostQueue(name: "q", capacity: 2, dtypes: [.float32], shapes: [[2]])
        XCTAssertEqual(thrown { try q.enqueue([Tensor(1 as Int32)]) }, .invalidArgument("Type mismatch in tuple component 0. Expected float32, got int32"))
        XCTAssertEqual(thrown { try q.enqueue([Tensor(shape: [3], scalars: [1, 2, 3] as [Float])]) }, .invalidArgument("Shape mismatch in tuple component 0. Expected [2], got [3]"))
        XCTAssertEqual(thrown { try q.enqueue([]) }?.code, .invalidArgument)
        XCTAssertEqual(thrown { _ = try q.dequeueMany(-1) }, .invalidArgument("DequeueManyOp requested -1 < 0 elements"))
        XCTAssertEqual(thrown { _ = try HostQueue(name: "z", capacity: 0, dtypes: [.float32]) }?.code, .invalidArgument)
        XCTAssertEqual(thrown { _ = try HostQueue(name: "m", kind: .randomShuffle(minAfterDequeue: 4, seed: 0, seed2: 0), capacity: 4, dtypes: [.float32]) },
                       .invalidArgument("m: min_after_dequeue (4) must be less than capacity (4)"))
        // Without shapes, an empty batch has no element shape to take.
        let any = try HostQueue(name: "any", capacity: 2, dtypes: [.float32])
        XCTAssertEqual(thrown { _ = try any.dequeueMany(0) }?.code, .invalidArgument)
    }

    func testWaitingDequeueEndsWhenAnotherThreadEnqueuesOrCloses() throws {
        let q = try HostQueue(name: "q", capacity: 1, dtypes: [.int32], shapes: [[]])
        let got = expectation(description: "dequeued")
        DispatchQueue.global().async {
            if let v = try? q.dequeue()[0].scalar(as: Int32.self), v == 42 { got.fulfill() }
        }
        Thread.sleep(forTimeInterval: 0.05)
        try q.enqueue([Tensor(42 as Int32)])
        wait(for: [got], timeout: 10)

        let ended = expectation(description: "out of range")
        DispatchQueue.global().async {
            do { _ = try q.dequeue() } catch let e as KilnError where e.code == .outOfRange { ended.fulfill() } catch {}
        }
        Thread.sleep(forTimeInterval: 0.05)
        q.close()
        wait(for: [ended], timeout: 10)
    }

    func testEnqueueIntoAFullQueueWaitsForRoomAndCancellingPendingEnqueuesEndsIt() throws {
        let q = try HostQueue(name: "full", capacity: 1, dtypes: [.int32], shapes: [[]])
        try q.enqueue([Tensor(1 as Int32)])
        let placed = expectation(description: "enqueued after a dequeue made room")
        DispatchQueue.global().async { if (try? q.enqueue([Tensor(2 as Int32)])) != nil { placed.fulfill() } }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(try ints(q, 1), [1])
        wait(for: [placed], timeout: 10)

        let cancelled = expectation(description: "pending enqueue cancelled")
        DispatchQueue.global().async {
            do { try q.enqueue([Tensor(3 as Int32)]) } catch let e as KilnError where e == KilnError(.cancelled, "FIFOQueue 'full' is closed.") { cancelled.fulfill() } catch {}
        }
        Thread.sleep(forTimeInterval: 0.05)
        q.close(cancelPendingEnqueues: true)
        wait(for: [cancelled], timeout: 10)
        XCTAssertEqual(try ints(q, 1), [2])
    }

    func testShuffleDequeueWaitsUntilMoreThanMinAfterDequeueUnlessClosed() throws {
        let q = try HostQueue(name: "s", kind: .randomShuffle(minAfterDequeue: 2, seed: 1, seed2: 2), capacity: 10, dtypes: [.int32], shapes: [[]])
        try q.enqueueMany([Tensor(shape: [2], scalars: [1, 2] as [Int32])])
        let got = expectation(description: "dequeued once a third element came")
        DispatchQueue.global().async { if (try? q.dequeue()) != nil { got.fulfill() } }
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertEqual(q.size, 2)
        try q.enqueue([Tensor(3 as Int32)])
        wait(for: [got], timeout: 10)
        XCTAssertEqual(q.size, 2)
        q.close()
        XCTAssertEqual(try q.dequeueMany(2)[0].shape, [2])
    }

    /// A queue wakes a waiting dequeue only once it can be served: each waiting dequeue's own
    /// need counts, so a small one is served while a larger one beside it keeps waiting.
    func testWaitingDequeuesOfDifferentSizesAreEachServedOnceTheirCountIsThere() throws {
        let q = try HostQueue(name: "q", capacity: 10, dtypes: [.int32], shapes: [[]])
        let many = expectation(description: "three dequeued together")
        let one = expectation(description: "one dequeued")
        DispatchQueue.global().async {
            if let t = try? q.dequeueMany(3), t[0].shape == [3] { many.fulfill() }
        }
        Thread.sleep(forTimeInterval: 0.05)
        DispatchQueue.global().async { if (try? q.dequeue()) != nil { one.fulfill() } }
        Thread.sleep(forTimeInterval: 0.05)
        try q.enqueue([Tensor(1 as Int32)])
        wait(for: [one], timeout: 10)
        // Two more are not enough for the batch of three: it still waits.
        try q.enqueueMany([Tensor(shape: [2], scalars: [2, 3] as [Int32])])
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(q.size, 2)
        try q.enqueue([Tensor(4 as Int32)])
        wait(for: [many], timeout: 10)
        XCTAssertEqual(q.size, 0)
    }

    /// An enqueue of more than fits puts in what fits and resumes as dequeues make room.
    func testEnqueueManyLargerThanTheRoomResumesAsDequeuesMakeRoom() throws {
        let q = try HostQueue(name: "q", capacity: 2, dtypes: [.int32], shapes: [[]])
        let placed = expectation(description: "all five enqueued")
        DispatchQueue.global().async {
            if (try? q.enqueueMany([Tensor(shape: [5], scalars: [1, 2, 3, 4, 5] as [Int32])])) != nil { placed.fulfill() }
        }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(q.size, 2)
        XCTAssertEqual(try (0..<3).map { _ in try q.dequeue()[0].scalar(as: Int32.self) }, [1, 2, 3])
        wait(for: [placed], timeout: 10)
        XCTAssertEqual(try ints(q, 2), [4, 5])
    }

    func testDequeuesFillWaitingEnqueuesInTheOrderTheyBeganToWait() throws {
        // Two enqueues wait for room; the dequeues add their elements (the first enqueue's
        // before the second's) and each enqueue returns once all of its elements are in.
        let q = try HostQueue(name: "q", capacity: 1, dtypes: [.int32], shapes: [[]])
        try q.enqueue([Tensor(0 as Int32)])
        let first = expectation(description: "first enqueue done"), second = expectation(description: "second enqueue done")
        DispatchQueue.global().async {
            if (try? q.enqueueMany([Tensor(shape: [3], scalars: [1, 2, 3] as [Int32])])) != nil { first.fulfill() }
        }
        Thread.sleep(forTimeInterval: 0.05)
        DispatchQueue.global().async {
            if (try? q.enqueueMany([Tensor(shape: [2], scalars: [4, 5] as [Int32])])) != nil { second.fulfill() }
        }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(try ints(q, 3), [0, 1, 2])
        XCTAssertEqual(try ints(q, 1), [3])
        wait(for: [first], timeout: 10)
        XCTAssertEqual(try ints(q, 2), [4, 5])
        wait(for: [second], timeout: 10)
        XCTAssertEqual(q.size, 0)
    }

    func testCancelEndsEveryWait() throws {
        let q = try HostQueue(name: "q", capacity: 1, dtypes: [.int32], shapes: [[]])
        let ended = expectation(description: "cancelled")
        DispatchQueue.global().async {
            do { _ = try q.dequeue() } catch let e as KilnError where e == KilnError(.cancelled, "Dequeue operation was cancelled") { ended.fulfill() } catch {}
        }
        Thread.sleep(forTimeInterval: 0.05)
        q.cancel()
        wait(for: [ended], timeout: 10)
    }
}
