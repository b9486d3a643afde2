import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KilnFrontend
import KilnIR
import SwiftProtobuf

/// TensorBoard's events files (`events.out.tfevents.<seconds>.<host>`): a TFRecord file whose
/// records are serialized `tensorflow.Event` messages, the first of them the `brain.Event:2`
/// file_version record.
public enum EventFile {
    /// The file_version TensorFlow writes first and TensorBoard checks.
    public static let fileVersion = "brain.Event:2"

    /// The file name TensorFlow's EventsWriter gives: `events.out.tfevents.<seconds>.<host><suffix>`,
    /// the seconds zero-padded to ten digits as its `%010lld`.
    public static func fileName(seconds: Int64, host: String = ProcessInfo.processInfo.hostName, suffix: String = "") -> String {
        let digits = String(seconds)
        return "events.out.tfevents." + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + "." + host + suffix
    }

    /// The first record of every events file.
    public static func versionEvent(wallTime: Double) -> Tensorflow_Event {
        var e = Tensorflow_Event()
        e.wallTime = wallTime
        e.fileVersion = fileVersion
        return e
    }
}

/// Reads every event of an events file, checking each record's masked CRC32C framing; a damaged
/// record or one that is not an Event is a dataLoss error naming the file and the offset.
///
///     for event in try EventFileReader(path: p).readAll() where event.hasSummary { ... }
public final class EventFileReader {
    public let path: String
    private let records: TFRecordFileReader

    public init(path: String) throws {
        self.path = path
        records = try TFRecordFileReader(path: path)
    }

    /// The next event, or nil at the end of the file.
    public func next() throws -> Tensorflow_Event? {
        let offset = records.offset, number = records.recordsRead
        guard let bytes = try records.next() else { return nil }
        do {
            return try Tensorflow_Event(serializedBytes: bytes)
        } catch {
            throw KilnError.dataLoss("events file '\(path)', record \(number) at offset \(offset): not a tensorflow.Event (\(bytes.count) bytes): \(error)")
        }
    }

    /// Every remaining event, in file order.
    public func readAll() throws -> [Tensorflow_Event] {
        var out: [Tensorflow_Event] = []
        while let e = try next() { out.append(e) }
        return out
    }
}

/// Appends framed Event records to an events file, synchronously. The file is written in place
/// (not renamed at the end as TFRecordWriter's files are) because TensorBoard reads an events
/// file while training still appends to it. FileWriter drives it from its background thread.
public final class EventFileWriter {
    public let path: String
    private var handle: FileHandle?

    /// Creates `path` (never overwriting an existing file) and writes the file_version record.
    public init(path: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw KilnError.io(errno, "cannot create events file", path) }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        try write([EventFile.versionEvent(wallTime: wallTime)])
    }

    deinit { try? handle?.close() }

    /// Frames and appends `events`, in one write.
    public func write(_ events: [Tensorflow_Event]) throws {
        var framed: [UInt8] = []
        for e in events {
            let bytes: [UInt8] = try e.serializedBytes()
            bytes.withUnsafeBytes { TFRecordFraming.frame($0, into: &framed) }
        }
        try write(framed: framed)
    }

    /// Appends records already framed (FileWriter frames on the caller's thread, writes on its own).
    func write(framed: [UInt8]) throws {
        guard let handle else { throw KilnError.failedPrecondition("events file '\(path)' is closed") }
        do { try handle.write(contentsOf: framed) } catch {
            throw KilnError(.unknown, "cannot write events file '\(path)': \(error.localizedDescription)")
        }
    }

    /// Closes the file; later writes fail.
    public func close() throws {
        guard let h = handle else { return }
        handle = nil
        do { try h.close() } catch {
            throw KilnError(.unknown, "cannot close events file '\(path)': \(error.localizedDescription)")
        }
    }
}
