import Foundation
import KilnIR

/// The consumer side of `Dataset.prefetch`: takes elements, in order, from a bounded buffer
/// that a background thread fills from the upstream dataset. Releasing it stops the thread.
final class PrefetchSource: ElementSource {
    private let buffer: PrefetchBuffer

    init(upstream: Dataset, capacity: Int) {
        let buffer = PrefetchBuffer(capacity: capacity)
        self.buffer = buffer
        // The thread holds the buffer, never this object, so dropping the iterator reaches deinit.
        let thread = Thread { buffer.produce(from: upstream) }
        thread.name = "kiln.dataset.prefetch"
        thread.stackSize = 8 << 20   // map closures (parsing) may recurse deeper than the default allows
        thread.start()
    }

    deinit { buffer.cancel() }

    func next() throws -> [Tensor]? { try buffer.take() }
}

/// Elements (or the error that ended the input) waiting to be taken, at most `capacity` of them.
final class PrefetchBuffer: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private var items: [Result<[Tensor], Error>] = []
    private var head = 0
    /// The producer has put its last item (the input ended or failed).
    private var ended = false
    /// The consumer is gone; the producer stops at its next step.
    private var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    /// Runs on the background thread: fills the buffer until the input ends, fails, or the
    /// consumer is released.
    func produce(from upstream: Dataset) {
        let source: ElementSource
        do { source = try upstream.makeSource() } catch {
            finish(with: .failure(error))
            return
        }
        while true {
            condition.lock()
            while items.count - head >= capacity && !cancelled { condition.wait() }
            let stop = cancelled
            condition.unlock()
            if stop { return }
            do {
                guard let element = try source.next() else {
                    finish(with: nil)
                    return
                }
                put(.success(element))
            } catch {
                finish(with: .failure(error))
                return
            }
        }
    }

    private func put(_ item: Result<[Tensor], Error>) {
        condition.lock()
        items.append(item)
        condition.broadcast()
        condition.unlock()
    }

    private func finish(with last: Result<[Tensor], Error>?) {
        condition.lock()
        if let last { items.append(last) }
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next element, waiting for the producer; nil once it has ended and all are taken.
    func take() throws -> [Tensor]? {
        condition.lock()
        while items.count == head && !ended { condition.wait() }
        guard head < items.count else {
            condition.unlock()
            return nil
        }
        let item = items[head]
        head += 1
        // Taken items are dropped in bulk, keeping each take O(1) on average.
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        condition.unlock()
        return try item.get()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}
