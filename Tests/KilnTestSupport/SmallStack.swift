import Foundation

/// The stack a secondary thread gets by default (Dispatch workers, where Kiln compiles shards).
public let secondaryThreadStack = 512 * 1024

/// What the thread of `onThread` hands back (written before the semaphore is signalled, read
/// after it is waited for).
private final class ThreadResult<T>: @unchecked Sendable {
    var value: Result<T, any Error>?
}

/// Runs `body` on a new thread with a stack of `stackSize` bytes and waits for it, rethrowing
/// what it throws. Code whose recursion grows with the graph overflows here long before it
/// would on the main thread's 8 MB, so deep-graph tests run through this.
public func onThread<T>(stackSize: Int = secondaryThreadStack, _ body: @escaping @Sendable () throws -> T) throws -> T {
    let result = ThreadResult<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        result.value = Result { try body() }
        done.signal()
    }
    thread.stackSize = stackSize
    thread.start()
    done.wait()
    return try result.value!.get()
}
