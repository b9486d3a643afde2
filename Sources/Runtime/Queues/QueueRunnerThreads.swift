import Foundation
import KilnIR
import KilnFrontend
import KilnKernels

extension QueueRunner {
    /// Starts this runner's threads in `session` (TensorFlow's `create_threads(sess, coord, start=True)`):
    /// one per enqueue op, each running it until the input runs out (outOfRange, or another of
    /// `queueClosedErrors`: the last one closes the queue) or the coordinator stops (another
    /// thread then cancels the queue's pending enqueues). Any other error requests a stop with that error (with no coordinator: the
    /// thread's `error`, and the thread ends).
    public func createThreads(session: Session, coordinator: Coordinator? = nil) -> [CoordinatedThread] {
        let running = RunningCount(enqueueOps.count)
        var threads = enqueueOps.enumerated().map { k, op in
            CoordinatedThread(name: "QueueRunnerThread-\(queue.name)-\(op.name)\(k > 0 ? "-\(k)" : "")") { [self] in
                // Woken, its host work (read, parse, enqueue) gets a core the pool's idle workers spin on.
                NativeRuntime.asHostThread { run(op, session: session, coordinator: coordinator, running: running) }
            }
        }
        if let coordinator {
            threads.append(CoordinatedThread(name: "QueueRunnerThread-\(queue.name)-close_on_stop") { [self] in
                coordinator.waitForStop()
                // Ends enqueues waiting for room; an error here (the session closed) changes nothing.
                try? session.run(cancelOp)
            })
        }
        return threads
    }

    private func run(_ op: KilnFrontend.Operation, session: Session, coordinator: Coordinator?, running: RunningCount) {
        var counted = false
        defer { if !counted { running.decrement() } }
        while !(coordinator?.shouldStop ?? false) {
            do {
                try session.run(op)
            } catch let error as KilnError where queueClosedErrors.contains(error.code) {
                // The input ran out: the last thread still enqueueing closes the queue, as TensorFlow's does.
                counted = true
                if running.decrement() == 0 { try? session.run(closeOp) }
                return
            } catch {
                coordinator?.requestStop(error: error)
                if coordinator == nil { Debug.log("Exception in QueueRunner: \(error)") }
                return
            }
        }
    }
}

/// How many of a runner's threads are still enqueueing.
private final class RunningCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count: Int

    init(_ count: Int) { self.count = count }

    /// Counts one thread out; the number still running.
    @discardableResult
    func decrement() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count -= 1
        return count
    }
}

/// TensorFlow's `tf.train.start_queue_runners`: starts the threads of every queue runner in the
/// session graph's collection, all stopped by `coordinator`. Join them with `coordinator.join`.
public func startQueueRunners(session: Session, coordinator: Coordinator? = nil,
                              collection: String = GraphKeys.queueRunners) -> [CoordinatedThread] {
    session.graph.queueRunners(collection).flatMap { $0.createThreads(session: session, coordinator: coordinator) }
}
