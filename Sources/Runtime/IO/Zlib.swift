import CZlib
import Foundation
import KilnIR

/// GZIP and ZLIB streams (RFC 1952 / 1950) through zlib: whole-buffer inflate and deflate.
public enum Zlib {
    public enum Format: Sendable {
        case gzip, zlib
        /// zlib's windowBits: 15 for a zlib wrapper, 15+16 for gzip.
        var windowBits: Int32 { self == .gzip ? 31 : 15 }
    }

    /// Decompresses a whole gzip or zlib stream (the wrapper is detected from its header).
    /// Corrupt or truncated input is a dataLoss error naming `source`.
    public static func inflate(_ data: [UInt8], source: String = "stream") throws -> [UInt8] {
        // zlib keeps a pointer back to its z_stream and checks it on every call, so the stream
        // lives at one heap address (a Swift local passed `&stream` may move between calls).
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        // 32 added to windowBits makes zlib detect gzip or zlib headers itself.
        guard inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw KilnError.internalError("zlib: inflateInit2 failed")
        }
        defer { inflateEnd(stream) }
        var out: [UInt8] = []
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 1 << 18)
        defer { chunk.deallocate() }
        return try data.withUnsafeBufferPointer { inBuf -> [UInt8] in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.pointee.avail_in = uInt(inBuf.count)
            while true {
                stream.pointee.next_out = chunk.baseAddress
                stream.pointee.avail_out = uInt(chunk.count)
                let status = CZlib.inflate(stream, Z_NO_FLUSH)
                out.append(contentsOf: chunk[0..<(chunk.count - Int(stream.pointee.avail_out))])
                if status == Z_STREAM_END {
                    // Concatenated gzip members are one file to gzip(1); keep going.
                    if stream.pointee.avail_in > 0 && inflateReset(stream) == Z_OK { continue }
                    return out
                }
                if status == Z_BUF_ERROR && stream.pointee.avail_in == 0 {
                    throw KilnError.dataLoss("\(source): compressed data is truncated after \(stream.pointee.total_in) bytes")
                }
                guard status == Z_OK else {
                    let why = stream.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw KilnError.dataLoss("\(source): corrupt compressed data at byte \(stream.pointee.total_in): \(why)")
                }
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
