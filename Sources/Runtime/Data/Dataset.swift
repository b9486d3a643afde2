import Foundation
import KilnFrontend
import KilnIR

/// An input pipeline in the manner of `tf.data`: a recipe for a sequence of elements, each
/// element a list of tensors (its components). Building a dataset reads nothing; every
/// `makeIterator()` runs the recipe afresh, so a dataset can be iterated more than once.
///
///     let batches = Dataset.tfRecord(["train.tfrecord"], compression: .gzip)
///         .map { [try parse($0[0])] }
///         .shuffle(buffer: 1000, seed: 7)
///         .batch(32, dropRemainder: true)
///         .repeat(10)
///         .prefetch(2)
///     let it = batches.makeIterator()
///     while let batch = try it.next() { ... }
///
/// Errors (a damaged file, a failing map) are thrown from `next()` in the place of the element
/// they stand for.
public struct Dataset: Sendable {
    /// Makes a fresh iterator over the elements: a function giving the next element, nil at the end.
    let makeSource: @Sendable () throws -> ElementSource

    init(_ makeSource: @escaping @Sendable () throws -> ElementSource) {
        self.makeSource = makeSource
    }

    /// An iterator over this dataset's elements.
    public func makeIterator() -> DatasetIterator {
        DatasetIterator(self)
    }
}

/// One run of a dataset's recipe: `next()` gives elements in order, then nil.
protocol ElementSource: AnyObject {
    func next() throws -> [Tensor]?
}

/// An ElementSource from a closure over its state.
final class ClosureSource: ElementSource {
    let body: () throws -> [Tensor]?
    init(_ body: @escaping () throws -> [Tensor]?) { self.body = body }
    func next() throws -> [Tensor]? { try body() }
}

/// Iterates a dataset. At the end `next()` returns nil, and keeps returning nil; an error is
/// thrown again by every later call, so a damaged input is never mistaken for its end.
/// Not for use from several threads at once.
public final class DatasetIterator {
    private let dataset: Dataset
    private var source: ElementSource?
    private var finished = false
    private var failure: Error?

    init(_ dataset: Dataset) {
        self.dataset = dataset
    }

    /// The next element's tensors, or nil after the last.
    public func next() throws -> [Tensor]? {
        if let failure { throw failure }
        if finished { return nil }
        do {
            if source == nil { source = try dataset.makeSource() }
            guard let element = try source!.next() else {
                finished = true
                source = nil
                return nil
            }
            return element
        } catch {
            failure = error
            source = nil
            throw error
        }
    }

    /// The next element as feeds for `inputs` (component i feeds `inputs[i]`), or nil at the end.
    public func feeds(for inputs: [Output]) throws -> [Output: Tensor]? {
        guard let element = try next() else { return nil }
        guard element.count == inputs.count else {
            throw KilnError.invalidArgument("the dataset's elements have \(element.count) components but \(inputs.count) inputs were given to feed")
        }
        return Dictionary(zip(inputs, element), uniquingKeysWith: { first, _ in first })
    }
}

extension Session {
    /// Runs `fetches` with the iterator's next element fed to `inputs` (plus `feeds`); nil when
    /// the iterator is at its end, so `while let out = try session.run(...)` trains an epoch.
    public func run(_ fetches: [Output], feeding inputs: [Output], from iterator: DatasetIterator,
                    feeds: [Output: Tensor] = [:], targets: [KilnFrontend.Operation] = []) throws -> [Tensor]? {
        guard let element = try iterator.feeds(for: inputs) else { return nil }
        return try run(fetches, feeds: feeds.merging(element) { _, fromDataset in fromDataset }, targets: targets)
    }
}

// MARK: - Sources

extension Dataset {
    /// The records of TFRecord files, in order, file after file: each element is one scalar
    /// string tensor holding a record's bytes (`tf.data.TFRecordDataset`). Files are opened as
    /// they are reached, so a missing or damaged file is an error at that point of the sequence.
    public static func tfRecord(_ files: [String], compression: TFRecordCompression = .none) -> Dataset {
        Dataset {
            var index = 0
            var reader: TFRecordFileReader?
            return ClosureSource {
                while true {
                    if reader == nil {
                        guard index < files.count else { return nil }
                        reader = try TFRecordFileReader(path: files[index], compression: compression)
                        index += 1
                    }
                    if let record = try reader!.next() { return [try Tensor(shape: [], strings: [record])] }
                    reader = nil
                }
            }
        }
    }

    /// The given elements, in order (`tf.data.Dataset.from_tensors` for each).
    public static func elements(_ elements: [[Tensor]]) -> Dataset {
        Dataset {
            var i = 0
            return ClosureSource {
                guard i < elements.count else { return nil }
                defer { i += 1 }
                return elements[i]
            }
        }
    }
}

// MARK: - Transformations

extension Dataset {
    /// Each element replaced by `transform(element)`; an error it throws is the iterator's error.
    public func map(_ transform: @escaping @Sendable ([Tensor]) throws -> [Tensor]) -> Dataset {
        let upstream = self
        return Dataset {
            let source = try upstream.makeSource()
            return ClosureSource { try source.next().map(transform) }
        }
    }

    /// The first `count` elements (all of them when `count` is negative), as `take`.
    public func take(_ count: Int) -> Dataset {
        let upstream = self
        return Dataset {
            let source = try upstream.makeSource()
            var taken = 0
            return ClosureSource {
                guard count < 0 || taken < count else { return nil }
                taken += 1
                return try source.next()
            }
        }
    }

