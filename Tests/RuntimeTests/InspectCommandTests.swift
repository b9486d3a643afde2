import Foundation
import XCTest
import Kiln

/// `kiln inspect FILE [--json]` as the built binary: the text report on stdout, one JSON object
/// with --json, and a corrupt file as "Error: ..." naming the file and the offset with exit 1.
final class InspectCommandTests: KilnBinaryTestCase {
    private func golden(_ name: String) -> String { Golden.directory.appendingPathComponent(name).path }

    func testTextAndJSONFormsOfEachKind() throws {
        let npy = path("x.npy")
        try NPY.write(Tensor(shape: [3], scalars: [1, 2, 6] as [Int32]), path: npy)
        let cases: [(file: String, kind: String, line: String)] = [
            (golden("frozen/frozen_mlp.pb"), "graphdef", "  x float32 [?,784]"),
            (golden("checkpoint/model.ckpt-20.meta"), "metagraphdef", "  fc/logits (AddV2)"),
            (golden("checkpoint/model.ckpt-20"), "checkpoint", "checksums: 5 of 5 verified (848 bytes of tensor data)"),
            (golden("tfrecord/data.tfrecord"), "tfrecord", "    label: int64_list x1 [0]"),
            (golden("events/events.out.tfevents.1795702923.vm"), "events", "steps 0 to 19"),
            (npy, "npy", "min=1 max=6 mean=3"),
        ]
        for c in cases {
            let text = try run(["inspect", c.file])
            XCTAssertEqual(text.status, 0, "\(c.file): \(text.stderr)")
            XCTAssertTrue(text.stdout.hasPrefix(c.file + ": "), text.stdout)
            XCTAssertTrue(text.stdout.split(separator: "\n").contains { $0 == c.line }, "'\(c.line)' missing from:\n\(text.stdout)")
            let json = try run(["inspect", c.file, "--json"])
            XCTAssertEqual(json.status, 0, json.stderr)
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], json.stdout)
            XCTAssertEqual(object["kind"] as? String, c.kind)
            XCTAssertEqual(object["file"] as? String, c.file)
        }
    }

    func testCorruptFileExitsOneNamingFileAndOffset() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: golden("tfrecord/data.tfrecord"))))
        bytes[1759 + 100] ^= 0xff   // inside record 1's data
        let file = path("bad.tfrecord")
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let r = try run(["inspect", file])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertTrue(r.stderr.contains("Error: dataLoss: TFRecord file '\(file)', record 1: corrupted record at offset 1759"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        let missing = try run(["inspect"])
        XCTAssertEqual(missing.status, 64, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("Missing expected argument '<file>'"), missing.stderr)
    }
}
