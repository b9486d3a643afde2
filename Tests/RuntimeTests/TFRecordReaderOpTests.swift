import Foundation
import XCTest
import KilnFrontend
import KilnIR
@testable import KilnRuntime

/// The TFRecordReader graph op against a filename queue: keys "<file>:<offset>" and the records
/// of file after file, outOfRange once the queue is closed and drained, ReadUpTo, the counts,
/// reset, damaged and missing files, and a read that waits for its filename.
final class TFRecordReaderOpTests: XCTestCase {
    func temporaryDirectory() -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-reader-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Files "a" (3 records), "empty" (none) and "b" (2), written with `compression`.
    func files(_ compression: TFRecordCompression) throws -> (paths: [String], records: [[[UInt8]]]) {
        let dir = temporaryDirectory()
        let records: [[[UInt8]]] = [[Array("a0".utf8), [], Array("a2 longer".utf8)], [], [Array("b0".utf8), [7, 7, 7]]]
        let paths = try zip(["a", "empty", "b"], records).map { name, rs in
            let path = dir.appendingPathComponent("\(name).tfrecord").path
            try TFRecordWriter.write(rs, to: path, compression: compression)
            return path
        }
        return (paths, records)
    }

    /// A graph with a FIFO queue of filenames, ops to fill and close it, and a TFRecord reader.
    struct Pipeline {
        let graph = Graph()
        let queue: Output
        let names: Output
        let enqueue: KilnFrontend.Operation
        let close: KilnFrontend.Operation
        let reader: TFRecordReader

        init(options: TFRecordOptions) throws {
            queue = try graph.addOperation("FIFOQueueV2", name: "input_producer", attrs: ["component_types": .types([.string]), "capacity": .int(32)]).output()
            names = try graph.placeholder(.string, shape: [nil], name: "names")
            enqueue = try graph.addOperation("QueueEnqueueManyV2", name: "enqueue", inputs: [queue, names], attrs: ["Tcomponents": .types([.string])])
            close = try graph.addOperation("QueueCloseV2", name: "close", inputs: [queue])
            reader = try TFRecordReader(graph: graph, options: options)
        }

        func fill(_ session: Session, _ paths: [String], close closing: Bool = true) throws {
            try session.run(enqueue, feeds: [names: try Tensor(shape: [paths.count], strings: paths.map { Array($0.utf8) })])
            if closing { try session.run(close) }
        }
    }

    func string(_ t: Tensor) -> String { String(decoding: t.strings[0], as: UTF8.self) }

    func testReadsFileAfterFileWithTensorFlowsKeysThenOutOfRange() throws {
        for compression in TFRecordCompression.allCases {
            let (paths, records) = try files(compression)
            let p = try Pipeline(options: try TFRecordOptions(compressionType: compression.rawValue))
            let (key, value) = try p.reader.read(p.queue)
            let produced = try p.reader.numRecordsProduced(), completed = try p.reader.numWorkUnitsCompleted()
            let sess = try Session(graph: p.graph)
            try p.fill(sess, paths)
            // Keys name the record's byte offset in the (decompressed) file, as TensorFlow's do.
            let want = [("a", 0), ("a", 18), ("a", 34), ("b", 0), ("b", 18)]
            let values = records.flatMap { $0 }
            for (i, (file, offset)) in want.enumerated() {
                let out = try sess.run([key, value])
                XCTAssertEqual(string(out[0]), "\(paths[file == "a" ? 0 : 2]):\(offset)", "\(compression) record \(i)")
                XCTAssertEqual(out[1].shape, [])
                XCTAssertEqual(out[1].strings[0], values[i], "\(compression) record \(i)")
            }
            XCTAssertEqual(try sess.run(produced).scalar(as: Int64.self), 5)
            XCTAssertEqual(try sess.run(completed).scalar(as: Int64.self), 2, "a and the empty file are done; b is open")
            XCTAssertThrowsError(try sess.run(value), "\(compression)") { XCTAssertEqual(($0 as? KilnError)?.code, .outOfRange, "\($0)") }
            XCTAssertEqual(try sess.run(completed).scalar(as: Int64.self), 3)
            XCTAssertThrowsError(try sess.run(value)) { XCTAssertEqual(($0 as? KilnError)?.code, .outOfRange) }
        }
    }

    func testReadsTensorFlowsGoldenFiles() throws {
        let dir = Golden.directory.appendingPathComponent("tfrecord")
        for (file, options, compression) in [("data.tfrecord", TFRecordOptions.none, TFRecordCompression.none), ("data_gzip.tfrecord", .gzip, .gzip)] {
            let path = dir.appendingPathComponent(file).path
            let want = try TFRecordFileReader.records(path: path, compression: compression)
            let p = try Pipeline(options: options)
            let (_, value) = try p.reader.read(p.queue)
            let sess = try Session(graph: p.graph)
            try p.fill(sess, [path])
            let got = try (0..<want.count).map { _ in try sess.run(value).strings[0] }
            XCTAssertEqual(got, want, file)
            XCTAssertThrowsError(try sess.run(value)) { XCTAssertEqual(($0 as? KilnError)?.code, .outOfRange) }
        }
    }

