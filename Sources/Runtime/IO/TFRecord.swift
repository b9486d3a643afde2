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
/// The file is streamed, as TensorFlow's RecordReader streams it: the reader holds a window of
/// 256 KB (more only while a larger record is read), decompressing as it goes, so a file of any
/// size costs that window, not its size.
///
///     let reader = try TFRecordFileReader(path: "train.tfrecord", compression: .gzip)
///     while let record = try reader.next() { ... }
public final class TFRecordFileReader: Sequence {
    /// The file (or the name given for in-memory data), for errors.
    public let source: String
    public let compression: TFRecordCompression
    /// Offset of the next record in the (decompressed) stream.
    public private(set) var offset = 0
    /// Records read so far: the number (from 0) of the next record.
    public private(set) var recordsRead = 0

    private let input: Input
    private var inflater: Zlib.Inflater?
    /// The window: bytes [head, tail) of `window` are the stream from `offset` on.
    private var window: UnsafeMutableRawBufferPointer
    private var head = 0, tail = 0
    private var ended = false
    private var failure: Error?
    /// The stream's length when it is known without reading it (uncompressed data).
    private let streamLength: Int?

    static let windowBytes = 1 << 18
    /// The bytes the reader holds now (its window).
    var heldBytes: Int { window.count }

    /// Where the (possibly compressed) bytes come from: a file is read up to its size when it
    /// was opened (what a writer appends later is not part of this read, as when files were read
    /// whole).
    private enum Input {
        case file(Int32, size: Int, Position)
        case memory(ArrayChunks)
        final class Position { var at = 0 }
    }

