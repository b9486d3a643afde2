import Foundation
import KilnIR

/// TensorFlow's TFRecord files (`tf.io.TFRecordWriter` / `tf.data.TFRecordDataset`): records of
/// opaque bytes, each framed as uint64 LE length, masked CRC32C of those 8 bytes, the data, and the
/// masked CRC32C of the data. A compressed file is the whole framed stream through one GZIP or
/// ZLIB stream; offsets in errors are offsets into the decompressed stream, as TensorFlow reports.
public enum TFRecordCompression: String, Sendable, CaseIterable {
    case none = ""
    case zlib = "ZLIB"
    case gzip = "GZIP"

    /// TensorFlow's compression_type strings ("", "NONE", "ZLIB", "GZIP").
    public init(typeString: String) throws {
        switch typeString.uppercased() {
        case "", "NONE": self = .none
        case "ZLIB": self = .zlib
        case "GZIP": self = .gzip
        default: throw KilnError.invalidArgument("unknown TFRecord compression type '\(typeString)' (use \"\", \"ZLIB\" or \"GZIP\")")
        }
    }
}

/// The record framing, shared by the reader and the writer.
enum TFRecordFraming {
    static let headerBytes = 12   // length (8) + masked CRC of the length (4)
    static let footerBytes = 4    // masked CRC of the data

    static func frame(_ record: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var length = UInt64(record.count).littleEndian
        withUnsafeBytes(of: &length) { lengthBytes in
            out += lengthBytes
            appendLE(CRC32C.mask(CRC32C.checksum(lengthBytes)), to: &out)
        }
        out += record
        appendLE(CRC32C.mask(CRC32C.checksum(record)), to: &out)
    }

    static func appendLE(_ v: UInt32, to out: inout [UInt8]) {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
}

/// Reads the records of one TFRecord file in order. Every length is checked against the bytes
/// that remain and every CRC is verified before a record is returned; a damaged file is a
/// dataLoss error naming the file, the record's number and its offset (TensorFlow's "truncated
/// record at" / "corrupted record at" wording), never a crash or a huge allocation. The end of
/// the file on a record boundary is the clean end (`next()` returns nil), as TensorFlow's
/// OutOfRange "eof". Named apart from the graph-building `TFRecordReader` (the reader op).
///
///     let reader = try TFRecordFileReader(path: "train.tfrecord", compression: .gzip)
///     while let record = try reader.next() { ... }
public final class TFRecordFileReader: Sequence {
    /// The file (or the name given for in-memory data), for errors.
    public let source: String
    public let compression: TFRecordCompression
    private let bytes: [UInt8]
    /// Offset of the next record in the (decompressed) stream.
    public private(set) var offset = 0
    /// Records read so far: the number (from 0) of the next record.
    public private(set) var recordsRead = 0

