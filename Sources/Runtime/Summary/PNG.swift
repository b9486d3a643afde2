import CZlib
import Foundation
import KilnIR

/// PNG images (8-bit gray, RGB or RGBA) for TensorBoard's image summaries: an encoder writing
/// one IDAT of zlib-compressed rows with filter 0, as TensorFlow's ImageSummary does, and a
/// decoder for PNG files of that kind (any row filter, no interlacing), enough to check them.
public enum PNG {
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// A decoded image: rows of width * channels bytes, top to bottom.
    public struct Image: Equatable {
        public var width: Int, height: Int, channels: Int
        public var pixels: [UInt8]
        public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
            (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
        }
    }

    /// PNG color types by channel count: gray, RGB, RGBA (2, gray with alpha, too).
    private static func colorType(channels: Int) -> UInt8? { [1: 0, 2: 4, 3: 2, 4: 6][channels] }

    public static func encode(_ image: Image) throws -> [UInt8] {
        guard let color = colorType(channels: image.channels) else { throw KilnError.invalidArgument("PNG: \(image.channels) channels (1 to 4 are supported)") }
        guard image.width > 0, image.height > 0, image.width < 1 << 31, image.height < 1 << 31 else {
            throw KilnError.invalidArgument("PNG: cannot encode a \(image.width)x\(image.height) image")
        }
        let row = image.width * image.channels
        guard image.pixels.count == row * image.height else {
            throw KilnError.invalidArgument("PNG: \(image.pixels.count) bytes for a \(image.width)x\(image.height)x\(image.channels) image")
        }
        var raw: [UInt8] = []
        raw.reserveCapacity((row + 1) * image.height)
        for y in 0..<image.height {
            raw.append(0)   // filter type 0 (None)
            raw += image.pixels[(y * row)..<((y + 1) * row)]
        }
        var header: [UInt8] = []
        appendBE(UInt32(image.width), to: &header)
        appendBE(UInt32(image.height), to: &header)
        header += [8, color, 0, 0, 0]   // bit depth 8, deflate, filter method 0, no interlace
        var out = signature
        chunk("IHDR", header, into: &out)
        chunk("IDAT", try Zlib.deflate(raw, format: .zlib), into: &out)
        chunk("IEND", [], into: &out)
        return out
    }

    /// Decodes an 8-bit, non-interlaced PNG; anything else, or damage, is a dataLoss error.
    public static func decode(_ bytes: [UInt8]) throws -> Image {
        func fail(_ why: String) -> KilnError { KilnError.dataLoss("PNG: \(why)") }
        guard bytes.starts(with: signature) else { throw fail("no PNG signature") }
        var at = signature.count
        var header: [UInt8]?, idat: [UInt8] = [], ended = false
        while !ended {
            guard at + 12 <= bytes.count else { throw fail("truncated chunk at offset \(at)") }
            let length = Int(readBE(bytes, at))
            guard length <= bytes.count - at - 12 else { throw fail("chunk at offset \(at) runs past the end") }
            let type = String(decoding: bytes[(at + 4)..<(at + 8)], as: UTF8.self)
            let data = Array(bytes[(at + 8)..<(at + 8 + length)])
            guard readBE(bytes, at + 8 + length) == crc(Array(bytes[(at + 4)..<(at + 8 + length)])) else {
                throw fail("chunk \(type) at offset \(at): CRC mismatch")
            }
            switch type {
            case "IHDR": header = data
            case "IDAT": idat += data
            case "IEND": ended = true
            default: break
            }
            at += 12 + length
        }
        guard let h = header, h.count == 13 else { throw fail("no IHDR") }
        let width = Int(readBE(h, 0)), height = Int(readBE(h, 4))
        guard h[8] == 8, h[12] == 0, let channels = [0: 1, 4: 2, 2: 3, 6: 4][h[9]] else {
            throw fail("only 8-bit non-interlaced gray, RGB or RGBA images are supported")
        }
        let row = width * channels
        let raw = try Zlib.inflate(idat, source: "PNG IDAT")
        guard raw.count == (row + 1) * height else { throw fail("IDAT holds \(raw.count) bytes, a \(width)x\(height)x\(channels) image needs \((row + 1) * height)") }
        var pixels = [UInt8](repeating: 0, count: row * height)
        for y in 0..<height {
            let filter = raw[y * (row + 1)]
            for x in 0..<row {
                let v = raw[y * (row + 1) + 1 + x]
                let a = x >= channels ? Int(pixels[y * row + x - channels]) : 0
                let b = y > 0 ? Int(pixels[(y - 1) * row + x]) : 0
                let c = x >= channels && y > 0 ? Int(pixels[(y - 1) * row + x - channels]) : 0
                let predicted: Int
                switch filter {
                case 0: predicted = 0
                case 1: predicted = a
                case 2: predicted = b
                case 3: predicted = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predicted = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw fail("row \(y) has unknown filter type \(filter)")
                }
                pixels[y * row + x] = v &+ UInt8(truncatingIfNeeded: predicted)
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func chunk(_ type: String, _ data: [UInt8], into out: inout [UInt8]) {
        appendBE(UInt32(data.count), to: &out)
        let typed = Array(type.utf8) + data
        out += typed
        appendBE(crc(typed), to: &out)
    }

    /// The CRC-32 of PNG chunks (zlib's crc32).
    private static func crc(_ bytes: [UInt8]) -> UInt32 {
        UInt32(bytes.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) })
    }

    private static func appendBE(_ v: UInt32, to out: inout [UInt8]) {
        for i in (0..<4).reversed() { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }

    private static func readBE(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(b[at + $1]) }
    }
}
