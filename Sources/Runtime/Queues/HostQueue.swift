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
    private var elements: [[Tensor]] = []
    private var closed = false
    private var cancelled = false
    private var pendingEnqueuesCancelled = false
    private var rng: SplitMix64
    /// Enqueues waiting for room, and the elements each waiting dequeue needs in the queue
    /// (its count plus what it must leave behind): an enqueue wakes dequeues only once one of
    /// them can be served, and a dequeue wakes enqueues only when they wait. A batch's 128
    /// enqueues used to wake its waiting dequeue 128 times, each a context switch both ways.
    private var enqueueWaiters = 0
    private var dequeueNeeds: [Int] = []

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
        try enqueueTuples([tuple], release: release)
    }

    /// Adds the slices along dimension 0 of each component, in order, waiting for room as needed.
    public func enqueueMany(_ components: [Tensor], release: Release = { try $0() }) throws {
        try validate(components, batched: true)
        let slicers = components.map(Slicer.init)
        try enqueueTuples((0..<components[0].shape[0]).map { i in try slicers.map { try $0.slice(at: i) } }, release: release)
    }

    private func enqueueTuples(_ tuples: [[Tensor]], release: Release) throws {
        var next = 0
        var waiting = false
        // Adds what fits now; true when every tuple is in. Called with the condition locked. As
        // in TensorFlow, an enqueue that finds the queue closed fails; one already waiting for
        // room keeps waiting unless the close cancelled pending enqueues.
        func step() throws -> Bool {
            if cancelled { throw KilnError(.cancelled, "Enqueue operation was cancelled") }
            if closed && (!waiting || pendingEnqueuesCancelled) { throw KilnError(.cancelled, "\(typeName) '\(name)' is closed.") }
            waiting = true
            let before = next
            while next < tuples.count && elements.count < capacity {
                elements.append(tuples[next])
                next += 1
            }
            if next > before, let need = dequeueNeeds.min(), elements.count >= need { condition.broadcast() }
            return next == tuples.count
        }
        try perform(step, release: release, waiting: .enqueue)
    }

    // MARK: dequeue

    /// Removes one tuple, waiting until there is one (beyond min_after_dequeue for a shuffling queue).
    public func dequeue(release: Release = { try $0() }) throws -> [Tensor] {
        try take(1, upTo: false, release: release)[0]
    }

    /// Removes `n` tuples, stacked along a new dimension 0; too few in a closed queue: outOfRange.
    public func dequeueMany(_ n: Int, release: Release = { try $0() }) throws -> [Tensor] {
        try stack(try take(n, upTo: false, release: release), count: n)
    }

    /// As dequeueMany, but a closed queue hands out what it has left (at least one tuple).
    public func dequeueUpTo(_ n: Int, release: Release = { try $0() }) throws -> [Tensor] {
        let tuples = try take(n, upTo: true, release: release)
        return try stack(tuples, count: tuples.count)
    }

    private func take(_ n: Int, upTo: Bool, release: Release) throws -> [[Tensor]] {
        guard n >= 0 else { throw KilnError.invalidArgument("\(upTo ? "DequeueUpToOp" : "DequeueManyOp") requested \(n) < 0 elements") }
        var taken: [[Tensor]] = []
        // TensorFlow hands out a batch all at once: nothing is removed until all of it can be.
        func step() throws -> Bool {
            if cancelled { throw KilnError(.cancelled, "Dequeue operation was cancelled") }
            let keep = closed ? 0 : minAfterDequeue
            if elements.count - keep >= n {
                for _ in 0..<n { taken.append(removeOne()) }
                madeRoom()
                return true
            }
            guard closed else { return false }
            if upTo && !elements.isEmpty {
                while !elements.isEmpty { taken.append(removeOne()) }
                madeRoom()
                return true
            }
            throw KilnError.outOfRange("\(typeName) '\(name)' is closed and has insufficient elements (requested \(n), current size \(elements.count))")
        }
        try perform(step, release: release, waiting: .dequeue(need: n + minAfterDequeue))
        return taken
    }

    /// The next element: the oldest, or a random one for a shuffling queue (as TensorFlow picks).
    private func removeOne() -> [Tensor] {
        guard kind != .fifo else { return elements.removeFirst() }
        let i = Int(rng.next() % UInt64(elements.count))
        elements.swapAt(i, elements.count - 1)
        return elements.removeLast()
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

    /// Wakes the waiting enqueues, if any, to fill the room a dequeue made (the condition is locked).
    private func madeRoom() {
        if enqueueWaiters > 0 { condition.broadcast() }
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
                            enqueueWaiters += 1
                            condition.wait()
                            enqueueWaiters -= 1
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

    /// The elements of a tensor along dimension 0, each a tensor of its own (an element's shape
    /// and size are worked out once for all of them).
    struct Slicer {
        let tensor: Tensor
        let shape: [Int]
        let width: Int
        let bytes: Int

        init(_ t: Tensor) {
            tensor = t
            shape = Array(t.shape.dropFirst())
            width = t.elementCount / max(t.shape[0], 1)
            bytes = t.byteCount / max(t.shape[0], 1)
        }

        /// Element `i`.
        func slice(at i: Int) throws -> Tensor {
            if tensor.dtype == .string { return try Tensor(shape: shape, strings: Array(tensor.strings[i * width..<(i + 1) * width])) }
            // Every byte is copied over: no zeroing first.
            let buffer = try TensorBuffer(byteCount: bytes)
            tensor.withUnsafeBytes { src in buffer.pointer.copyMemory(from: src.baseAddress! + i * bytes, byteCount: bytes) }
            return try Tensor(dtype: tensor.dtype, shape: shape, buffer: buffer)
        }
    }

    /// The tuples' components stacked along a new dimension 0 (shape [0] + element shape when empty).
    private func stack(_ tuples: [[Tensor]], count: Int) throws -> [Tensor] {
        try dtypes.indices.map { c in
            let element: [Int]
            if let first = tuples.first { element = first[c].shape } else if let shapes { element = shapes[c] } else {
                throw KilnError.invalidArgument("\(typeName)'s DequeueMany and DequeueUpTo require the components to have specified shapes.")
            }
            for t in tuples where t[c].shape != element {
                throw KilnError.invalidArgument("Shape mismatch in tuple component \(c): elements of shapes \(Shape(element)) and \(Shape(t[c].shape)) cannot be batched")
            }
            if dtypes[c] == .string { return try Tensor(shape: [count] + element, strings: tuples.flatMap { $0[c].strings }) }
            // Every byte is copied over (the elements' shapes match): no zeroing first.
            let bytes = tuples.first.map { $0[c].byteCount } ?? 0
            let buffer = try TensorBuffer(byteCount: bytes * count)
            for (k, t) in tuples.enumerated() {
                t[c].withUnsafeBytes { src in (buffer.pointer + k * bytes).copyMemory(from: src.baseAddress!, byteCount: bytes) }
            }
            return try Tensor(dtype: dtypes[c], shape: [count] + element, buffer: buffer)
        }
    }
}
