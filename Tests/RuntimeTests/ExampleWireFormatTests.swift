import Foundation
import XCTest
import KilnTestSupport
import Kiln
@testable import KilnFrontend

/// The Example parser reads the protobuf wire format itself, as TensorFlow's fast parser does:
/// the encodings TensorFlow accepts (unpacked lists, fields in either order, repeated keys,
/// unknown fields, concatenated messages), its errors for lists that do not parse, and damaged
/// bytes, which must be an error or a value, never a crash.
final class ExampleWireFormatTests: XCTestCase {
    /// A length-delimited field (lengths under 128 here).
    func ld(_ tag: UInt8, _ body: [UInt8]) -> [UInt8] { [tag, UInt8(body.count)] + body }
    func entry(_ key: String, _ feature: [UInt8]) -> [UInt8] { ld(0x0a, ld(0x0a, Array(key.utf8)) + ld(0x12, feature)) }
    func example(_ entries: [UInt8]...) -> [UInt8] { ld(0x0a, entries.flatMap { $0 }) }
    func le(_ f: Float) -> [UInt8] { withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }

    func config(dense: [(String, DType, [Int])] = [], sparse: [(String, DType)] = []) throws -> ExampleParseConfig {
        try ExampleParseConfig(sparseKeys: sparse.map(\.0), sparseTypes: sparse.map(\.1), denseKeys: dense.map(\.0),
                               denseTypes: dense.map(\.1), denseShapes: dense.map { Shape($0.2) },
                               defaults: try dense.map { try Tensor(zeros: $0.1, shape: [0]) })
    }

    /// A dense shape whose size overflows is refused when the parse is configured; one merely huge
    /// costs nothing before the first Example shows it wrong (no room is reserved beyond what the
    /// records' bytes could hold).
    func testHugeDenseShapesAreErrorsNotAllocations() throws {
        XCTAssertThrowsError(try config(dense: [("a", .int64, [1 << 40, 1 << 40])])) {
            XCTAssertTrue("\($0)".contains("dense_shapes[0] (key a) is [1099511627776,1099511627776], whose size overflows"), "\($0)")
        }
        let huge = try config(dense: [("a", .int64, [1 << 50]), ("s", .string, [1 << 50])])
        let record = example(entry("a", ld(0x1a, [0x08, 7])), entry("s", ld(0x0a, ld(0x0a, [1]))))
        XCTAssertThrowsError(try ExampleParsing.parseBatch([record, record], names: [], huge)) {
            XCTAssertTrue("\($0)".contains("Key: a, Index: 0.  Number of int64 values != expected.  Values size: 1 but output shape: [1125899906842624]"), "\($0)")
        }
    }

    func testEncodingsTensorFlowAccepts() throws {
        let unpackedInts = ld(0x1a, [0x08, 5, 0x08, 0xac, 0x02])           // [5, 300]
        let unpackedFloats = ld(0x12, [0x0d] + le(1.5) + [0x0d] + le(-2))
        let c = try config(dense: [("a", .int64, [2]), ("f", .float32, [2])])
        let expected = [try Tensor(shape: [2], scalars: [Int64(5), 300]), try Tensor(shape: [2], scalars: [Float(1.5), -2])]
        XCTAssertEqual(try ExampleParsing.parseSingle([example(entry("a", unpackedInts), entry("f", unpackedFloats))], c), expected)
        // Value before key; the last of a repeated key wins; unknown fields are skipped;
        // concatenated Examples merge.
        let reversed = ld(0x0a, ld(0x12, unpackedInts) + ld(0x0a, Array("a".utf8)))
        let stale = entry("a", ld(0x1a, ld(0x0a, [1, 2])))
        let bytes = [0x10, 0x07] + example(stale, entry("f", unpackedFloats)) + example(reversed)
        XCTAssertEqual(try ExampleParsing.parseSingle([bytes], c), expected)
    }

    func testListsThatDoNotParseUseTensorFlowsWording() throws {
        let c = try config(dense: [("a", .int64, [1]), ("s", .string, [1])])
        let s = entry("s", ld(0x0a, ld(0x0a, [1])))
        assertKilnError(.invalidArgument, contains: ["Key: a.  Can't parse serialized Example: Parsing int64_list failed."]) {
            try ExampleParsing.parseSingle([example(entry("a", [0x1a, 0x02, 0x08, 0x80]), s)], c)
        }
        assertKilnError(.invalidArgument, contains: ["Unsupported datatype."]) {
            try ExampleParsing.parseSingle([example(entry("a", [0x22, 0x00]), s)], c)
        }
        // One bytes value too many stops the parse of the list; one too few is a count error.
        assertKilnError(.invalidArgument, contains: ["Key: s.  Can't parse serialized Example: Parsing bytes_list failed."]) {
            try ExampleParsing.parseSingle([example(entry("a", ld(0x1a, [0x08, 1])), entry("s", ld(0x0a, ld(0x0a, [1]) + ld(0x0a, [2]))))], c)
        }
        assertKilnError(.invalidArgument, contains: ["Key: s.  Can't parse serialized Example: Some bytes_list slice was not parsed."]) {
            try ExampleParsing.parseSingle([example(entry("a", ld(0x1a, [0x08, 1])), entry("s", ld(0x0a, [])))], c)
        }
        assertKilnError(.invalidArgument, contains: ["Name: <unknown>, Key: a, Index: 0.  Can't parse serialized Example."]) {
            try ExampleParsing.parseBatch([example(entry("a", [0x1a, 0x02, 0x08, 0x80]), s)], names: [], c)
        }
    }

    /// Every prefix of a real Example, and every byte of it flipped, gives tensors or an
    /// invalidArgument error.
    func testTruncatedAndFlippedBytesAreErrorsOrValuesNeverCrashes() throws {
        let bytes = try Example(["label": .int64([3, 1 << 40]), "img_raw": .bytes([[1, 2, 3, 4], [5]]), "score": .float([1, -2]),
                                 "tags": .int64([])]).serialized()
        let c = try config(dense: [("label", .int64, [2]), ("score", .float32, [2])], sparse: [("img_raw", .string), ("tags", .int64)])
        XCTAssertEqual(try ExampleParsing.parseSingle([bytes], c).count, 3 * 2 + 2)
        var damaged = (0..<bytes.count).map { Array(bytes[..<$0]) }
        for i in bytes.indices { var b = bytes; b[i] ^= 0xff; damaged.append(b); b[i] ^= 0x7f; damaged.append(b) }
        var errors = 0
        for b in damaged {
            do {
                _ = try ExampleParsing.parseSingle([b], c)
                _ = try ExampleParsing.parseBatch([b, bytes], names: [], c)
            } catch let e as KilnError {
                XCTAssertEqual(e.code, .invalidArgument, e.message)
                errors += 1
            }
        }
        XCTAssertGreaterThan(errors, bytes.count, "most damaged Examples are refused")
    }
}
