import Foundation
import KilnIR

/// A serialised tf.train.Example read in place, the way TensorFlow's fast parser reads it
/// (tensorflow/core/util/example_proto_fast_parsing.cc): the framing is checked for the whole
/// message, but only the features a parse asks for have their value lists decoded, and the last
/// entry of a repeated key wins. Every length is checked against the bytes that remain, so
/// hostile input is a failure, never an out-of-bounds read or a large allocation.
struct ExampleWire {
    /// The bytes Examples are read from (a batch's packed records), in place: the caller keeps
    /// them alive and unchanged while the wire reads them (`ExampleParsing` reads inside
    /// `withUnsafeBufferPointer`), so reading a record takes no reference to its storage.
    let bytes: UnsafeBufferPointer<UInt8>
    /// The (key, Feature message) byte ranges of the current Example's feature map entries.
    private(set) var entries: [(key: Range<Int>, value: Range<Int>)] = []

    /// A wire over `bytes`; `read` reads one Example of them (a batch parse reads every Example
    /// into one wire, reusing its entries' storage).
    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Reads the Example in `range` of the bytes in place of what was read before; false when
    /// those bytes are not an Example.
    mutating func read(_ range: Range<Int>) -> Bool {
        entries.removeAll(keepingCapacity: true)
        var r = Reader(bytes: bytes, range: range)
        // Example: field 1 (features) may repeat (concatenated messages merge); others are skipped.
        while !r.atEnd {
            guard let tag = r.varint() else { return false }
            if tag == 0x0a {
                guard let features = r.delimited(), parseFeatures(Reader(bytes: bytes, range: features)) else { return false }
            } else if !r.skip(wireType: tag & 7) {
                return false
            }
        }
        return true
    }

    private mutating func parseFeatures(_ features: Reader) -> Bool {
        var r = features
        while !r.atEnd {
            // Each map entry is field 1, holding key (1) and value (2), both required, either order.
            guard r.varint() == 0x0a, let entry = r.delimited() else { return false }
            var e = Reader(bytes: r.bytes, range: entry)
            var key: Range<Int>?, value: Range<Int>?
            for _ in 0..<2 {
                switch e.varint() {
                case 0x0a?: key = e.delimited(); if key == nil { return false }
                case 0x12?: value = e.delimited(); if value == nil { return false }
                default: return false
                }
            }
            guard e.atEnd, let key, let value else { return false }
            entries.append((key, value))
        }
        return true
    }

    /// The Feature message of `key` (the last entry with it), or nil when absent.
    func feature(_ key: [UInt8]) -> Range<Int>? {
        key.withUnsafeBufferPointer { k in
            for e in entries.reversed() where e.key.count == k.count && memcmp(bytes.baseAddress! + e.key.lowerBound, k.baseAddress!, k.count) == 0 {
                return e.value
            }
            return nil
        }
    }

    /// `body` with a reader of the list in a Feature message (after its one-byte tag), over the
    /// bytes in place; false when the list's length runs past the Feature.
    private func readingList(_ feature: Range<Int>, _ body: (inout Reader) -> Bool) -> Bool {
        var r = Reader(bytes: bytes, range: feature.dropFirst())
        guard let list = r.delimited() else { return false }
        var l = Reader(bytes: bytes, range: list)
        return body(&l)
    }

    /// A Feature's kind: nil for an empty Feature (no list, treated as missing); an error for a
    /// field other than the three lists.
    func kind(_ feature: Range<Int>) throws -> DTypeTag? {
        guard let first = feature.first.map({ bytes[$0] }) else { return nil }
        switch first {
        case 0x0a: return .bytes
        case 0x12: return .float
        case 0x1a: return .int64
        default: throw KilnError.invalidArgument("Unsupported datatype.")
        }
    }

    enum DTypeTag { case bytes, float, int64 }

    /// Appends the list of a Feature whose kind is known to `out`; false when it does not parse
    /// (`out` may then hold part of it). A bytes list longer than `limit` values fails too
    /// (TensorFlow's parser stops there), so `limit + 1` values are never gathered for a
    /// fixed-length feature. A batch parse appends every Example's values to one array.
    func appendInt64s(_ feature: Range<Int>, to out: inout [Int64]) -> Bool {
        readingList(feature) { l in
            while !l.atEnd {
                guard let tag = l.varint() else { return false }
                if tag == 0x0a {   // packed
                    guard let packed = l.delimited() else { return false }
                    var p = Reader(bytes: l.bytes, range: packed)
                    while !p.atEnd { guard let v = p.varint() else { return false }; out.append(Int64(bitPattern: v)) }
                } else if tag == 0x08 {
                    guard let v = l.varint() else { return false }
                    out.append(Int64(bitPattern: v))
                } else {
                    return false
                }
            }
            return true
        }
    }

    func appendFloats(_ feature: Range<Int>, to out: inout [Float]) -> Bool {
        readingList(feature) { l in
            while !l.atEnd {
                guard let tag = l.varint() else { return false }
                if tag == 0x0a {   // packed
                    guard let packed = l.delimited(), packed.count % 4 == 0 else { return false }
                    out.reserveCapacity(out.count + packed.count / 4)
                    var i = packed.lowerBound
                    while i < packed.upperBound { out.append(l.float(at: i)); i += 4 }
                } else if tag == 0x0d {
                    guard l.range.count >= 4 else { return false }
                    out.append(l.float(at: l.range.lowerBound))
                    l.range = l.range.dropFirst(4)
                } else {
                    return false
                }
            }
            return true
        }
    }

    func appendByteStrings(_ feature: Range<Int>, limit: Int = Int.max, to out: inout TensorStrings) -> Bool {
        readingList(feature) { l in
            var n = 0
            while !l.atEnd {
                guard l.varint() == 0x0a, let s = l.delimited(), n < limit else { return false }
                out.append(UnsafeBufferPointer(rebasing: l.bytes[s]))
                n += 1
            }
            return true
        }
    }

    /// Protobuf wire-format reading within `range` of `bytes` (the wire's bytes, in place while a
    /// method reads them; every range is checked against the one it was read from).
    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var range: Range<Int>

        var atEnd: Bool { range.isEmpty }

        mutating func varint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while let i = range.first, shift < 64 {
                let b = bytes[i]
                range = range.dropFirst()
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }

        /// A length-delimited field's contents; nil when the length runs past the end.
        mutating func delimited() -> Range<Int>? {
            guard let n = varint(), n <= UInt64(range.count) else { return nil }
            let r = range.lowerBound..<(range.lowerBound + Int(n))
            range = r.upperBound..<range.upperBound
            return r
        }

        mutating func skip(wireType: UInt64) -> Bool {
            switch wireType {
            case 0: return varint() != nil
            case 1, 5:
                let n = wireType == 1 ? 8 : 4
                guard range.count >= n else { return false }
                range = range.dropFirst(n)
                return true
            case 2: return delimited() != nil
            default: return false   // groups (3, 4) are not supported, as in TensorFlow
            }
        }

        func float(at i: Int) -> Float {
            let bits = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            return Float(bitPattern: bits)
        }
    }
}
