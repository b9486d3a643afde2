import Foundation

/// Runs `body` on a thread of its own (with a main-thread-sized stack) and waits at most
/// `seconds` for it; nil when it did not come back. The thread is then left to run (a hung
/// kernel cannot be stopped from outside), but the caller goes on and reports the hang as a
/// failure instead of leaving the suite stuck.
public func withDeadline<T>(_ seconds: Double, _ body: @escaping @Sendable () throws -> T) -> Result<T, any Error>? {
    let box = DeadlineResult<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        box.value = Result { try body() }
        done.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return box.value
}

/// What the thread of `withDeadline` hands back (written before the semaphore is signalled,
/// read after it is waited for).
private final class DeadlineResult<T>: @unchecked Sendable {
    var value: Result<T, any Error>?
}
