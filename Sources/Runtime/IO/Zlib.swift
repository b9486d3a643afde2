import CZlib
import Foundation
import KilnIR

/// GZIP and ZLIB streams (RFC 1952 / 1950) through zlib: streaming and whole-buffer inflate, whole-buffer deflate.
public enum Zlib {
    public enum Format: Sendable {
        case gzip, zlib
        /// zlib's windowBits: 15 for a zlib wrapper, 15+16 for gzip.
        var windowBits: Int32 { self == .gzip ? 31 : 15 }
    }

    /// Decompresses a whole gzip or zlib stream (the wrapper is detected from its header).
    /// Corrupt or truncated input is a dataLoss error naming `source`.
    public static func inflate(_ data: [UInt8], source: String = "stream") throws -> [UInt8] {
        var position = 0
        let inflater = try Inflater(source: source) { into in
            let n = min(into.count, data.count - position)
            data.withUnsafeBytes { into.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
            position += n
            return n
        }
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
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        guard deflateInit2_(stream, level, Z_DEFLATED, format.windowBits, 9, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw KilnError.internalError("zlib: deflateInit2 failed")
        }
        defer { deflateEnd(stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(stream, uLong(data.count))) + 64)
        let status = data.withUnsafeBufferPointer { inBuf in
            out.withUnsafeMutableBufferPointer { outBuf -> Int32 in
                stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
                stream.pointee.avail_in = uInt(inBuf.count)
                stream.pointee.next_out = outBuf.baseAddress
                stream.pointee.avail_out = uInt(outBuf.count)
                return CZlib.deflate(stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw KilnError.internalError("zlib: deflate failed with status \(status)") }
        return Array(out[0..<Int(stream.pointee.total_out)])
    }

    /// A file's bytes, decompressed when its name ends in .gz.
    public static func readFile(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw KilnError.notFound("cannot read file '\(path)'") }
        let bytes = [UInt8](d)
        return path.hasSuffix(".gz") ? try inflate(bytes, source: path) : bytes
    }
}
