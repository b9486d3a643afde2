import Foundation
import XCTest
import KilnTestSupport
@testable import KilnRuntime
import KilnFrontend
import KilnIR
import Kiln

/// FileWriter: what a training loop logs reads back intact, and nothing queued is lost.
final class SummaryFileWriterTests: ScratchDirectoryTestCase {
    private func eventFiles(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("tfevents") }.sorted()
    }

    private func summaryEvents(_ path: String) throws -> [Tensorflow_Event] {
        try EventFileReader(path: path).readAll().filter(\.isSummary)
    }

    func testEveryScalarHistogramImageTextAndTheGraphReadBackIntact() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([2, 3, 3, 1]), name: "images")
        let lr = try g.placeholder(.float32, shape: Shape([]), name: "lr")
        try g.summary.scalar("learning_rate", lr)
        try g.nameScope("train") { _ = try g.summary.scalar("avg", g.reduceMean(x)) }
        try g.summary.histogram("pixels", x)
        try g.summary.image("inputs", x, maxOutputs: 1)
        try g.summary.text("notes", g.constant(Tensor("kiln")))
        let merged = try XCTUnwrap(g.summary.mergeAll())
        let sess = try Session(graph: g)
        let logdir = path("logs/run1")
        let writer = try FileWriter(logdir: logdir, graph: g)
        XCTAssertEqual(try eventFiles(logdir).count, 1)
        XCTAssertTrue(URL(fileURLWithPath: writer.path).lastPathComponent.hasPrefix("events.out.tfevents."))

        var fed: [[Float]] = []
        for step in 0..<4 {
            let pixels = (0..<18).map { Float(($0 * 7 + step * 3) % 11) / 10 }
            fed.append(pixels)
            try writer.add(summary: sess.run(merged, feeds: [x: Tensor(shape: [2, 3, 3, 1], scalars: pixels), lr: Tensor(Float(step) * 0.5)]),
                           step: step * 10)
        }
        try writer.close()

        let events = try EventFileReader(path: writer.path).readAll()
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        let graphs = events.filter { $0.isGraphDef }
        XCTAssertEqual(graphs.count, 1)
        XCTAssertEqual(try Tensorflow_GraphDef(serializedBytes: graphs[0].graphDef), g.graphDef())
        let summaries = events.filter(\.isSummary)
        XCTAssertEqual(summaries.map(\.step), [0, 10, 20, 30])
        for (k, e) in summaries.enumerated() {
            let values = Dictionary(uniqueKeysWithValues: e.summary.value.map { ($0.tag, $0) })
            XCTAssertEqual(Set(values.keys), ["learning_rate", "train/avg", "pixels", "inputs/image", "notes"])
            XCTAssertEqual(values["learning_rate"]?.simpleValue, Float(k) * 0.5)
            XCTAssertEqual(Double(try XCTUnwrap(values["train/avg"]).simpleValue), Double(fed[k].reduce(0, +) / 18), accuracy: 1e-6)
            XCTAssertEqual(values["pixels"]?.histo, try HistogramBuckets.proto(fed[k].map(Double.init), tag: "pixels"))
            let image = try PNG.decode([UInt8](try XCTUnwrap(values["inputs/image"]).image.encodedImageString))
            XCTAssertEqual(image.width, 3)
            XCTAssertEqual(image.pixels, SummaryKernels.normalized(Array(fed[k][0..<9]), depth: 1, bad: [255]))
            XCTAssertEqual(values["notes"]?.tensor.stringVal, [Data("kiln".utf8)])
            // TensorFlow keeps a tag's plugin metadata on its first value only.
            XCTAssertEqual(values["notes"]?.hasMetadata, k == 0)
        }
    }

    func testNothingIsLostAtCloseOrWhenTheWriterIsReleased() throws {
        let logdir = path("logs")
        var summary = Tensorflow_Summary()
        summary.value = [Tensorflow_Summary.Value.with { $0.tag = "loss"; $0.simpleValue = 1 }]
        let closedPath: String
        do {
            let w = try FileWriter(logdir: logdir, flushSecs: 3600, maxQueue: 7)
            for step in 0..<1000 { try w.add(summary: summary, step: step) }
            try w.close()
            closedPath = w.path
            XCTAssertThrowsError(try w.add(summary: summary, step: 0)) { XCTAssertEqual(($0 as? KilnError)?.code, .failedPrecondition) }
            try w.close()
        }
        XCTAssertEqual(try summaryEvents(closedPath).map(\.step), Array(0..<1000))

        var releasedPath = ""
        do {
            let w = try FileWriter(logdir: logdir, flushSecs: 3600, maxQueue: 1000)
            releasedPath = w.path
            for step in 0..<50 { try w.add(summary: summary, step: step) }
        }
        XCTAssertNotEqual(releasedPath, closedPath, "a second writer in the same second gets a file of its own")
        XCTAssertEqual(try summaryEvents(releasedPath).map(\.step), Array(0..<50))
        XCTAssertEqual(try eventFiles(logdir).count, 2)
    }

    func testFlushWritesWhatIsQueuedWithoutClosing() throws {
        let w = try FileWriter(logdir: path("logs"), flushSecs: 3600, maxQueue: 100)
        var s = Tensorflow_Summary()
        s.value = [Tensorflow_Summary.Value.with { $0.tag = "acc"; $0.simpleValue = 0.5 }]
        for step in 0..<5 { try w.add(summary: s, step: step) }
        try w.flush()
        XCTAssertEqual(try summaryEvents(w.path).count, 5)
        try w.add(summary: s, step: 5)
        try w.flush()
        XCTAssertEqual(try summaryEvents(w.path).count, 6)
        try w.close()
    }

    /// flushSecs writes without being asked: waits (up to a minute) for the file to show the event.
    func testPendingEventsAreWrittenEveryFlushSecs() throws {
        let w = try FileWriter(logdir: path("logs"), flushSecs: 0.05, maxQueue: 100)
        var s = Tensorflow_Summary()
        s.value = [Tensorflow_Summary.Value.with { $0.tag = "acc"; $0.simpleValue = 0.5 }]
        try w.add(summary: s, step: 1)
        let deadline = Date(timeIntervalSinceNow: 60)
        while try summaryEvents(w.path).isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(try summaryEvents(w.path).map(\.step), [1])
        try w.close()
    }

    func testBadArgumentsAreClearErrors() throws {
        let w = try FileWriter(logdir: path("logs"))
        XCTAssertThrowsError(try w.add(summary: Tensor(Float(1)), step: 0)) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
        XCTAssertThrowsError(try w.add(summary: Tensor(shape: [], strings: [[0xFF, 0xFF]]), step: 0)) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
        XCTAssertThrowsError(try FileWriter(logdir: path("logs"), maxQueue: 0)) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: path("file")))
        XCTAssertThrowsError(try FileWriter(logdir: path("file/logs"))) { XCTAssertNotNil($0 as? KilnError, "\($0)") }
        try w.close()
    }
}
