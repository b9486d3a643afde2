import Foundation
import KilnIR

/// TensorFlow's queue resource (FIFOQueue, RandomShuffleQueue): tuples of tensors held on the
/// host between the runs that enqueue them and the runs that dequeue them. Thread-safe.
///
/// Operations that must wait (enqueue into a full queue, dequeue from one with too few elements)
/// wait inside `release`: the session passes a hook that lets go of its own lock while the body
/// runs, so other threads' runs (the ones that would unblock this one) can proceed. A wait ends
/// when the queue can serve it, is closed, or is cancelled (the session closed).
public final class HostQueue: CancellableResource, @unchecked Sendable {
    public enum Kind: Sendable, Equatable {
        case fifo
        /// Dequeues take a random element and leave at least `minAfterDequeue` behind until the
        /// queue is closed. `seed`/`seed2` both 0: a different order every time.
        case randomShuffle(minAfterDequeue: Int, seed: Int, seed2: Int)
    }

    /// Runs `body` without the caller's lock held (the session's hook); the default runs it as is.
    public typealias Release = (() throws -> Void) throws -> Void

    /// The name in messages (TensorFlow's: the shared name, else "_<n>_<node name>").
    public let name: String
    public let kind: Kind
    /// The most elements held; Int.max for TensorFlow's capacity -1 (unbounded).
    public let capacity: Int
    public let dtypes: [DType]
    /// Each component's shape, or nil when the queue was made without shapes (any shape).
    public let shapes: [[Int]]?

    private let condition = NSCondition()
    /// The elements' slots in the store, oldest first (a shuffling queue picks among them).
    private var elements: [Int] = []
    private let store: QueueElementStore
    private var closed = false
    private var cancelled = false
    private var pendingEnqueuesCancelled = false
    private var rng: SplitMix64
    /// Enqueues waiting for room, oldest first, and the elements each waiting dequeue needs in
    /// the queue (its count plus what it must leave behind). An enqueue wakes dequeues only once
    /// one of them can be served. A dequeue that makes room adds the waiting enqueues' elements
    /// itself, in order, and wakes an enqueue only when all of its elements are in (or it
    /// failed): a reader thread waiting to put four batches into a full queue is woken once, not
    /// once per training step, each wake a context switch on a core the step uses.
    private var pendingEnqueues: [PendingEnqueue] = []
    private var dequeueNeeds: [Int] = []

    /// A waiting enqueue: what adds its elements (as room allows; true when all are in), and an
    /// error that adding them on another thread met.
    private final class PendingEnqueue {
        let step: () throws -> Bool
        var failure: Error?
        init(_ step: @escaping () throws -> Bool) { self.step = step }
    }

    /// TensorFlow's type name of the queue, as in its error messages.
    public var typeName: String { kind == .fifo ? "FIFOQueue" : "RandomShuffleQueue" }

    public init(name: String, kind: Kind = .fifo, capacity: Int, dtypes: [DType], shapes: [[Int]]? = nil) throws {
        guard !dtypes.isEmpty else { throw KilnError.invalidArgument("\(name): a queue needs at least one component type") }
        if let shapes {
            guard shapes.count == dtypes.count else {
                throw KilnError.invalidArgument("\(name): shapes must have the same length as component_types (\(shapes.count) vs \(dtypes.count))")
            }
            guard shapes.allSatisfy({ $0.allSatisfy { $0 >= 0 } }) else {
                throw KilnError.invalidArgument("\(name): all shapes must be fully defined")
            }
        }
        guard capacity > 0 || capacity == -1 else {
            throw KilnError.invalidArgument("\(name): capacity must be positive (or -1 for unbounded), got \(capacity)")
        }
        var seed: UInt64 = 0
        if case .randomShuffle(let minAfter, let s, let s2) = kind {
            guard minAfter >= 0 else { throw KilnError.invalidArgument("\(name): min_after_dequeue must be >= 0, got \(minAfter)") }
            guard capacity == -1 || minAfter < capacity else {
                throw KilnError.invalidArgument("\(name): min_after_dequeue (\(minAfter)) must be less than capacity (\(capacity))")
            }
            // As TensorFlow: seeds (0, 0) mean a fresh random order; any other pair fixes it.
            seed = s == 0 && s2 == 0 ? UInt64.random(in: 1...UInt64.max) : UInt64(bitPattern: Int64(s)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: Int64(s2))
        }
        self.name = name
        self.kind = kind
        self.capacity = capacity == -1 ? Int.max : capacity
        self.dtypes = dtypes
        self.shapes = shapes
        self.rng = SplitMix64(seed: seed)
        store = shapes.flatMap { QueueRowStore(dtypes: dtypes, shapes: $0) } ?? QueueTupleStore(dtypes: dtypes)
    }