    public convenience init(path: String, compression: TFRecordCompression = .none) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw KilnError(.permissionDenied, "cannot read TFRecord file '\(path)'")
            }
            throw KilnError.notFound("TFRecord file '\(path)' does not exist")
        }
        try self.init(bytes: [UInt8](data), compression: compression, source: path)
    }

    /// Reads records from a file's bytes already in memory (still compressed, if it is).
    public init(bytes: [UInt8], compression: TFRecordCompression = .none, source: String = "TFRecord data") throws {
        self.source = source
        self.compression = compression
        switch compression {
        case .none: self.bytes = bytes
        // Zlib.inflate recognises either wrapper from its header; a GZIP file read as ZLIB (or the
        // reverse) therefore still reads, as it would with TensorFlow's autodetecting tools.
        case .zlib, .gzip: self.bytes = try Zlib.inflate(bytes, source: "TFRecord file '\(source)'")
        }
    }

    /// The next record, or nil at the end of the file (which must fall on a record boundary).
    public func next() throws -> [UInt8]? {
        try bytes.withUnsafeBytes { b in try nextRecord(b).map { Array(b[$0]) } }
    }

    /// Appends up to `count` records to `records` and the offset of each in the file to
    /// `offsets`; returns how many it appended (fewer only at the end of the file). A batch of
    /// records is so read into one string tensor's storage, without an array per record, in one
    /// access to the file's bytes.
    public func next(_ count: Int, into records: inout TensorStrings, offsets: inout [Int]) throws -> Int {
        try bytes.withUnsafeBytes { b in
            var n = 0
            while n < count {
                let at = offset
                guard let r = try nextRecord(b) else { break }
                records.append(UnsafeBufferPointer(rebasing: b.assumingMemoryBound(to: UInt8.self)[r]))
                offsets.append(at)
                n += 1
            }
            return n
        }
    }

    /// Where the next record's data lies in the (decompressed) bytes `b`, its framing checked; nil
    /// at the end of the file.
    private func nextRecord(_ b: UnsafeRawBufferPointer) throws -> Range<Int>? {
        let remaining = b.count - offset
        if remaining == 0 { return nil }
        // Only for messages: a record that reads well builds no strings.
        var at: String { "TFRecord file '\(source)', record \(recordsRead)" }
        guard remaining >= TFRecordFraming.headerBytes else {
            throw KilnError.dataLoss("\(at): truncated record at offset \(offset): \(remaining) bytes remain, a record header needs \(TFRecordFraming.headerBytes)")
        }
        let length = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let lengthCRC = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
        guard CRC32C.unmask(lengthCRC) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[offset..<(offset + 8)])) else {
            throw KilnError.dataLoss("\(at): corrupted record at offset \(offset): the length field's checksum does not match")
        }
        // The length is trusted only once its CRC matched, and then only as far as the bytes at hand.
        let available = UInt64(remaining - TFRecordFraming.headerBytes)
        guard available >= UInt64(TFRecordFraming.footerBytes), length <= available - UInt64(TFRecordFraming.footerBytes) else {
            throw KilnError.dataLoss("\(at): truncated record at offset \(offset): it declares \(length) bytes of data but only \(Swift.max(0, Int(available) - TFRecordFraming.footerBytes)) remain")
        }
        let start = offset + TFRecordFraming.headerBytes, end = start + Int(length)
        let dataCRC = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: end, as: UInt32.self))
        guard CRC32C.unmask(dataCRC) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[start..<end])) else {
            throw KilnError.dataLoss("\(at): corrupted record at offset \(offset): the data's checksum does not match (\(length) bytes)")
        }
        offset = end + TFRecordFraming.footerBytes
        recordsRead += 1
        return start..<end
    }

    /// Every remaining record; fails on the first damaged one.
    public func readAll() throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let r = try next() { out.append(r) }
        return out
    }

    /// Iterates the remaining records; a damaged record ends the iteration and is kept in
    /// `Iterator.error` (use `next()` directly to have it thrown).
    public struct Iterator: IteratorProtocol {
        let reader: TFRecordFileReader
        public private(set) var error: KilnError?
        public mutating func next() -> [UInt8]? {
            guard error == nil else { return nil }
            do { return try reader.next() } catch let e as KilnError {
                error = e
                return nil
            } catch {
                self.error = KilnError(.unknown, "\(error)")
                return nil
            }
        }
    }

    public func makeIterator() -> Iterator { Iterator(reader: self) }

    /// All records of the file at `path`.
    public static func records(path: String, compression: TFRecordCompression = .none) throws -> [[UInt8]] {
        try TFRecordFileReader(path: path, compression: compression).readAll()
    }
}

/// Writes a TFRecord file that TensorFlow reads. The file appears at `path` when the writer is
/// closed (it is written under a temporary name and renamed, so a reader never sees half a file):
/// by `close()`, which reports any error, or else when the writer is released, as TensorFlow's
/// writer closes in its destructor, so records written are never lost with the writer.
/// Uncompressed records go to disk as they are written; compressed ones are deflated as one
/// stream when the writer closes, as TensorFlow's writer finishes its stream.
public final class TFRecordWriter {
    public let path: String
    public let compression: TFRecordCompression
    private var file: AtomicFile?
    private var pending: [UInt8] = []
    /// Records written so far.
    public private(set) var count = 0

    public init(path: String, compression: TFRecordCompression = .none) throws {
        self.path = path
        self.compression = compression
        file = try AtomicFile(path: path)
    }

    public func write(_ record: [UInt8]) throws {
        try record.withUnsafeBytes { try write($0) }
    }

    public func write(_ record: UnsafeRawBufferPointer) throws {
        guard let file else { throw KilnError.failedPrecondition("TFRecord writer for '\(path)' is closed") }
        TFRecordFraming.frame(record, into: &pending)
        count += 1
        // Uncompressed framing streams out in chunks; compressed data waits for the one deflate.
        if compression == .none && pending.count >= 1 << 20 {
            try file.write(pending)
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// A writer released unclosed closes itself; its error, if any, cannot be thrown from here,
    /// so it is printed (call `close()` to handle it).
    deinit {
        do { try close() } catch {
            FileHandle.standardError.write(Data("kiln: TFRecord writer for '\(path)' could not be closed: \(error)\n".utf8))
        }
    }

    /// Finishes the file and moves it into place.
    public func close() throws {
        guard let file else { return }
        self.file = nil
        do {
            switch compression {
            case .none: try file.write(pending)
            case .zlib: try file.write(try Zlib.deflate(pending, format: .zlib))
            case .gzip: try file.write(try Zlib.deflate(pending, format: .gzip))
            }
            pending = []
            try file.commit()
        } catch {
            file.abort()
            throw error
        }
    }

    /// The bytes of an uncompressed TFRecord file holding `records`.
    public static func encode(_ records: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for r in records { r.withUnsafeBytes { TFRecordFraming.frame($0, into: &out) } }
        return out
    }

    /// Writes `records` to `path` in one step.
    public static func write(_ records: [[UInt8]], to path: String, compression: TFRecordCompression = .none) throws {
        let w = try TFRecordWriter(path: path, compression: compression)
        for r in records { try w.write(r) }
        try w.close()
    }
}