    public convenience init(path: String, compression: TFRecordCompression = .none) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            switch errno {
            case EACCES, EPERM: throw KilnError(.permissionDenied, "cannot read TFRecord file '\(path)': \(String(cString: strerror(errno)))")
            case ENOENT, ENOTDIR: throw KilnError.notFound("TFRecord file '\(path)' does not exist")
            default: throw KilnError(.unknown, "cannot open TFRecord file '\(path)': \(String(cString: strerror(errno)))")
            }
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw KilnError.invalidArgument("TFRecord file '\(path)' is not a regular file")
        }
        try self.init(.file(fd, size: Int(info.st_size), Input.Position()), length: Int(info.st_size), compression: compression, source: path)
    }

    /// Reads records from a file's bytes already in memory (still compressed, if it is).
    public convenience init(bytes: [UInt8], compression: TFRecordCompression = .none, source: String = "TFRecord data") throws {
        try self.init(.memory(ArrayChunks(bytes)), length: bytes.count, compression: compression, source: source)
    }

    private init(_ input: Input, length: Int, compression: TFRecordCompression, source: String) throws {
        self.input = input
        self.compression = compression
        self.source = source
        streamLength = compression == .none ? length : nil
        window = .allocate(byteCount: Self.windowBytes, alignment: 64)
        if compression != .none {
            // Zlib's inflater recognises either wrapper from its header; a GZIP file read as ZLIB
            // (or the reverse) therefore still reads, as it would with TensorFlow's autodetecting tools.
            inflater = try Zlib.Inflater(source: "TFRecord file '\(source)'") { [input] into in try Self.read(input, into: into, source: source) }
        }
    }

    deinit {
        window.deallocate()
        if case .file(let fd, _, _) = input { close(fd) }
    }

    /// The next raw (possibly compressed) bytes of `input`; 0 at its end.
    private static func read(_ input: Input, into out: UnsafeMutableRawBufferPointer, source: String) throws -> Int {
        switch input {
        case .memory(let chunks):
            return chunks.read(into: out)
        case .file(let fd, let size, let position):
            let wanted = Swift.min(out.count, size - position.at)
            while wanted > 0 {
                let n = Glibc.read(fd, out.baseAddress, wanted)
                if n >= 0 {
                    position.at += n
                    return n
                }
                if errno != EINTR { throw KilnError.dataLoss("TFRecord file '\(source)': read failed: \(String(cString: strerror(errno)))") }
            }
            return 0
        }
    }

    /// Makes `count` bytes of the stream from `offset` available in the window (fewer only at the
    /// stream's end); the number available. The window grows with the data that arrives, never
    /// ahead of it, so a length read from the file allocates nothing it does not hold.
    private func fill(_ count: Int) throws -> Int {
        while tail - head < count && !ended {
            if tail == window.count {
                if head > 0 {
                    // Keep the unread bytes, at the start.
                    if tail > head { window.baseAddress!.copyMemory(from: window.baseAddress! + head, byteCount: tail - head) }
                    tail -= head
                    head = 0
                } else {
                    let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: window.count * 2, alignment: 64)
                    grown.baseAddress!.copyMemory(from: window.baseAddress!, byteCount: tail)
                    window.deallocate()
                    window = grown
                }
            }
            let free = UnsafeMutableRawBufferPointer(rebasing: window[tail...])
            let n = try inflater.map { try $0.read(into: free) } ?? Self.read(input, into: free, source: source)
            if n == 0 { ended = true }
            tail += n
        }
        return tail - head
    }

    /// The next record, or nil at the end of the file (which must fall on a record boundary).
    public func next() throws -> [UInt8]? {
        try nextRecord().map { Array($0) }
    }

    /// Appends up to `count` records to `records` and the offset of each in the file to
    /// `offsets`; returns how many it appended (fewer only at the end of the file). A batch of
    /// records is so read into one string tensor's storage, without an array per record.
    public func next(_ count: Int, into records: inout TensorStrings, offsets: inout [Int]) throws -> Int {
        var n = 0
        while n < count {
            // The records wholly in the window, framed and checked with the window's state in
            // locals; anything else (the window's end, damage, an earlier failure) goes the
            // one-record way, which reads on or reports it.
            if failure == nil {
                let w = UnsafeRawBufferPointer(window), framing = TFRecordFraming.headerBytes + TFRecordFraming.footerBytes
                var h = head, read = 0
                while n + read < count, tail - h >= framing, let length = Self.checkedLength(w, at: h), length <= UInt64(tail - h - framing),
                      Self.dataMatches(w, at: h + TFRecordFraming.headerBytes, length: Int(length)) {
                    let start = h + TFRecordFraming.headerBytes
                    records.append(UnsafeRawBufferPointer(rebasing: w[start..<(start + Int(length))]).bindMemory(to: UInt8.self))
                    offsets.append(offset + h - head)
                    h = start + Int(length) + TFRecordFraming.footerBytes
                    read += 1
                }
                n += read
                recordsRead += read
                offset += h - head
                head = h
            }
            guard n < count else { break }
            let at = offset
            guard let r = try nextRecord() else { break }
            records.append(r)
            offsets.append(at)
            n += 1
        }
        return n
    }

    /// The length in the record header at `h` of `w`, nil when its checksum does not match.
    private static func checkedLength(_ w: UnsafeRawBufferPointer, at h: Int) -> UInt64? {
        let length = UInt64(littleEndian: w.loadUnaligned(fromByteOffset: h, as: UInt64.self))
        let crc = UInt32(littleEndian: w.loadUnaligned(fromByteOffset: h + 8, as: UInt32.self))
        return CRC32C.unmask(crc) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: w[h..<(h + 8)])) ? length : nil
    }

    /// Whether the `length` bytes of data at `start` of `w` match the checksum after them.
    private static func dataMatches(_ w: UnsafeRawBufferPointer, at start: Int, length: Int) -> Bool {
        let crc = UInt32(littleEndian: w.loadUnaligned(fromByteOffset: start + length, as: UInt32.self))
        return CRC32C.unmask(crc) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: w[start..<(start + length)]))
    }

    /// The next record's data, its framing checked, in the window (valid until the next read);
    /// nil at the end of the file. A damaged record stays the error of every later read.
    private func nextRecord() throws -> UnsafeBufferPointer<UInt8>? {
        if let failure { throw failure }
        do { return try readRecord() } catch {
            failure = error
            throw error
        }
    }

    /// Reads the rest of the stream, keeping none of it: how many bytes it holds from `offset` on.
    private func remainingCount() throws -> Int {
        var count = tail - head
        (head, tail) = (0, 0)
        while !ended {
            let n = try inflater.map { try $0.read(into: window) } ?? Self.read(input, into: window, source: source)
            if n == 0 { ended = true }
            count += n
        }
        return count
    }

    private func readRecord() throws -> UnsafeBufferPointer<UInt8>? {
        let remaining = try fill(TFRecordFraming.headerBytes)
        if remaining == 0 { return nil }
        // Only for messages: a record that reads well builds no strings.
        var at: String { "TFRecord file '\(source)', record \(recordsRead)" }
        guard remaining >= TFRecordFraming.headerBytes else {
            throw KilnError.dataLoss("\(at): truncated record at offset \(offset): \(remaining) bytes remain, a record header needs \(TFRecordFraming.headerBytes)")
        }
        guard let length = Self.checkedLength(UnsafeRawBufferPointer(window), at: head) else {
            throw KilnError.dataLoss("\(at): corrupted record at offset \(offset): the length field's checksum does not match")
        }
        // The length is trusted only once its CRC matched, and then only as far as the bytes at
        // hand: those the stream is known to hold, else those that arrive.
        func truncated(_ available: Int) -> KilnError {
            KilnError.dataLoss("\(at): truncated record at offset \(offset): it declares \(length) bytes of data but only \(Swift.max(0, available - TFRecordFraming.footerBytes)) remain")
        }
        let framing = TFRecordFraming.headerBytes + TFRecordFraming.footerBytes
        if let streamLength {
            let available = streamLength - offset - TFRecordFraming.headerBytes
            guard available >= TFRecordFraming.footerBytes, length <= UInt64(available - TFRecordFraming.footerBytes) else { throw truncated(available) }
        } else if length > UInt64(Int.max - framing) {
            throw truncated(try remainingCount() - TFRecordFraming.headerBytes)
        }
        let total = Int(length) + framing
        let held = try fill(total)
        guard held >= total else { throw truncated(held - TFRecordFraming.headerBytes) }
        let start = head + TFRecordFraming.headerBytes
        guard Self.dataMatches(UnsafeRawBufferPointer(window), at: start, length: Int(length)) else {
            throw KilnError.dataLoss("\(at): corrupted record at offset \(offset): the data's checksum does not match (\(length) bytes)")
        }
        head += total
        offset += total
        recordsRead += 1
        return UnsafeRawBufferPointer(rebasing: window[start..<(start + Int(length))]).bindMemory(to: UInt8.self)
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
/// Records go to disk in chunks as they are written, compressed ones through one GZIP or ZLIB
/// stream that closing finishes, so a writer holds a chunk, not the file.
public final class TFRecordWriter {
    public let path: String
    public let compression: TFRecordCompression
    private var file: AtomicFile?
    private var pending: [UInt8] = []
    private let deflater: Zlib.Deflater?
    /// Records written so far.
    public private(set) var count = 0
    /// The bytes the writer holds now (framed records not yet handed to the file).
    var heldBytes: Int { pending.capacity }

    public init(path: String, compression: TFRecordCompression = .none) throws {
        self.path = path
        self.compression = compression
        switch compression {
        case .none: deflater = nil
        case .zlib: deflater = try Zlib.Deflater(format: .zlib)
        case .gzip: deflater = try Zlib.Deflater(format: .gzip)
        }
        file = try AtomicFile(path: path)
    }

    public func write(_ record: [UInt8]) throws {
        try record.withUnsafeBytes { try write($0) }
    }

    public func write(_ record: UnsafeRawBufferPointer) throws {
        guard let file else { throw KilnError.failedPrecondition("TFRecord writer for '\(path)' is closed") }
        TFRecordFraming.frame(record, into: &pending)
        count += 1
        if pending.count >= 1 << 20 { try flushPending(to: file) }
    }

    /// Writes the framed records held so far (through the compressor, if any).
    private func flushPending(to file: AtomicFile) throws {
        if let deflater {
            try pending.withUnsafeBytes { try deflater.write($0) { try file.write($0) } }
        } else {
            try file.write(pending)
        }
        pending.removeAll(keepingCapacity: true)
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
            try flushPending(to: file)
            try deflater?.finish { try file.write($0) }
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
