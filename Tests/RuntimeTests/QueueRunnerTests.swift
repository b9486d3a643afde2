import Foundation
import XCTest
import Kiln
import KilnKernels

/// QueueRunner threads under a Coordinator: they fill a queue while the main thread consumes,
/// close it when their input runs out, stop and join cleanly, and hand their errors to join.
final class QueueRunnerTests: XCTestCase {
    private func thrown(_ body: () throws -> Void) -> Error? {
        do { try body() } catch { return error }
        return nil
    }

    /// Joins on another thread so a hang fails the test instead of stalling it.
    private func joinWithin(_ coord: Coordinator, _ threads: [CoordinatedThread], seconds: TimeInterval = 30) -> Error? {
        let joined = expectation(description: "joined")
        nonisolated(unsafe) var failure: Error?
        DispatchQueue.global().async {
            do { try coord.join(threads, stopGracePeriod: seconds) } catch { failure = error }
            joined.fulfill()
        }
        wait(for: [joined], timeout: seconds + 10)
        return failure
    }

    /// Each enqueue thread of a runner is a host thread (the pool's spinning workers then offer
    /// it their cores) until it ends; the thread that cancels on stop is not.
    func testEnqueueThreadsAreHostThreadsUntilTheyEnd() throws {
        let before = NativeRuntime.hostThreads
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 2, dtypes: [.float32], shapes: [Shape([])])
        g.addQueueRunner(try QueueRunner(queue: q, enqueueOps: Array(repeating: try q.enqueue([g.constant(3 as Float)]), count: 2)))
        let size = try q.size()
        let sess = try Session(graph: g)
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        // Polled (up to 60 s): the threads mark themselves once they start.
        let end = Date().addingTimeInterval(60)
        while NativeRuntime.hostThreads != before + 2 && Date() < end { Thread.sleep(forTimeInterval: 0.001) }
        XCTAssertEqual(NativeRuntime.hostThreads, before + 2)
        // Waiting for room in the full queue, they stay host threads.
        while try sess.run(size) != Tensor(Int32(2)) && Date() < end { Thread.sleep(forTimeInterval: 0.001) }
        XCTAssertEqual(NativeRuntime.hostThreads, before + 2)
        coord.requestStop()
        XCTAssertNil(joinWithin(coord, threads))
        XCTAssertEqual(NativeRuntime.hostThreads, before)
    }

    func testRunnersFillTheQueueUntilTheCoordinatorStopsThemAndJoinEndsCleanly() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 4, dtypes: [.float32], shapes: [Shape([])])
        g.addQueueRunner(try QueueRunner(queue: q, enqueueOps: Array(repeating: try q.enqueue([g.constant(3 as Float)]), count: 2)))
        let value = try q.dequeue()[0]
        let sess = try Session(graph: g)
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        XCTAssertEqual(threads.count, 3)   // two enqueue threads and the one that cancels on stop
        for _ in 0..<10 { XCTAssertEqual(try sess.run(value), Tensor(3 as Float)) }
        XCTAssertFalse(coord.shouldStop)
        coord.requestStop()
        XCTAssertNil(joinWithin(coord, threads))
        XCTAssertTrue(threads.allSatisfy { !$0.isAlive })
    }

    func testExhaustedInputClosesTheQueueAndTheConsumerGetsOutOfRangeAfterTheLastElement() throws {
        let g = Graph()
        let source = try FIFOQueue(g, capacity: 10, dtypes: [.int32], shapes: [Shape([])], name: "source")
        let fill = try source.enqueueMany([g.constant(Tensor(shape: [5], scalars: [1, 2, 3, 4, 5] as [Int32]))])
        let closeSource = try source.close()
        let target = try FIFOQueue(g, capacity: 2, dtypes: [.int32], shapes: [Shape([])], name: "target")
        g.addQueueRunner(try QueueRunner(queue: target, enqueueOps: [try target.enqueue([source.dequeue()[0]])]))
        let value = try target.dequeue()[0]
        let sess = try Session(graph: g)
        try sess.run(targets: [fill, closeSource])
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        var got: [Int32] = []
        do {
            while !coord.shouldStop { got.append(try sess.run(value).scalar(as: Int32.self)) }
            XCTFail("the consumer should have got outOfRange")
        } catch let e as KilnError {
            XCTAssertEqual(e, KilnError(.outOfRange, "FIFOQueue '_1_target' is closed and has insufficient elements (requested 1, current size 0)"))
            coord.requestStop(error: e)
        }
        XCTAssertEqual(got, [1, 2, 3, 4, 5])
        // outOfRange is a clean stop: join does not re-raise it.
        XCTAssertNil(joinWithin(coord, threads))
    }

    func testAFailingEnqueueStopsTheCoordinatorAndJoinReRaisesItsError() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 2, dtypes: [.float32], shapes: [Shape([])])
        let unfed = try g.placeholder(.float32, shape: Shape([]), name: "unfed")
        g.addQueueRunner(try QueueRunner(queue: q, enqueueOps: [try q.enqueue([unfed])]))
        let sess = try Session(graph: g)
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        XCTAssertTrue(coord.waitForStop(timeout: 30))
        let error = joinWithin(coord, threads) as? KilnError
        XCTAssertEqual(error?.code, .invalidArgument)
        XCTAssertTrue(error?.message.contains("unfed") ?? false, "\(String(describing: error))")
    }

    func testCoordinatorKeepsTheFirstErrorAndTreatsOutOfRangeAsACleanStop() throws {
        let coord = Coordinator()
        coord.stopOnException { throw KilnError.outOfRange("done") }
        XCTAssertTrue(coord.shouldStop)
        XCTAssertNil(thrown { try coord.join([]) })
        coord.clearStop()
        XCTAssertFalse(coord.shouldStop)
        coord.stopOnException { throw KilnError.dataLoss("first") }
        coord.requestStop(error: KilnError.dataLoss("second"))
        XCTAssertEqual(thrown { try coord.join([]) } as? KilnError, .dataLoss("first"))
        // A thread that outlives the grace period is named.
        let c2 = Coordinator()
        let stuck = CoordinatedThread(name: "stuck") { Thread.sleep(forTimeInterval: 0.5) }
        c2.requestStop()
        XCTAssertEqual(thrown { try c2.join([stuck], stopGracePeriod: 0.05) } as? KilnError,
                       KilnError(.internal, "Coordinator stopped with threads still running: stuck"))
        XCTAssertTrue(stuck.join(until: Date(timeIntervalSinceNow: 30)))
    }
}
