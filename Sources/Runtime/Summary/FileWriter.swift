import Foundation
import KilnFrontend
import KilnIR

/// TensorFlow 1's `tf.summary.FileWriter`: summaries and graphs as events in
/// `<logdir>/events.out.tfevents.<seconds>.<host>`, for TensorBoard.
///
///     let writer = try FileWriter(logdir: "train/logs", graph: g)
///     let merged = try g.summary.mergeAll()!
///     ...
///     writer.add(summary: try sess.run(merged, feeds: feeds), step: step)
///     try writer.close()
///
/// `add` only queues the event: a background thread serializes and writes it, when `maxQueue`
/// events are pending, every `flushSecs` seconds, at `flush()` and at `close()` (or when the
/// writer is released), so a training step never waits on the disk. An error writing in the
/// background is thrown by the next `add`, `flush` or `close`.
public final class FileWriter {
    public let logdir: String
    /// The events file.
    public let path: String
    private let queue: EventQueue
    /// Tags whose SummaryMetadata was written already: TensorFlow keeps it on a tag's first
    /// value only (FileWriter._seen_summary_tags).
    private var seenTags = Set<String>()
    private let lock = NSLock()

    public init(logdir: String, graph: Graph? = nil, flushSecs: Double = 120, maxQueue: Int = 10) throws {
        guard flushSecs > 0, maxQueue > 0 else {
            throw KilnError.invalidArgument("FileWriter: flushSecs (\(flushSecs)) and maxQueue (\(maxQueue)) must be positive")
        }
        self.logdir = logdir
        do { try FileManager.default.createDirectory(atPath: logdir, withIntermediateDirectories: true) } catch {
            throw KilnError(.permissionDenied, "FileWriter: cannot create log directory '\(logdir)': \(error.localizedDescription)")
        }
        let now = Date().timeIntervalSince1970
        let file = try FileWriter.createFile(logdir: logdir, wallTime: now)
        path = file.path
        queue = EventQueue(file: file, flushSecs: flushSecs, maxQueue: maxQueue)
        if let graph { try add(graph: graph) }
    }

    /// A new events file named as TensorFlow names it; a second writer in the same second gets a
    /// numeric suffix instead of overwriting the first one's file.
    private static func createFile(logdir: String, wallTime: Double) throws -> EventFileWriter {
        let base = (logdir as NSString).appendingPathComponent(EventFile.fileName(seconds: Int64(wallTime)))
        var attempt = 0
        while true {
            do { return try EventFileWriter(path: attempt == 0 ? base : "\(base).\(attempt)", wallTime: wallTime) } catch let e as KilnError where e.code == .alreadyExists && attempt < 1000 {
                attempt += 1
            }
        }
    }

    deinit {
        do { try close() } catch {
            FileHandle.standardError.write(Data("kiln: FileWriter for '\(path)' could not be closed: \(error)\n".utf8))
        }
    }

    /// A serialized Summary as `Session.run` returns it from a summary op (a string scalar).
    public func add(summary: Tensor, step: Int) throws {
        guard summary.dtype == .string, summary.elementCount == 1 else {
            throw KilnError.invalidArgument("FileWriter.add(summary:): expected a serialized Summary (a string scalar), got \(summary.dtype.name) of shape \(Shape(summary.shape))")
        }
        let parsed: Tensorflow_Summary
        do { parsed = try Tensorflow_Summary(serializedBytes: summary.strings[0]) } catch {
            throw KilnError.invalidArgument("FileWriter.add(summary:): the tensor is not a serialized Summary (\(summary.strings[0].count) bytes)")
        }
        try add(summary: parsed, step: step)
    }

    public func add(summary: Tensorflow_Summary, step: Int) throws {
        var s = summary
        lock.lock()
        for i in s.value.indices where s.value[i].hasMetadata {
            if !seenTags.insert(s.value[i].tag).inserted { s.value[i].clearMetadata() }
        }
        lock.unlock()
        var e = Tensorflow_Event()
        e.step = Int64(step)
        e.summary = s
        try add(event: e)
    }

    /// The graph as a GraphDef (TensorFlow's add_graph), for TensorBoard's graph dashboard.
    public func add(graph: Graph, step: Int = 0) throws {
        try add(graphDef: graph.serializedGraphDef(), step: step)
    }

    /// A serialized GraphDef.
    public func add(graphDef: Data, step: Int = 0) throws {
        var e = Tensorflow_Event()
        e.step = Int64(step)
        e.graphDef = graphDef
        try add(event: e)
    }

    /// Any event; its wall time is now unless it has one.
    public func add(event: Tensorflow_Event) throws {
        var e = event
        if e.wallTime == 0 { e.wallTime = Date().timeIntervalSince1970 }
        try queue.enqueue(e)
    }

    /// Waits until every event added so far is in the file, and syncs it to disk.
    public func flush() throws { try queue.flush() }

    /// Writes what is pending and closes the file; later `add`s fail. Closing twice is harmless.
    public func close() throws { try queue.close() }
}

/// The events waiting for FileWriter's background thread, and that thread.
private final class EventQueue: @unchecked Sendable {
    private let file: EventFileWriter
    private let flushSecs: Double
    private let maxQueue: Int
    private let condition = NSCondition()
    private var pending: [Tensorflow_Event] = []
    private var queued = 0, written = 0
    private var flushRequested = false, closing = false, finished = false
    /// Written since the last sync (touched by the writing thread only).
    private var unsynced = false
    private var failure: Error?

    init(file: EventFileWriter, flushSecs: Double, maxQueue: Int) {
        (self.file, self.flushSecs, self.maxQueue) = (file, flushSecs, maxQueue)
        // The thread holds the queue, not the FileWriter, so releasing the writer closes it.
        let thread = Thread { [self] in run() }
        thread.name = "kiln.FileWriter"
        thread.start()
    }

    func enqueue(_ e: Tensorflow_Event) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        guard !closing else { throw KilnError.failedPrecondition("FileWriter for '\(file.path)' is closed") }
        pending.append(e)
        queued += 1
        if pending.count >= maxQueue { condition.broadcast() }
    }

    func flush() throws {
        condition.lock()
        defer { condition.unlock() }
        let target = queued
        flushRequested = true
        condition.broadcast()
        while written < target && !finished && failure == nil { condition.wait() }
        if let failure { throw failure }
    }

    func close() throws {
        condition.lock()
        closing = true
        condition.broadcast()
        while !finished { condition.wait() }
        let failure = self.failure
        condition.unlock()
        if let failure { throw failure }
        try file.close()
    }

    /// The background loop: writes a batch when maxQueue events wait, on request, or every
    /// flushSecs; syncs on flush and close; ends once closing and nothing is left.
    private func run() {
        condition.lock()
        while true {
            let deadline = Date(timeIntervalSinceNow: flushSecs)
            var timedOut = false
            while pending.count < maxQueue && !flushRequested && !closing && !timedOut {
                timedOut = !condition.wait(until: deadline)
            }
            let batch = pending, stop = closing
            // An idle writer's periodic wake-up syncs nothing.
            let sync = (flushRequested || closing || timedOut) && (unsynced || !batch.isEmpty)
            pending = []
            flushRequested = false
            condition.unlock()
            var error: Error?
            do {
                if !batch.isEmpty {
                    try file.write(batch)
                    unsynced = true
                }
                if sync {
                    try file.sync()
                    unsynced = false
                }
            } catch let e { error = e }
            condition.lock()
            written += batch.count
            if let error, failure == nil { failure = error }
            condition.broadcast()
            if stop && pending.isEmpty { break }
        }
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}