    func testReadUpToStaysWithinOneFileAndSkipsEmptyOnes() throws {
        let (paths, records) = try files(.none)
        let p = try Pipeline(options: .none)
        let (keys, values) = try p.reader.readUpTo(p.queue, numRecords: 2)
        let sess = try Session(graph: p.graph)
        try p.fill(sess, paths)
        var batches: [[[UInt8]]] = []
        for _ in 0..<3 {
            let out = try sess.run([keys, values])
            XCTAssertEqual(out[0].shape, out[1].shape)
            XCTAssertEqual(out[0].strings.count, out[1].strings.count)
            batches.append(out[1].strings)
        }
        XCTAssertEqual(batches, [[records[0][0], records[0][1]], [records[0][2]], [records[2][0], records[2][1]]])
        XCTAssertThrowsError(try sess.run(values)) { XCTAssertEqual(($0 as? KilnError)?.code, .outOfRange) }
        XCTAssertThrowsError(try p.reader.readUpTo(p.queue, numRecords: 0)) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }

    func testResetStartsOverFromTheNextFilename() throws {
        let (paths, records) = try files(.none)
        let p = try Pipeline(options: .none)
        let (_, value) = try p.reader.read(p.queue)
        let produced = try p.reader.numRecordsProduced(), reset = try p.reader.reset()
        let sess = try Session(graph: p.graph)
        try p.fill(sess, [paths[0], paths[2]])
        XCTAssertEqual(try sess.run(value).strings[0], records[0][0])
        try sess.run(reset)
        XCTAssertEqual(try sess.run(produced).scalar(as: Int64.self), 0)
        // The rest of file a is dropped; the reader takes the queue's next file.
        XCTAssertEqual(try sess.run(value).strings[0], records[2][0])
        XCTAssertEqual(try sess.run(produced).scalar(as: Int64.self), 1)
    }

    func testDamagedAndMissingFilesAreErrorsNamingTheFile() throws {
        let (paths, _) = try files(.none)
        var bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: paths[0])))
        bytes[18 + 12] ^= 0xff   // record 1's data CRC (its data is empty)
        try Data(bytes).write(to: URL(fileURLWithPath: paths[0]))
        let p = try Pipeline(options: .none)
        let (_, value) = try p.reader.read(p.queue)
        let sess = try Session(graph: p.graph)
        try p.fill(sess, [paths[0], paths[0] + ".missing"])
        XCTAssertEqual(string(try sess.run(value)), "a0")
        for _ in 0..<2 {
            XCTAssertThrowsError(try sess.run(value)) {
                XCTAssertEqual(($0 as? KilnError)?.code, .dataLoss)
                XCTAssertTrue(($0 as? KilnError)?.message.contains("a.tfrecord', record 1: corrupted record at offset 18") == true, "\($0)")
            }
        }
        let q = try Pipeline(options: .none)
        let (_, v2) = try q.reader.read(q.queue)
        let s2 = try Session(graph: q.graph)
        try q.fill(s2, [paths[0] + ".missing"])
        XCTAssertThrowsError(try s2.run(v2)) {
            XCTAssertEqual(($0 as? KilnError)?.code, .notFound)
            XCTAssertTrue(($0 as? KilnError)?.message.contains("a.tfrecord.missing") == true, "\($0)")
        }
    }

    func testWrongCompressionAndWrongQueuesAreInvalidArgument() throws {
        XCTAssertThrowsError(try TFRecordOptions(compressionType: "SNAPPY")) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
        let g = Graph()
        XCTAssertThrowsError(try g.addOperation("TFRecordReaderV2", attrs: ["compression_type": .string("LZ4")])) {
            XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument)
        }
        let ints = try g.addOperation("FIFOQueueV2", attrs: ["component_types": .types([.int32])]).output()
        let fill = try g.addOperation("QueueEnqueueV2", inputs: [ints, g.constant(Tensor(Int32(3)))], attrs: ["Tcomponents": .types([.int32])])
        let reader = try TFRecordReader(graph: g)
        let (_, value) = try reader.read(ints)
        let sess = try Session(graph: g)
        try sess.run(fill)
        XCTAssertThrowsError(try sess.run(value)) {
            XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument)
            XCTAssertTrue(($0 as? KilnError)?.message.contains("Expected queue with single string component") == true, "\($0)")
        }
        XCTAssertThrowsError(try reader.read(try g.constant(Tensor("not a queue")))) {
            XCTAssertTrue(($0 as? KilnError)?.message.contains("queue_handle must come from a queue op") == true, "\($0)")
        }
        XCTAssertThrowsError(try g.addOperation("ReaderReadV2", inputs: [g.constant(Tensor("x")), ints])) {
            XCTAssertTrue(($0 as? KilnError)?.message.contains("reader_handle must come from a reader op") == true, "\($0)")
        }
    }

    func testAReadWaitsForItsFilenameWithoutBlockingOtherRuns() throws {
        let (paths, records) = try files(.none)
        let p = try Pipeline(options: .none)
        let (_, value) = try p.reader.read(p.queue)
        let sess = try Session(graph: p.graph)
        let got = expectation(description: "the waiting read returns")
        let result = Box()
        DispatchQueue.global().async {
            result.set(Result { try sess.run(value).strings[0] })
            got.fulfill()
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertNil(result.get(), "no filename yet: the read waits")
        try p.fill(sess, [paths[0]], close: false)   // a run of its own, while the read waits
        wait(for: [got], timeout: 10)
        XCTAssertEqual(try result.get()?.get(), records[0][0])
    }

    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Result<[UInt8], Error>?
        func set(_ v: Result<[UInt8], Error>) { lock.lock(); value = v; lock.unlock() }
        func get() -> Result<[UInt8], Error>? { lock.lock(); defer { lock.unlock() }; return value }
    }
}
