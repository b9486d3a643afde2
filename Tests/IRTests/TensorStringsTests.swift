import XCTest
@testable import KilnIR

/// A string tensor's elements packed in one byte array: each element reads back as appended,
/// however it was appended, and ranges, equality and common lengths follow the elements.
final class TensorStringsTests: XCTestCase {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testElementsReadBackAsAppendedWithTheirRangesInOneByteArray() {
        var s = TensorStrings()
        s.append(bytes("ab"))
        s.append([UInt8]())
        s.append(bytes("xyz")[1...])
        s.append(bytes("k:7"))
        XCTAssertEqual(Array(s), [bytes("ab"), [], bytes("yz"), bytes("k:7")])
        XCTAssertEqual(s.bytes, bytes("abyzk:7"))
        XCTAssertEqual((0..<4).map(s.range), [0..<2, 2..<2, 2..<4, 4..<7])
        XCTAssertEqual(TensorStrings(empty: 3).map(\.count), [0, 0, 0])
        XCTAssertEqual(TensorStrings(empty: 0).count, 0)
    }

    /// Elements built in place in one pass (a reader's keys): each is the bytes its writer wrote,
    /// however many of its room it used; nothing of the unused room is left behind.
    func testElementsBuiltInPlaceAreWhatTheirWritersWrote() {
        var s: TensorStrings = [bytes("first")]
        let words = ["k:7", "", "key:12345"].map(bytes)
        s.append(count: words.count, maxBytes: 9) { i, at in
            at.update(from: words[i], count: words[i].count)
            return words[i].count
        }
        s.append(count: 0, maxBytes: 4) { _, _ in XCTFail("no element to write"); return 0 }
        XCTAssertEqual(Array(s), [bytes("first")] + words)
        XCTAssertEqual(s.bytes, bytes("firstk:7key:12345"))
        XCTAssertEqual(s, TensorStrings([bytes("first")] + words))
    }

    func testAppendingAnotherTensorsElementsShiftsTheirRanges() {
        let other: TensorStrings = [bytes("one"), bytes("two"), bytes("three")]
        var s: TensorStrings = [bytes("zero")]
        s.append(other, elements: 1..<3)
        s.append(other, elements: 2..<2)
        XCTAssertEqual(Array(s), [bytes("zero"), bytes("two"), bytes("three")])
        s.append(contentsOf: other)
        XCTAssertEqual(Array(s), [bytes("zero"), bytes("two"), bytes("three"), bytes("one"), bytes("two"), bytes("three")])
        XCTAssertEqual(s.range(3), 12..<15)
        XCTAssertEqual(TensorStrings(concatenating: [s, TensorStrings(), other]), TensorStrings(Array(s) + Array(other)))
    }

    func testEqualElementsAreEqualAndHashAlikeHoweverBuilt() {
        var built = TensorStrings()
        built.reserve(2, bytesEach: 4)
        built.append(bytes("a"))
        built.append(bytes("bc"))
        let literal: TensorStrings = [bytes("a"), bytes("bc")]
        XCTAssertEqual(built, literal)
        XCTAssertEqual(built.hashValue, literal.hashValue)
        // Same bytes, split elsewhere: other elements.
        XCTAssertNotEqual(literal, [bytes("ab"), bytes("c")])
    }

    func testCommonLengthIsTheElementsLengthOnlyWhenAllAgree() {
        XCTAssertEqual(([bytes("ab"), bytes("cd"), bytes("ef")] as TensorStrings).commonLength, 2)
        XCTAssertEqual(TensorStrings().commonLength, 0)
        XCTAssertEqual(TensorStrings(empty: 2).commonLength, 0)
        XCTAssertNil(([bytes("ab"), bytes("c"), bytes("def")] as TensorStrings).commonLength)
        XCTAssertNil(([bytes("abc"), bytes("de"), bytes("f")] as TensorStrings).commonLength, "totals agree, lengths do not")
    }

    func testStringTensorsKeepTheirElementsThroughReshapeAndEquality() throws {
        let t = try Tensor(shape: [2], strings: [bytes("hi"), bytes("there")])
        XCTAssertEqual(Array(try t.reshaped(to: [1, 2]).strings), [bytes("hi"), bytes("there")])
        XCTAssertEqual(t, try Tensor(shape: [2], strings: ["hi".utf8, "there".utf8]))
        XCTAssertNotEqual(t, try Tensor(shape: [2], strings: [bytes("hit"), bytes("here")]))
        XCTAssertThrowsError(try Tensor(shape: [3], strings: t.strings)) { XCTAssertTrue("\($0)".contains("needs 3 strings, got 2"), "\($0)") }
    }
}
