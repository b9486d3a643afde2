import Foundation
import XCTest
import KilnFrontend
import KilnIR
@testable import KilnRuntime
import KilnTestSupport

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
        var batches: [[[UInt8]]] = [], keyBatches: [[String]] = []
        for _ in 0..<3 {
            let out = try sess.run([keys, values])
            XCTAssertEqual(out[0].shape, out[1].shape)
            XCTAssertEqual(out[0].strings.count, out[1].strings.count)
            batches.append(Array(out[1].strings))
            keyBatches.append(out[0].strings.map { String(decoding: $0, as: UTF8.self) })
        }
        XCTAssertEqual(batches, [[records[0][0], records[0][1]], [records[0][2]], [records[2][0], records[2][1]]])
        XCTAssertEqual(keyBatches, [["\(paths[0]):0", "\(paths[0]):18"], ["\(paths[0]):34"], ["\(paths[2]):0", "\(paths[2]):18"]])
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

    func testReadsThroughAFIFOQueueAndEndsWithCancelledWhenTheSessionCloses() throws {
        let (paths, records) = try files(.gzip)
        let g = Graph()
        let queue = try FIFOQueue(g, capacity: 8, dtypes: [.string])
        let fill = try queue.enqueueMany([try g.constant(try Tensor(shape: [1], strings: [Array(paths[2].utf8)]))])
        let reader = try TFRecordReader(graph: g, options: .gzip)
        let (_, value) = try reader.read(queue)
        let sess = try Session(graph: g)
        try sess.run(fill)
        XCTAssertEqual(try sess.run(value).strings[0], records[2][0])
        XCTAssertEqual(try sess.run(value).strings[0], records[2][1])
        // The next read waits for a filename that never comes, until the session closes.
        let ended = expectation(description: "the waiting read ends")
        let result = Box()
        DispatchQueue.global().async {
            result.set(Result { try sess.run(value).strings[0] })
            ended.fulfill()
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertNil(result.get())
        sess.close()
        wait(for: [ended], timeout: 10)
        XCTAssertThrowsError(try result.get()?.get()) { XCTAssertEqual(($0 as? KilnError)?.code, .cancelled, "\($0)") }
    }

    /// shuffle_batch's threads run one reader's read at once: every record comes out once.
    func testConcurrentReadsShareOneReaderAndTakeEachRecordOnce() throws {
        let dir = temporaryDirectory()
        var paths: [String] = [], all: [[UInt8]] = []
        for f in 0..<6 {
            let records = (0..<50).map { Array("file \(f) record \($0)".utf8) }
            let path = dir.appendingPathComponent("part\(f).tfrecord").path
            try TFRecordWriter.write(records, to: path)
            paths.append(path)
            all += records
        }
        let p = try Pipeline(options: .none)
        let (_, value) = try p.reader.read(p.queue)
        let sess = try Session(graph: p.graph)
        try p.fill(sess, paths)
        let results = LockedList<Result<[UInt8], Error>>()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            while true {
                do {
                    results.add(.success(try sess.run(value).strings[0]))
                } catch let e as KilnError where e.code == .outOfRange {
                    return
                } catch {
                    results.add(.failure(error))
                    return
                }
            }
        }
        let seen = try results.all().map { try $0.get() }
        XCTAssertEqual(seen.count, all.count)
        XCTAssertEqual(Set(seen), Set(all))
    }

    /// The tutorial's shape: filenames -> reader -> a records queue filled by two QueueRunner
    /// threads under a Coordinator; the consumer reads every record once, then outOfRange.
    func testQueueRunnerThreadsReadEveryRecordIntoABatchQueue() throws {
        let (paths, records) = try files(.zlib)
        let g = Graph()
        let filenames = try FIFOQueue(g, capacity: 8, dtypes: [.string], name: "filenames")
        let fill = try filenames.enqueueMany([try g.constant(try Tensor(shape: [3], strings: paths.map { Array($0.utf8) }))])
        let closeFilenames = try filenames.close()
        let reader = try TFRecordReader(graph: g, options: .zlib)
        let (_, value) = try reader.read(filenames)
        let examples = try FIFOQueue(g, capacity: 2, dtypes: [.string], shapes: [Shape([])], name: "examples")
        let enqueue = try examples.enqueue([value])
        g.addQueueRunner(try QueueRunner(queue: examples, enqueueOps: [enqueue, enqueue]))
        let next = try examples.dequeue()[0]
        let sess = try Session(graph: g)
        try sess.run(targets: [fill, closeFilenames])
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        var got: [[UInt8]] = []
        do {
            while true { got.append(try sess.run(next).strings[0]) }
        } catch let e as KilnError where e.code == .outOfRange {
            coord.requestStop()
        }
        try coord.join(threads, stopGracePeriod: 30)
        XCTAssertEqual(got.count, 5)
        XCTAssertEqual(Set(got), Set(records.flatMap { $0 }))
    }

    /// The nodes TensorFlow 1 writes for string_input_producer's queue, a TFRecordReader and its
    /// read (handles are resources there) import and run.
    func testTensorFlowGraphDefOfAReaderImportsAndReads() throws {
        let (paths, records) = try files(.gzip)
        let g = Graph()
        let ops = try g.importGraphDef(text: """
            node { name: "input_producer" op: "FIFOQueueV2"
              attr { key: "capacity" value { i: 32 } }
              attr { key: "component_types" value { list { type: DT_STRING } } }
              attr { key: "container" value { s: "" } }
              attr { key: "shapes" value { list { shape { } } } }
              attr { key: "shared_name" value { s: "" } } }
            node { name: "TFRecordReaderV2" op: "TFRecordReaderV2"
              attr { key: "compression_type" value { s: "GZIP" } }
              attr { key: "container" value { s: "" } }
              attr { key: "shared_name" value { s: "" } } }
            node { name: "ReaderReadV2" op: "ReaderReadV2" input: "TFRecordReaderV2" input: "input_producer" }
            """, prefix: "")
        XCTAssertEqual(ops.count, 3)
        let queue = try XCTUnwrap(g.operation(named: "input_producer")).output()
        let read = try XCTUnwrap(g.operation(named: "ReaderReadV2"))
        let names = try g.constant(try Tensor(shape: [1], strings: [Array(paths[0].utf8)]))
        let fill = try g.addOperation("QueueEnqueueManyV2", inputs: [queue, names], attrs: ["Tcomponents": .types([.string])])
        let sess = try Session(graph: g)
        try sess.run(fill)
        let out = try sess.run([read.output(0), read.output(1)])
        XCTAssertEqual(string(out[0]), "\(paths[0]):0")
        XCTAssertEqual(out[1].strings[0], records[0][0])
    }

    /// The tutorial's filename queue: string_input_producer(num_epochs: 2) feeds the reader
    /// through its queue runner; every record comes twice, then outOfRange.
    func testReadsThroughStringInputProducerForNumEpochs() throws {
        let (paths, records) = try files(.none)
        let g = Graph()
        let filenames = try g.stringInputProducer(paths, numEpochs: 2, shuffle: false)
        let reader = try TFRecordReader(graph: g)
        let (key, value) = try reader.read(filenames)
        let sess = try Session(graph: g)
        try sess.run(g.localVariablesInitializer())
        let coord = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coord)
        var got: [[UInt8]] = [], keys: [String] = []
        do {
            while true {
                let out = try sess.run([key, value])
                keys.append(string(out[0]))
                got.append(out[1].strings[0])
            }
        } catch let e as KilnError where e.code == .outOfRange {
            coord.requestStop()
        }
        try coord.join(threads, stopGracePeriod: 30)
        let once = records.flatMap { $0 }
        XCTAssertEqual(got, once + once)
        XCTAssertEqual(keys.first, "\(paths[0]):0")
    }

    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Result<[UInt8], Error>?
        func set(_ v: Result<[UInt8], Error>) { lock.lock(); value = v; lock.unlock() }
        func get() -> Result<[UInt8], Error>? { lock.lock(); defer { lock.unlock() }; return value }
    }
}
