import Foundation
import KilnIR

/// TensorFlow's `tf.train.Coordinator`: lets a set of threads (queue runners, the training loop)
/// stop together. Any of them may request a stop, with the error that made it stop; `join` waits
/// for them and re-raises the first such error. outOfRange (input exhausted) is a clean stop.
public final class Coordinator: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false
    private var firstError: Error?
    /// Errors of these codes stop the threads without being re-raised by `join`.
    public let cleanStopCodes: Set<KilnError.Code>

    public init(cleanStopCodes: Set<KilnError.Code> = [.outOfRange]) {
        self.cleanStopCodes = cleanStopCodes
    }

    /// Whether a stop was requested: threads check this between steps.
    public var shouldStop: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopped
    }

    /// Asks every thread to stop. The first error given (unless a clean stop) is what `join` re-raises;
    /// errors after the stop are ignored, as TensorFlow ignores them.
    public func requestStop(error: Error? = nil) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return }
        if let error, !((error as? KilnError).map { cleanStopCodes.contains($0.code) } ?? false) { firstError = error }
        stopped = true
        condition.broadcast()
    }

    /// Forgets a stop request and its error, so the coordinator can run threads again.
    public func clearStop() {
        condition.lock()
        defer { condition.unlock() }
        stopped = false
        firstError = nil
    }

    /// Waits until a stop is requested, at most `timeout` seconds (nil: no limit); true if stopped.
    @discardableResult
    public func waitForStop(timeout: TimeInterval? = nil) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        while !stopped {
            if let deadline { if !condition.wait(until: deadline) { return stopped } } else { condition.wait() }
        }
        return true
    }

    /// TensorFlow's `with coord.stop_on_exception():` — an error thrown by `body` requests a stop
    /// with that error instead of propagating (join re-raises it).
    public func stopOnException(_ body: () throws -> Void) {
        do { try body() } catch { requestStop(error: error) }
    }

    /// Waits for `threads` to end: until they all have or a stop is requested, then up to
    /// `stopGracePeriod` seconds for the rest. Re-raises the first error a thread stopped with;
    /// threads still running after the grace period are an error naming them (unless
    /// `ignoreLiveThreads`).
    public func join(_ threads: [CoordinatedThread], stopGracePeriod: TimeInterval = 120, ignoreLiveThreads: Bool = false) throws {
        // Until a stop is requested, wake now and then to notice threads that all ended on their own.
        while !waitForStop(timeout: 0.01) {
            if threads.allSatisfy({ !$0.isAlive }) { break }
        }
        let deadline = Date(timeIntervalSinceNow: stopGracePeriod)
        let alive = threads.filter { !$0.join(until: deadline) }
        condition.lock()
        let error = firstError
        condition.unlock()
        if let error { throw error }
        if !alive.isEmpty && !ignoreLiveThreads {
            throw KilnError(.internal, "Coordinator stopped with threads still running: \(alive.map(\.name).joined(separator: " "))")
        }
    }
}

/// A thread started for a coordinator (a queue runner's), which can be waited for.
public final class CoordinatedThread: @unchecked Sendable {
    public let name: String
    private let condition = NSCondition()
    private var finished = false
    private var thread: Thread?

    /// Starts `body` on a new thread named `name`.
    public init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.name = name
        let t = Thread { [self] in
            body()
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        t.name = name
        // Runs compile graphs (deep recursion in code generation): a main-thread sized stack.
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    public var isAlive: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !finished
    }

    /// Waits for the thread to end, until `deadline`; true if it ended.
    @discardableResult
    public func join(until deadline: Date = .distantFuture) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !finished { if !condition.wait(until: deadline) { return finished } }
        return true
    }
}
