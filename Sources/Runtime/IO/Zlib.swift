import CZlib
import Foundation
import KilnIR

/// An array's bytes handed out in order, as much as each buffer holds: the in-memory side of a
/// streamed read (an inflater's compressed input, a TFRecord reader's bytes).
final class ArrayChunks {
    private let bytes: [UInt8]
    private var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Copies the next bytes into `out`; how many (0 at the end).
    func read(into out: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(out.count, bytes.count - at)
        if n > 0 { bytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress! + at, byteCount: n) } }
        at += n
        return n
    }
}

/// GZIP and ZLIB streams (RFC 1952 / 1950) through zlib: inflate and deflate, streaming or of whole buffers.
public enum Zlib {
    public enum Format: Sendable {
        case gzip, zlib
        /// zlib's windowBits: 15 for a zlib wrapper, 15+16 for gzip.
        var windowBits: Int32 { self == .gzip ? 31 : 15 }
    }

    /// Decompresses a whole gzip or zlib stream (the wrapper is detected from its header).
    /// Corrupt or truncated input is a dataLoss error naming `source`.
    public static func inflate(_ data: [UInt8], source: String = "stream") throws -> [UInt8] {
        let input = ArrayChunks(data)
        let inflater = try Inflater(source: source, input: input.read)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 18)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try inflater.read(into: $0) }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// A gzip or zlib stream decompressed as it is read, its compressed bytes pulled from `input`
    /// a chunk at a time, so neither side of a large file is ever held whole. Concatenated gzip
    /// members read as one stream, as gzip(1) reads them.
    public final class Inflater {
        private let source: String
        /// Fills the buffer it is given with the next compressed bytes; 0 at the end of the input.
        private let input: (UnsafeMutableRawBufferPointer) throws -> Int
        // zlib keeps a pointer back to its z_stream and checks it on every call, so the stream
        // lives at one heap address (a Swift property passed `&stream` may move between calls).
        private let stream: UnsafeMutablePointer<z_stream>
        private let chunk: UnsafeMutableRawBufferPointer
        private var inputEnded = false
        private var finished = false

        public init(source: String, input: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws {
            self.source = source
            self.input = input
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            chunk = .allocate(byteCount: 1 << 18, alignment: 16)
            // 32 added to windowBits makes zlib detect gzip or zlib headers itself.
            guard inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                stream.deallocate()
                chunk.deallocate()
                throw KilnError.internalError("zlib: inflateInit2 failed")
            }
        }

        deinit {
            inflateEnd(stream)
            stream.deallocate()
            chunk.deallocate()
        }

        /// More compressed input when zlib has used all it was given; false at the input's end.
        private func refill() throws -> Bool {
            if stream.pointee.avail_in > 0 { return true }
            if inputEnded { return false }
            let n = try input(chunk)
            if n == 0 { inputEnded = true; return false }
            stream.pointee.next_in = chunk.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_in = uInt(n)
            return true
        }

        /// Decompresses into `out`; the number of bytes written, 0 only at the stream's end.
        public func read(into out: UnsafeMutableRawBufferPointer) throws -> Int {
            guard !finished, out.count > 0 else { return 0 }
            stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(min(out.count, Int(UInt32.max)))
            let wanted = Int(stream.pointee.avail_out)
            while true {
                let more = try refill()
                let status = CZlib.inflate(stream, Z_NO_FLUSH)
                let produced = wanted - Int(stream.pointee.avail_out)
                if status == Z_STREAM_END {
                    // Another gzip member may follow; anything else after the end is an error then.
                    if try refill() {
                        guard inflateReset(stream) == Z_OK else { throw KilnError.internalError("zlib: inflateReset failed") }
                    } else {
                        finished = true
                    }
                    if produced > 0 || finished { return produced }
                    continue
                }
                if status == Z_BUF_ERROR && !more {
                    throw KilnError.dataLoss("\(source): compressed data is truncated after \(stream.pointee.total_in) bytes")
                }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    let why = stream.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw KilnError.dataLoss("\(source): corrupt compressed data at byte \(stream.pointee.total_in): \(why)")
                }
                if produced > 0 { return produced }
            }
        }
    }

    /// Compresses `data` into one gzip or zlib stream at zlib's default level.
    public static func deflate(_ data: [UInt8], format: Format, level: Int32 = Z_DEFAULT_COMPRESSION) throws -> [UInt8] {
        var out: [UInt8] = []
        let deflater = try Deflater(format: format, level: level)
        try data.withUnsafeBytes { try deflater.write($0) { out.append(contentsOf: $0) } }
        try deflater.finish { out.append(contentsOf: $0) }
        return out
    }

    /// One gzip or zlib stream compressed as it is written: each call hands the compressed
    /// bytes it has ready to `output`, so a large file is never held whole on either side.
    public final class Deflater {
        private let stream: UnsafeMutablePointer<z_stream>
        private let chunk: UnsafeMutableRawBufferPointer

        public init(format: Format, level: Int32 = Z_DEFAULT_COMPRESSION) throws {
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            chunk = .allocate(byteCount: 1 << 18, alignment: 16)
            guard deflateInit2_(stream, level, Z_DEFLATED, format.windowBits, 9, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                                Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                stream.deallocate()
                chunk.deallocate()
                throw KilnError.internalError("zlib: deflateInit2 failed")
            }
        }

        deinit {
            deflateEnd(stream)
            stream.deallocate()
            chunk.deallocate()
        }

        /// Compresses `data`, handing what is ready to `output`.
        public func write(_ data: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
            var rest = data
            // avail_in is 32 bits: larger inputs go in slices.
            while !rest.isEmpty {
                let n = min(rest.count, 1 << 30)
                try run(UnsafeRawBufferPointer(rebasing: rest[..<n]), flush: Z_NO_FLUSH, output: output)
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }

        /// Ends the stream (its trailer included), handing the last bytes to `output`.
        public func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws {
            try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH, output: output)
        }

        private func run(_ input: UnsafeRawBufferPointer, flush: Int32, output: (UnsafeRawBufferPointer) throws -> Void) throws {
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(input.count)
            while true {
                stream.pointee.next_out = chunk.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(chunk.count)
                let status = CZlib.deflate(stream, flush)
                guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                    throw KilnError.internalError("zlib: deflate failed with status \(status)")
                }
                let produced = chunk.count - Int(stream.pointee.avail_out)
                if produced > 0 { try output(UnsafeRawBufferPointer(rebasing: chunk[..<produced])) }
                // Done once zlib has taken all the input and had room to spare (or ended the stream).
                if status == Z_STREAM_END || (flush != Z_FINISH && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0) { return }
            }
        }
    }

    /// A file's bytes, decompressed when its name ends in .gz.
    public static func readFile(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw KilnError.notFound("cannot read file '\(path)'") }
        let bytes = [UInt8](d)
        return path.hasSuffix(".gz") ? try inflate(bytes, source: path) : bytes
    }
}
