import Foundation
import KilnIR

/// numpy's `.npy` files: read format 1.0, 2.0 and 3.0, write 1.0 (2.0 when the header needs
/// it), little-endian C-order arrays of float32, float64, float16, int32, int64, int16, uint8 and bool (bfloat16 has no
/// standard numpy form).
/// Files Kiln writes are byte-identical to `numpy.save`'s.
public enum NPY {
    public static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    /// numpy pads the header so the data starts 64-byte aligned...
    private static let alignment = 64
    /// ...after leaving room for the first dimension to grow to 21 digits in place.
    private static let growthAxisMaxDigits = 21

    // MARK: reading

    public static func read(path: String) throws -> Tensor {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError.notFound("cannot read .npy file '\(path)': no such readable file")
        }
        return try decode([UInt8](data), source: "'\(path)'")
    }

    /// Decodes the bytes of a .npy file; `source` names it in errors.
    public static func decode(_ bytes: [UInt8], source: String = ".npy data") throws -> Tensor {
        guard bytes.count >= 10 else {
            throw KilnError.dataLoss("\(source) is truncated: \(bytes.count) bytes, shorter than a .npy preamble")
        }
        guard Array(bytes[0..<6]) == magic else {
            throw KilnError.invalidArgument("\(source) is not a .npy file (bad magic \(bytes[0..<6].map { String(format: "%02x", $0) }.joined(separator: " ")))")
        }
        let major = bytes[6], minor = bytes[7]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw KilnError.dataLoss("\(source) is truncated inside its version \(major).\(minor) preamble") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw KilnError.unimplemented("\(source) has .npy format version \(major).\(minor); Kiln reads 1.0, 2.0 and 3.0")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw KilnError.dataLoss("\(source) is truncated: its header at offset \(headerStart) needs \(headerLength) bytes, \(bytes.count - headerStart) remain")
        }
        let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
        let header = major == 3 ? String(decoding: headerBytes, as: UTF8.self) : String(headerBytes.map { Character(Unicode.Scalar($0)) })
        let (descr, fortran, shape) = try parseHeader(header, source, headerOffset: headerStart)
        guard !fortran else {
            throw KilnError.unimplemented("\(source) stores its array in Fortran (column-major) order; Kiln reads C-order arrays only (save numpy.ascontiguousarray(a))")
        }
        let dtype = try dtype(descr, source)
        guard let count = Sizes.product(shape) else { throw KilnError.invalidArgument("\(source): shape \(shape) has too many elements") }
        let dataStart = headerStart + headerLength
        let (need, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !o, need <= bytes.count - dataStart else {
            throw KilnError.dataLoss("\(source) is truncated: \(dtype) \(Shape(shape)) needs \(o ? "more than Int.max" : String(need)) bytes of data from offset \(dataStart), \(bytes.count - dataStart) remain")
        }
        let buffer = try TensorBuffer(byteCount: need)
        bytes.withUnsafeBytes { src in
            if need > 0 { buffer.pointer.copyMemory(from: src.baseAddress! + dataStart, byteCount: need) }
        }
        if dtype == .bool {
            let b = buffer.pointer.assumingMemoryBound(to: UInt8.self)
            for i in 0..<need where b[i] > 1 { b[i] = 1 }
        }
        return try Tensor(dtype: dtype, shape: shape, buffer: buffer)
    }

    private static func dtype(_ descr: String, _ source: String) throws -> DType {
        guard let order = descr.first, descr.count >= 3 else {
            throw KilnError.unimplemented("\(source) has unsupported dtype '\(descr)' (Kiln reads <f4 <f8 <f2 <i4 <i8 <i2 |u1 |b1)")
        }
        let kind = String(descr.dropFirst())
        let t: DType
        switch kind {
        case "f4": t = .float32
        case "f8": t = .float64
        case "f2": t = .float16
        case "i4": t = .int32
        case "i8": t = .int64
        case "i2": t = .int16
        case "u1": t = .uint8
        case "b1": t = .bool
        default: throw KilnError.unimplemented("\(source) has unsupported dtype '\(descr)' (Kiln reads <f4 <f8 <f2 <i4 <i8 <i2 |u1 |b1)")
        }
        switch order {
        case "<", "|": return t
        case "=": return t
        case ">" where t.byteSize == 1: return t
        case ">": throw KilnError.unimplemented("\(source) holds big-endian data ('\(descr)'); Kiln reads little-endian .npy files only (save a.astype('<\(kind)'))")
        default: throw KilnError.unimplemented("\(source) has unsupported dtype '\(descr)' (Kiln reads <f4 <f8 <f2 <i4 <i8 <i2 |u1 |b1)")
        }
    }

    /// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
    private static func parseHeader(_ text: String, _ source: String, headerOffset: Int) throws -> (String, Bool, [Int]) {
        var p = HeaderParser(Array(text.unicodeScalars), source: source, headerOffset: headerOffset)
        let dict = try p.dictionary()
        guard case .string(let descr)? = dict["descr"] else { throw p.error("no 'descr' string (structured dtypes are not supported)") }
        guard case .bool(let fortran)? = dict["fortran_order"] else { throw p.error("no 'fortran_order' boolean") }
        guard case .tuple(let shape)? = dict["shape"] else { throw p.error("no 'shape' tuple") }
        return (descr, fortran, shape)
    }

    // MARK: writing

    /// The bytes `numpy.save` writes for the same array.
    public static func encode(_ tensor: Tensor) throws -> [UInt8] {
        let descr: String
        switch tensor.dtype {
        case .float32: descr = "<f4"
        case .float64: descr = "<f8"
        case .int32: descr = "<i4"
        case .int64: descr = "<i8"
        case .int16: descr = "<i2"
        case .float16: descr = "<f2"
        case .bfloat16:
            throw KilnError.unimplemented("cannot write a bfloat16 tensor as .npy: numpy has no standard bfloat16 dtype (cast it to float32 first)")
        case .uint8: descr = "|u1"
        case .bool: descr = "|b1"
        case .string: throw KilnError.unimplemented("cannot write a string tensor as .npy (numpy's fixed-width byte strings are not supported)")
        }
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        if let first = tensor.shape.first { header += String(repeating: " ", count: max(0, growthAxisMaxDigits - String(first).count)) }
        let body = Array(header.utf8)
        var out = magic
        for (major, lengthBytes) in [(UInt8(1), 2), (UInt8(2), 4)] {
            let used = magic.count + 2 + lengthBytes + body.count + 1
            let pad = alignment - used % alignment
            let total = body.count + pad + 1
            if lengthBytes == 2 && total > Int(UInt16.max) { continue }
            out += [major, 0]
            for i in 0..<lengthBytes { out.append(UInt8(truncatingIfNeeded: total >> (8 * i))) }
            out += body
            out += [UInt8](repeating: 0x20, count: pad)
            out.append(0x0A)
            break
        }
        tensor.withUnsafeBytes { out += $0 }
        return out
    }

    /// Writes `tensor` to `path` (atomically: a temporary file renamed into place).
    public static func write(_ tensor: Tensor, path: String) throws {
        try AtomicFile.write(try encode(tensor), to: path)
    }
}