    /// The elements `count` times over (forever when `count` is nil or negative), each pass a
    /// fresh run of the recipe, so a shuffle upstream reshuffles. A pass that yields nothing
    /// ends the sequence, as TensorFlow's repeat does, rather than spinning forever.
    public func `repeat`(_ count: Int? = nil) -> Dataset {
        let upstream = self
        let passes = count.flatMap { $0 < 0 ? nil : $0 }
        return Dataset {
            var done = 0
            var source: ElementSource?
            var yieldedThisPass = false
            return ClosureSource {
                while true {
                    if let passes, done >= passes { return nil }
                    if source == nil {
                        source = try upstream.makeSource()
                        yieldedThisPass = false
                    }
                    if let element = try source!.next() {
                        yieldedThisPass = true
                        return element
                    }
                    source = nil
                    done += 1
                    if !yieldedThisPass { return nil }
                }
            }
        }
    }

    /// Elements drawn at random from a buffer of `buffer` elements, as `tf.data`'s shuffle: the
    /// buffer fills from the input; each draw takes a uniformly chosen element from it and puts
    /// the next input element in its place; at the input's end the buffer drains at random.
    /// So an element can move at most `buffer - 1` places earlier. A seed makes the order
    /// repeatable; with `reshuffleEachIteration` every new iterator (each pass of a repeat
    /// after it) draws a different, still seed-determined, order.
    public func shuffle(buffer: Int, seed: UInt64? = nil, reshuffleEachIteration: Bool = true) throws -> Dataset {
        guard buffer > 0 else { throw KilnError.invalidArgument("buffer_size must be greater than zero.") }
        let upstream = self
        let base = seed ?? UInt64.random(in: 0...UInt64.max)
        let iterations = Counter()
        return Dataset {
            let source = try upstream.makeSource()
            let iteration = reshuffleEachIteration ? iterations.next() : 0
            var rng = SplitMix64(seed: base &+ 0x9E37_79B9_7F4A_7C15 &* (iteration &+ 1))
            var pool: [[Tensor]] = []
            var inputDone = false
            return ClosureSource {
                while !inputDone && pool.count < buffer {
                    if let element = try source.next() { pool.append(element) } else { inputDone = true }
                }
                guard !pool.isEmpty else { return nil }
                let i = Int(rng.next() % UInt64(pool.count))
                let chosen = pool[i]
                if !inputDone, let replacement = try source.next() {
                    pool[i] = replacement
                } else {
                    inputDone = true
                    pool.swapAt(i, pool.count - 1)
                    pool.removeLast()
                }
                return chosen
            }
        }
    }

    /// Consecutive elements stacked into one, each component gaining a leading dimension of the
    /// batch's size (`batch(n, drop_remainder:)`). The last batch may be smaller unless
    /// `dropRemainder`. Every element's components must agree in dtype and shape.
    public func batch(_ size: Int, dropRemainder: Bool = false) throws -> Dataset {
        guard size > 0 else { throw KilnError.invalidArgument("Batch size must be greater than zero, got \(size)") }
        let upstream = self
        return Dataset {
            let source = try upstream.makeSource()
            var ended = false
            return ClosureSource {
                guard !ended else { return nil }
                var elements: [[Tensor]] = []
                elements.reserveCapacity(size)
                while elements.count < size {
                    guard let e = try source.next() else {
                        ended = true
                        break
                    }
                    elements.append(e)
                }
                if elements.isEmpty || (dropRemainder && elements.count < size) { return nil }
                return try Dataset.stack(elements)
            }
        }
    }

    /// Elements computed ahead by a background thread into a buffer of `bufferSize` elements,
    /// so producing the next element overlaps using this one. Order, errors and the end are
    /// those of the input. The thread stops at the input's end, at an error, or when the
    /// iterator is released.
    public func prefetch(_ bufferSize: Int) throws -> Dataset {
        guard bufferSize > 0 else { throw KilnError.invalidArgument("buffer_size must be greater than zero, got \(bufferSize)") }
        let upstream = self
        return Dataset {
            PrefetchSource(upstream: upstream, capacity: bufferSize)
        }
    }

    /// Stacks elements component by component: component c of the result has shape
    /// [elements.count] + the components' common shape.
    static func stack(_ elements: [[Tensor]]) throws -> [Tensor] {
        let first = elements[0]
        var out: [Tensor] = []
        for c in first.indices {
            let t0 = first[c]
            for (k, e) in elements.enumerated() {
                guard e.count == first.count else {
                    throw KilnError.invalidArgument("Cannot batch elements with different numbers of components: the first element had \(first.count) and element \(k) had \(e.count)")
                }
                guard e[c].dtype == t0.dtype else {
                    throw KilnError.invalidArgument("Cannot batch tensors with different types in component \(c). First element had type \(t0.dtype.name) and element \(k) had type \(e[c].dtype.name).")
                }
                guard e[c].shape == t0.shape else {
                    throw KilnError.invalidArgument("Cannot batch tensors with different shapes in component \(c). First element had shape \(t0.shape) and element \(k) had shape \(e[c].shape).")
                }
            }
            let shape = [elements.count] + t0.shape
            if t0.dtype == .string {
                out.append(try Tensor(shape: shape, strings: TensorStrings(concatenating: elements.lazy.map { $0[c].strings })))
            } else {
                let n = try Tensor.checkedCount(shape, t0.dtype)
                let buffer = try TensorBuffer(byteCount: n * t0.dtype.byteSize)
                let each = t0.byteCount
                for (k, e) in elements.enumerated() {
                    buffer.pointer.advanced(by: k * each).copyMemory(from: e[c].buffer.pointer, byteCount: each)
                }
                out.append(try Tensor(dtype: t0.dtype, shape: shape, buffer: buffer))
            }
        }
        return out
    }
}

/// Counts the iterators a shuffle has made, so each may draw its own order.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0
    func next() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same sequence on
/// every platform, which SystemRandomNumberGenerator does not.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