    public var size: Int {
        condition.lock()
        defer { condition.unlock() }
        return elements.count
    }

    public var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }

    private var minAfterDequeue: Int {
        if case .randomShuffle(let m, _, _) = kind { return m }
        return 0
    }

    // MARK: enqueue

    /// Adds one tuple, waiting while the queue is full.
    public func enqueue(_ tuple: [Tensor], release: Release = { try $0() }) throws {
        try validate(tuple, batched: false)
        try enqueueElements(1, release: release) { _ in [try self.store.store(tuple)] }
    }

    /// Adds the slices along dimension 0 of each component, in order, waiting for room as needed.
    public func enqueueMany(_ components: [Tensor], release: Release = { try $0() }) throws {
        try validate(components, batched: true)
        try enqueueElements(components[0].shape[0], release: release) { rows in try self.store.store(components, rows: rows) }
    }

    /// Adds `count` elements in order, as room allows; `stored` puts elements `rows` into the
    /// store (the condition locked) and gives their slots.
    private func enqueueElements(_ count: Int, release: Release, stored: @escaping (Range<Int>) throws -> [Int]) throws {
        var next = 0
        var waiting = false
        // Adds what fits now; true when every tuple is in. Called with the condition locked. As
        // in TensorFlow, an enqueue that finds the queue closed fails; one already waiting for
        // room keeps waiting unless the close cancelled pending enqueues.
        func step() throws -> Bool {
            // All in already, added by the dequeues that made room.
            if waiting && next == count { return true }
            if cancelled { throw KilnError(.cancelled, "Enqueue operation was cancelled") }
            if closed && (!waiting || pendingEnqueuesCancelled) { throw KilnError(.cancelled, "\(typeName) '\(name)' is closed.") }
            waiting = true
            let fits = min(count - next, capacity - elements.count)
            if fits > 0 {
                elements += try stored(next..<(next + fits))
                next += fits
                if let need = dequeueNeeds.min(), elements.count >= need { condition.broadcast() }
            }
            return next == count
        }
        try perform(step, release: release, waiting: .enqueue)
    }

    // MARK: dequeue

    /// Removes one tuple, waiting until there is one (beyond min_after_dequeue for a shuffling queue).
    public func dequeue(release: Release = { try $0() }) throws -> [Tensor] {
        try take(1, upTo: false, release: release) { try self.store.element($0[0]) }
    }

    /// Removes `n` tuples, stacked along a new dimension 0; too few in a closed queue: outOfRange.
    public func dequeueMany(_ n: Int, release: Release = { try $0() }) throws -> [Tensor] {
        try take(n, upTo: false, release: release, made: stacked)
    }

    /// As dequeueMany, but a closed queue hands out what it has left (at least one tuple).
    public func dequeueUpTo(_ n: Int, release: Release = { try $0() }) throws -> [Tensor] {
        try take(n, upTo: true, release: release, made: stacked)
    }

    /// The elements in `slots` stacked along a new dimension 0; an empty batch has the queue's
    /// element shapes.
    private func stacked(_ slots: [Int]) throws -> [Tensor] {
        if !slots.isEmpty { return try store.stack(slots) }
        guard let shapes else {
            throw KilnError.invalidArgument("\(typeName)'s DequeueMany and DequeueUpTo require the components to have specified shapes.")
        }
        return try zip(dtypes, shapes).map { try Tensor(zeros: $0, shape: [0] + $1) }
    }

    /// Removes `n` elements (fewer from a closed queue when `upTo`) and gives what `made` makes
    /// of their slots, before the store reuses them (the condition locked).
    private func take(_ n: Int, upTo: Bool, release: Release, made: @escaping ([Int]) throws -> [Tensor]) throws -> [Tensor] {
        guard n >= 0 else { throw KilnError.invalidArgument("\(upTo ? "DequeueUpToOp" : "DequeueManyOp") requested \(n) < 0 elements") }
        var result: [Tensor] = []
        // TensorFlow hands out a batch all at once: nothing is removed until all of it can be.
        func hand(_ count: Int) throws {
            let taken = removeNext(count)
            do { result = try made(taken) } catch {
                // Nothing is lost: the elements go back (a FIFO queue's in front, in order).
                if kind == .fifo { elements.insert(contentsOf: taken, at: 0) } else { elements += taken }
                throw error
            }
            store.free(taken)
            madeRoom()
        }
        func step() throws -> Bool {
            if cancelled { throw KilnError(.cancelled, "Dequeue operation was cancelled") }
            let keep = closed ? 0 : minAfterDequeue
            if elements.count - keep >= n {
                try hand(n)
                return true
            }
            guard closed else { return false }
            if upTo && !elements.isEmpty {
                try hand(elements.count)
                return true
            }
            throw KilnError.outOfRange("\(typeName) '\(name)' is closed and has insufficient elements (requested \(n), current size \(elements.count))")
        }
        try perform(step, release: release, waiting: .dequeue(need: n + minAfterDequeue))
        return result
    }

    /// The slots of the next `count` elements, removed: the oldest, or for a shuffling queue
    /// random ones, each picked as TensorFlow picks.
    private func removeNext(_ count: Int) -> [Int] {
        guard kind != .fifo else {
            defer { elements.removeFirst(count) }
            return Array(elements.prefix(count))
        }
        return (0..<count).map { _ in
            let i = Int(rng.next() % UInt64(elements.count))
            elements.swapAt(i, elements.count - 1)
            return elements.removeLast()
        }
    }

    // MARK: close

    /// Closes the queue: later enqueues fail; dequeues drain what is left, then fail with outOfRange.
    /// `cancelPendingEnqueues` also fails the enqueues waiting for room now.
    public func close(cancelPendingEnqueues: Bool = false) {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        if cancelPendingEnqueues { pendingEnqueuesCancelled = true }
        condition.broadcast()
    }

    /// Ends every wait with `cancelled` and fails later operations (the session closed).
    public func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        closed = true
        condition.broadcast()
    }

    /// Fills the room a dequeue made with the waiting enqueues' elements, oldest enqueue first,
    /// and wakes those now done or failed (the condition is locked).
    private func madeRoom() {
        var finished = false
        while let p = pendingEnqueues.first, elements.count < capacity {
            do {
                guard try p.step() else { break }
            } catch { p.failure = error }
            pendingEnqueues.removeFirst()
            finished = true
        }
        if finished { condition.broadcast() }
    }

    /// What a waiting operation waits for: room, or `need` elements in the queue (a closed queue
    /// wakes every wait).
    private enum Wait { case enqueue, dequeue(need: Int) }

    /// Runs `step` under the condition until it reports done, waiting (inside `release`) between tries.
    private func perform(_ step: () throws -> Bool, release: Release, waiting: Wait) throws {
        condition.lock()
        let done: Bool
        do { done = try step() } catch { condition.unlock(); throw error }
        condition.unlock()
        if done { return }
        // Lock order is caller's lock, then the condition: the condition is never held while the
        // hook takes the caller's lock back.
        var failure: Error?
        try withoutActuallyEscaping(step) { step in
            try release {
                condition.lock()
                defer { condition.unlock() }
                do {
                    while try !step() {
                        switch waiting {
                        case .enqueue:
                            // Waits while queued: dequeues add its elements as they make room
                            // and dequeue it when it is done or failed; ends early when the
                            // session or a close cancels it (step then says why).
                            let p = PendingEnqueue(step)
                            pendingEnqueues.append(p)
                            repeat { condition.wait() } while pendingEnqueues.contains(where: { $0 === p }) && !cancelled && !pendingEnqueuesCancelled
                            pendingEnqueues.removeAll { $0 === p }
                            if let f = p.failure { throw f }
                        case .dequeue(let need):
                            dequeueNeeds.append(need)
                            condition.wait()
                            dequeueNeeds.remove(at: dequeueNeeds.firstIndex(of: need)!)
                        }
                    }
                } catch { failure = error }
            }
        }
        if let failure { throw failure }
    }

    // MARK: tuples

    private func validate(_ tuple: [Tensor], batched: Bool) throws {
        guard tuple.count == dtypes.count else {
            throw KilnError.invalidArgument("Wrong number of components in tuple. Expected \(dtypes.count), got \(tuple.count)")
        }
        for (i, t) in tuple.enumerated() {
            guard t.dtype == dtypes[i] else {
                throw KilnError.invalidArgument("Type mismatch in tuple component \(i). Expected \(dtypes[i]), got \(t.dtype)")
            }
            if batched {
                guard t.rank >= 1 else { throw KilnError.invalidArgument("Shape mismatch in tuple component \(i). Expected rank at least 1, got shape \(Shape(t.shape))") }
                guard t.shape[0] == tuple[0].shape[0] else {
                    throw KilnError.invalidArgument("All input tensors must have the same size in the 0th dimension. Component 0 has \(tuple[0].shape[0]), and component \(i) has \(t.shape[0])")
                }
            }
            let element = batched ? Array(t.shape.dropFirst()) : t.shape
            if let shapes, element != shapes[i] {
                throw KilnError.invalidArgument("Shape mismatch in tuple component \(i). Expected \(Shape(shapes[i])), got \(Shape(batched ? [t.shape[0]] + shapes[i] : element))")
            }
        }
    }
}