/// Just enough of Python's literal syntax for .npy headers: a dict of strings, booleans and
/// tuples of integers.
private struct HeaderParser {
    enum Value { case string(String), bool(Bool), tuple([Int]) }

    let chars: [Unicode.Scalar]
    let source: String
    /// Where the header starts in the file, so errors give a file offset.
    let headerOffset: Int
    var i = 0

    init(_ chars: [Unicode.Scalar], source: String, headerOffset: Int) {
        self.chars = chars
        self.source = source
        self.headerOffset = headerOffset
    }

    func error(_ why: String) -> KilnError {
        KilnError.invalidArgument("\(source) has a malformed .npy header (\(why), at offset \(headerOffset + i) of the file): \(String(String.UnicodeScalarView(chars)).trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    mutating func skipSpace() { while i < chars.count && (chars[i] == " " || chars[i] == "\n" || chars[i] == "\t" || chars[i] == "\r") { i += 1 } }

    mutating func expect(_ c: Unicode.Scalar) throws {
        skipSpace()
        guard i < chars.count, chars[i] == c else { throw error("expected '\(c)' at character \(i)") }
        i += 1
    }

    mutating func peek() -> Unicode.Scalar? {
        skipSpace()
        return i < chars.count ? chars[i] : nil
    }

    mutating func dictionary() throws -> [String: Value] {
        try expect("{")
        var out: [String: Value] = [:]
        while peek() != "}" {
            let key = try string()
            try expect(":")
            out[key] = try value()
            if peek() == "," { i += 1 } else { break }
        }
        try expect("}")
        return out
    }

    mutating func string() throws -> String {
        skipSpace()
        guard i < chars.count, chars[i] == "'" || chars[i] == "\"" else { throw error("expected a string at character \(i)") }
        let quote = chars[i]
        i += 1
        var s = String.UnicodeScalarView()
        while i < chars.count && chars[i] != quote {
            s.append(chars[i])
            i += 1
        }
        guard i < chars.count else { throw error("unterminated string") }
        i += 1
        return String(s)
    }

    mutating func value() throws -> Value {
        switch peek() {
        case "'", "\"": return .string(try string())
        case "(":
            i += 1
            var items: [Int] = []
            while peek() != ")" {
                var digits = ""
                while let c = peek(), ("0"..."9").contains(c) { digits.unicodeScalars.append(c); i += 1 }
                if peek() == "L" { i += 1 }
                guard let n = Int(digits), n >= 0 else { throw error("bad dimension at character \(i)") }
                items.append(n)
                if peek() == "," { i += 1 } else { break }
            }
            try expect(")")
            return .tuple(items)
        default:
            for (word, v) in [("True", true), ("False", false)] where chars[i...].starts(with: word.unicodeScalars) {
                i += word.unicodeScalars.count
                return .bool(v)
            }
            throw error("unexpected value at character \(i)")
        }
    }
}
