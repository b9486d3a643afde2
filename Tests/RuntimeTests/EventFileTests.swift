import Foundation
import XCTest
import KilnTestSupport
@testable import KilnRuntime
import KilnFrontend
import KilnIR

/// Events files: TensorFlow's own file read back as it recorded it, and damage reported.
final class EventFileTests: ScratchDirectoryTestCase {
    private var goldenEvents: URL { Golden.directory.appendingPathComponent("events/events.out.tfevents.1795702923.vm") }

    func testTensorFlowsEventsFileReadsBackEqualToItsJSON() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Golden.directory.appendingPathComponent("events/events.json"))) as! [String: Any]
        let events = try EventFileReader(path: goldenEvents.path).readAll()

        XCTAssertEqual(events.first?.fileVersion, EventFile.fileVersion, "the first record is the file_version")
        let counts = json["event_counts"] as! [String: Int]
        XCTAssertEqual(events.filter { !$0.fileVersion.isEmpty }.count, counts["file_version"])
        XCTAssertEqual(events.filter { $0.isGraphDef }.count, counts["graph_def"])
        XCTAssertEqual(events.filter { $0.isSummary }.count, counts["summary"])

        var tags: [String: Int] = [:]
        for e in events where e.isSummary { for v in e.summary.value { tags[v.tag, default: 0] += 1 } }
        XCTAssertEqual(tags, json["tag_counts"] as! [String: Int])

        // Every scalar at its step, bit for bit: the JSON holds the float32 simple_value's shortest form.
        var got: [Int64: [String: Float]] = [:]
        for e in events where e.isSummary {
            for v in e.summary.value { if case .simpleValue(let x)? = v.value { got[e.step, default: [:]][v.tag] = x } }
        }
        let scalars = json["scalars"] as! [[String: Any]]
        XCTAssertEqual(got.count, scalars.count)
        for row in scalars {
            let step = (row["step"] as! NSNumber).int64Value
            for (tag, value) in row where tag != "step" {
                XCTAssertEqual(got[step]?[tag], (value as! NSNumber).floatValue, "\(tag) at step \(step)")
            }
        }

        // The graph is a GraphDef.
        let graphEvent = try XCTUnwrap(events.first { $0.isGraphDef })
        XCTAssertFalse(try Tensorflow_GraphDef(serializedBytes: graphEvent.graphDef).node.isEmpty)
    }

    func testTensorFlowsHistogramsUseTheDefaultBucketEdges() throws {
        let edges = Set(HistogramBuckets.defaultLimits)
        var histograms = 0
        for e in try EventFileReader(path: goldenEvents.path).readAll() where e.isSummary {
            for v in e.summary.value { if case .histo(let h)? = v.value {
                histograms += 1
                XCTAssertEqual(h.num, 100)
                XCTAssertEqual(h.bucket.reduce(0, +), 100)
                XCTAssertEqual(h.bucketLimit.count, h.bucket.count)
                for limit in h.bucketLimit { XCTAssertTrue(edges.contains(limit), "\(limit) is not one of TensorFlow's default bucket edges") }
            } }
        }
        XCTAssertEqual(histograms, 20)
    }

    func testADamagedEventsFileIsADataLossErrorNamingFileAndOffset() throws {
        var bytes = [UInt8](try Data(contentsOf: goldenEvents))
        // The second record starts after the first (file_version) record: flip a byte of its data.
        let firstLength = Int(bytes[0]) | Int(bytes[1]) << 8
        let second = 12 + firstLength + 4
        bytes[second + 12] ^= 0xFF
        let damaged = path("events.out.tfevents.1.damaged")
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        XCTAssertThrowsError(try EventFileReader(path: damaged).readAll()) { error in
            let e = error as? KilnError
            XCTAssertEqual(e?.code, .dataLoss)
            XCTAssertTrue(e?.message.contains(damaged) ?? false, "\(error)")
            XCTAssertTrue(e?.message.contains("offset \(second)") ?? false, "\(error)")
        }

        // Framing intact but the record is not an Event.
        let notEvent = path("events.out.tfevents.2.garbage")
        try TFRecordWriter.write([Array(EventFile.fileVersion.utf8), [0xFF, 0xFF, 0xFF]], to: notEvent)
        XCTAssertThrowsError(try EventFileReader(path: notEvent).readAll()) { error in
            XCTAssertEqual((error as? KilnError)?.code, .dataLoss, "\(error)")
            XCTAssertTrue("\(error)".contains(notEvent), "\(error)")
        }
    }

    func testEventFileWriterOutputReadsBackWithTheVersionRecordFirst() throws {
        let file = path(EventFile.fileName(seconds: 1_795_702_923, host: "kiln"))
        XCTAssertTrue(file.hasSuffix("events.out.tfevents.1795702923.kiln"))
        let w = try EventFileWriter(path: file, wallTime: 12.5)
        var e = Tensorflow_Event()
        e.step = 7
        var v = Tensorflow_Summary.Value()
        v.tag = "loss"
        v.simpleValue = 0.25
        e.summary.value = [v]
        try w.write([e])
        try w.close()
        let back = try EventFileReader(path: file).readAll()
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(back[0].wallTime, 12.5)
        XCTAssertEqual(back[1], e)
        // Never overwrites an existing events file.
        XCTAssertThrowsError(try EventFileWriter(path: file)) { XCTAssertEqual(($0 as? KilnError)?.code, .alreadyExists) }
    }
}

/// What an event holds (the `what` oneof has no has-accessors); shared by the events-file tests.
extension Tensorflow_Event {
    var isSummary: Bool { if case .summary? = what { true } else { false } }
    var isGraphDef: Bool { if case .graphDef? = what { true } else { false } }
}
