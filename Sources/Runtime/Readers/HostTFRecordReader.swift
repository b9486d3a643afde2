import Foundation
import KilnIR

/// The reader a TFRecordReaderV2 op makes in a session (TensorFlow's ReaderBase with its
/// TFRecordReader): it turns work units, filenames dequeued from a queue, into records. Reads
/// are serialised by the reader's own lock, which callers take with the session's lock let go,
/// since a read may wait on the queue for the next filename.
final class HostTFRecordReader: CancellableResource, @unchecked Sendable {
    /// For messages: "TFRecordReader '<node>'", as TensorFlow names a reader.
    let name: String
    let compression: TFRecordCompression
    private let lock = NSLock()
    /// The file being read (TensorFlow's current work), and its name and a colon: the start of
    /// its records' keys.
    private var file: TFRecordFileReader?
    private var keyPrefix: [UInt8] = []
    /// The offsets of the records a read takes, kept between reads (the lock is held).
    private var offsets: [Int] = []
    private var workStarted: Int64 = 0
    private var workFinished: Int64 = 0
    private var recordsProduced: Int64 = 0
    /// Set by `cancel` without the read lock (a read may hold it while it waits on the queue).
    private let cancelLock = NSLock()
    private var cancelled = false

    init(name: String, compression: TFRecordCompression) {
        self.name = name
        self.compression = compression
    }

    /// Records and their keys, "<file>:<offset>" in UTF-8 (the string tensors' elements).
    struct Records {
        var keys = TensorStrings(), values = TensorStrings()
        var count: Int { values.count }
    }

    /// The next record. Dequeues filenames until a file has a record; the queue's own error
    /// (outOfRange once it is closed and empty) ends the read.
    func read(from queue: HostQueue) throws -> Records {
        lock.lock()
        defer { lock.unlock() }
        var out = Records()
        while true {
            let file = try currentWork(queue)
            if try appendNext(1, of: file, to: &out) == 1 { return out }
            finishWork()
        }
    }

    /// Appends up to `count` of the open file's records and their keys (the lock is held);
    /// returns how many (fewer only at the end of the file).
    private func appendNext(_ count: Int, of file: TFRecordFileReader, to out: inout Records) throws -> Int {
        offsets.removeAll(keepingCapacity: true)
        let n = try file.next(count, into: &out.values, offsets: &offsets)
        recordsProduced += Int64(n)
        // "<file>:<offset>", the offset's digits written straight after the file's name, every key
        // of the batch in one pass over the keys' storage: no String, array or call per record.
        offsets.withUnsafeBufferPointer { at in
            keyPrefix.withUnsafeBufferPointer { prefix in
                out.keys.append(count: at.count, maxBytes: prefix.count + 20) { i, key in
                    key.update(from: prefix.baseAddress!, count: prefix.count)
                    var digits = 0, v = at[i]
                    repeat {
                        key[prefix.count + digits] = UInt8(ascii: "0") + UInt8(v % 10)
                        digits += 1
                        v /= 10
                    } while v > 0
                    var written = UnsafeMutableBufferPointer(start: key + prefix.count, count: digits)
                    written.reverse()
                    return prefix.count + digits
                }
            }
        }
        return n
    }

    /// The next record of the open file, without waiting: nil when another read holds the reader
    /// (it may be waiting on the queue) or a filename must be dequeued first. A run reads this
    /// way with the session's lock held; letting it go and taking it back around every record
    /// made each read a hand-over with the threads waiting for that lock.
    func readWithoutWaiting() throws -> Records? {
        guard lock.try() else { return nil }
        defer { lock.unlock() }
        guard let file, !isCancelled else { return nil }
        var out = Records()
        guard try appendNext(1, of: file, to: &out) == 1 else {
            finishWork()
            return nil
        }
        return out
    }

    /// Up to `count` records, all from one file (TensorFlow's ReadUpTo returns at the end of a
    /// file that gave any); files with no records are passed over.
    func readUpTo(_ count: Int, from queue: HostQueue) throws -> Records {
        lock.lock()
        defer { lock.unlock() }
        var out = Records()
        while out.count < count {
            let file = try currentWork(queue)
            let wanted = count - out.count
            if try appendNext(wanted, of: file, to: &out) == wanted { continue }
            finishWork()
            if out.count > 0 { break }
        }
        return out
    }

    var numRecordsProduced: Int64 { locked { recordsProduced } }
    var numWorkUnitsCompleted: Int64 { locked { workFinished } }

    /// Back to the start: no current file, every count zero (the queue is untouched).
    func reset() {
        locked {
            file = nil
            workStarted = 0
            workFinished = 0
            recordsProduced = 0
        }
    }

    func cancel() {
        cancelLock.lock()
        cancelled = true
        cancelLock.unlock()
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    private var isCancelled: Bool {
        cancelLock.lock()
        defer { cancelLock.unlock() }
        return cancelled
    }

    /// The open file, dequeuing and opening the next one when none is open.
    private func currentWork(_ queue: HostQueue) throws -> TFRecordFileReader {
        if isCancelled { throw KilnError(.cancelled, "\(name): the session was closed") }
        if let file { return file }
        let tuple = try queue.dequeue()
        // TensorFlow's checks of a work unit, with its words.
        guard tuple.count == 1 else { throw KilnError.invalidArgument("\(name): Expected single component queue") }
        guard tuple[0].dtype == .string else { throw KilnError.invalidArgument("\(name): Expected queue with single string component") }
        guard tuple[0].elementCount == 1 else { throw KilnError.invalidArgument("\(name): Expected to dequeue a one-element string tensor") }
        let name = tuple[0].strings[0]
        let path = String(decoding: name, as: UTF8.self)
        let opened = try TFRecordFileReader(path: path, compression: compression)
        file = opened
        keyPrefix = name + Array(":".utf8)
        workStarted += 1
        return opened
    }

    private func finishWork() {
        file = nil
        workFinished = workStarted
    }
}
