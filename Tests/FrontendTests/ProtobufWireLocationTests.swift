import Foundation
import XCTest
import KilnIR
@testable import KilnFrontend

/// A binary GraphDef or MetaGraphDef that does not parse names the offset where it breaks: a
/// field running past the end, a bad wire type, or the first node that does not parse.
final class ProtobufWireLocationTests: XCTestCase {
    private func graph(_ names: [String]) -> Tensorflow_GraphDef {
        var def = Tensorflow_GraphDef()
        for name in names {
            var n = Tensorflow_NodeDef()
            n.name = name
            n.op = "NoOp"
            def.node.append(n)
        }
        return def
    }

    private func message(_ bytes: [UInt8]) -> String {
        do {
            _ = try GraphDefFile.parse(binary: Data(bytes), source: "'g.pb'")
            return "parsed"
        } catch { return (error as? KilnError)?.message ?? "\(error)" }
    }

    func testTruncatedFieldNamesItsLengthsOffset() throws {
        let bytes: [UInt8] = try graph(["a", "bb", "ccc"]).serializedBytes()
        let m = message(Array(bytes.dropLast(2)))
        // Each node is its tag and length, then name (2 + its bytes) and op (6): entries of 11, 12 and 13
        // bytes, so the third's length is at offset 24.
        XCTAssertTrue(m.contains("'g.pb' is not a valid binary GraphDef (\(bytes.count - 2) bytes) at offset 24: GraphDef field 1 declares 11 bytes but 9 remain"), m)
    }

    func testANodeThatDoesNotParseIsNamedByIndexAndOffset() throws {
        var bytes: [UInt8] = try graph(["a", "bb", "ccc"]).serializedBytes()
        // Node #1's name "bb" (after its tag and length at 11, 12 and the name's tag and length) becomes invalid UTF-8.
        let name = try XCTUnwrap(bytes.firstIndex(of: UInt8(ascii: "b")))
        bytes[name] = 0xff
        let m = message(bytes)
        XCTAssertTrue(m.contains("at offset 13: node #1 (NodeDef, 10 bytes from here) does not parse"), m)
    }

    func testAnUnusedWireTypeIsNamed() {
        let m = message([0x0b, 0x00])   // field 1, wire type 3 (start group)
        XCTAssertTrue(m.contains("at offset 0: GraphDef field 1 has wire type 3, which GraphDef never uses"), m)
    }
}
