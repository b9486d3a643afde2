import Foundation
import XCTest
import KilnFrontend
import KilnIR
@testable import KilnRuntime

/// The Dataset pipeline: TFRecord files in order, map, TF's shuffle buffer, batch, repeat,
/// prefetch, and errors from damaged input surfacing from `next()`.
final class DatasetTests: XCTestCase {
    func temporaryDirectory() -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-dataset-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Two files of records "0" ... "9" (five in each), written with `compression`.
    func numberFiles(_ compression: TFRecordCompression = .none) throws -> [String] {
        let dir = temporaryDirectory()
        return try [0, 1].map { f in
            let path = dir.appendingPathComponent("part\(f).tfrecord").path
            try TFRecordWriter.write((0..<5).map { Array(String(f * 5 + $0).utf8) }, to: path, compression: compression)
            return path
        }
    }

    /// The record's text parsed as an Int32 scalar: a Swift closure over the record bytes.
    static func parse(_ element: [Tensor]) throws -> [Tensor] {
        guard let n = Int32(String(decoding: element[0].strings[0], as: UTF8.self)) else {
            throw KilnError.invalidArgument("not a number")
        }
        return [Tensor(n)]
    }

    func drain(_ d: Dataset) throws -> [[Tensor]] {
        let it = d.makeIterator()
        var out: [[Tensor]] = []
        while let e = try it.next() { out.append(e) }
        XCTAssertNil(try it.next(), "the end stays the end")
        return out
    }

    func numbers(_ d: Dataset) throws -> [Int32] {
        try drain(d).flatMap { try $0[0].scalars(as: Int32.self) }
    }

    func testTFRecordFilesInOrderInEveryCompression() throws {
        for c in TFRecordCompression.allCases {
            let d = Dataset.tfRecord(try numberFiles(c), compression: c)
            let records = try drain(d)
            XCTAssertEqual(records.map { $0[0].shape }, Array(repeating: [], count: 10))
            XCTAssertEqual(records.map { String(decoding: $0[0].strings[0], as: UTF8.self) }, (0..<10).map(String.init), "\(c)")
            XCTAssertEqual(try numbers(d.map(Self.parse)), Array(0..<10), "a dataset iterates afresh")
        }
    }

    func testGoldenFileRecordsThroughTheDataset() throws {
        let path = Golden.directory.appendingPathComponent("tfrecord/data_gzip.tfrecord").path
        let want = try TFRecordFileReader.records(path: path, compression: .gzip)
        XCTAssertEqual(try drain(Dataset.tfRecord([path], compression: .gzip)).map { $0[0].strings[0] }, want)
        // A map that parses each Example (label i, score [i/2, -i]), batched.
        let parsed = try Dataset.tfRecord([path], compression: .gzip).map { element in
            let ex = try Tensorflow_Example(serializedBytes: element[0].strings[0])
            return [try Tensor(shape: [], scalars: ex.features.feature["label"]?.int64List.value ?? []),
                    try Tensor(shape: [2], scalars: ex.features.feature["score"]?.floatList.value ?? [])]
        }.batch(32)
        let batches = try drain(parsed)
        XCTAssertEqual(batches.map { $0[1].shape }, [[32, 2], [32, 2], [32, 2], [4, 2]])
        XCTAssertEqual(try batches.flatMap { try $0[0].scalars(as: Int64.self) }, (0..<100).map(Int64.init))
        XCTAssertEqual(try batches[1][1].scalars(as: Float.self).prefix(2), [16, -32])
    }

    func testShuffleIsDeterministicWithASeedMixesAndKeepsEveryElement() throws {
        let d = Dataset.elements((0..<100).map { [Tensor(Int32($0))] })
        let a = try numbers(try d.shuffle(buffer: 100, seed: 42))
        XCTAssertEqual(a, try numbers(try d.shuffle(buffer: 100, seed: 42)), "same seed, same order")
        XCTAssertNotEqual(a, try numbers(try d.shuffle(buffer: 100, seed: 43)), "another seed, another order")
        XCTAssertNotEqual(a, Array(0..<100), "it mixes")
        XCTAssertEqual(a.sorted(), Array(0..<100), "every element exactly once")
        // reshuffle_each_iteration: each pass of a repeat draws a new order, repeatably.
        let twice = try numbers(try d.shuffle(buffer: 100, seed: 42).repeat(2))
        XCTAssertNotEqual(Array(twice[0..<100]), Array(twice[100...]))
        XCTAssertEqual(twice, try numbers(try d.shuffle(buffer: 100, seed: 42).repeat(2)))
        XCTAssertEqual(Array(twice[100...]).sorted(), Array(0..<100))
        let fixed = try numbers(try d.shuffle(buffer: 100, seed: 42, reshuffleEachIteration: false).repeat(2))
        XCTAssertEqual(Array(fixed[0..<100]), Array(fixed[100...]))
    }

    func testShuffleBufferBoundsHowFarAnElementMovesEarly() throws {
        // With a buffer of b, output i is drawn from input elements 0 ..< i + b.
        let d = Dataset.elements((0..<200).map { [Tensor(Int32($0))] })
        for b in [1, 3, 10] {
            for seed in 0..<5 as Range<UInt64> {
                let out = try numbers(try d.shuffle(buffer: b, seed: seed))
                XCTAssertEqual(out.sorted(), Array(0..<200))
                for (i, v) in out.enumerated() { XCTAssertLessThan(Int(v), i + b, "buffer \(b) seed \(seed)") }
                if b == 1 { XCTAssertEqual(out, Array(0..<200), "a buffer of one does not shuffle") }
            }
        }
        XCTAssertThrowsError(try d.shuffle(buffer: 0)) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }

    func testBatchStacksComponentsAndHandlesTheRemainder() throws {
        let d = Dataset.elements((0..<7).map { i in
            [try! Tensor(shape: [2], scalars: [Float(i), -Float(i)]), Tensor("r\(i)")]
        })
        let batches = try drain(try d.batch(3))
        XCTAssertEqual(batches.map { $0[0].shape }, [[3, 2], [3, 2], [1, 2]])
        XCTAssertEqual(try batches[1][0].scalars(as: Float.self), [3, -3, 4, -4, 5, -5])
        XCTAssertEqual(batches[2][1].shape, [1])
        XCTAssertEqual(batches[1][1].strings.map { String(decoding: $0, as: UTF8.self) }, ["r3", "r4", "r5"])
        XCTAssertEqual(try drain(try d.batch(3, dropRemainder: true)).count, 2)
        XCTAssertEqual(try drain(try d.batch(7, dropRemainder: true)).count, 1)
        XCTAssertEqual(try drain(try Dataset.elements([]).batch(4)).count, 0)
        XCTAssertThrowsError(try d.batch(0))

        let ragged = Dataset.elements([[try Tensor(shape: [2], scalars: [1, 2] as [Float])], [try Tensor(shape: [3], scalars: [1, 2, 3] as [Float])]])
        XCTAssertThrowsError(try drain(try ragged.batch(2))) {
            XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument)
            XCTAssertTrue(($0 as? KilnError)?.message.contains("different shapes in component 0") == true, "\($0)")
        }
    }

    func testRepeatCountsPassesAndEndsOnAnEmptyDataset() throws {
        let d = Dataset.elements((0..<3).map { [Tensor(Int32($0))] })
        XCTAssertEqual(try numbers(d.repeat(3)), [0, 1, 2, 0, 1, 2, 0, 1, 2])
        XCTAssertEqual(try numbers(d.repeat(0)), [])
        XCTAssertEqual(try numbers(d.repeat().take(7)), [0, 1, 2, 0, 1, 2, 0])
        XCTAssertEqual(try numbers(Dataset.elements([]).repeat()), [], "repeating nothing forever ends")
        XCTAssertEqual(try numbers(try d.repeat(2).batch(4)), [0, 1, 2, 0, 1, 2])
    }

    /// A data-parallel worker's part: every count-th element from its index; the shards
    /// together are every element once; a bad count or index is an error.
    func testShardTakesEveryCountthElementFromItsIndex() throws {
        let d = Dataset.elements((0..<10).map { [Tensor(Int32($0))] })
        XCTAssertEqual(try numbers(d.shard(count: 3, index: 0)), [0, 3, 6, 9])
        XCTAssertEqual(try numbers(d.shard(count: 3, index: 2)), [2, 5, 8])
        XCTAssertEqual(try numbers(d.shard(count: 1, index: 0)), Array(0..<10))
        XCTAssertEqual(try (0..<4).flatMap { try numbers(d.shard(count: 4, index: $0)) }.sorted(), Array(0..<10))
        XCTAssertEqual(try numbers(d.shard(count: 2, index: 1).repeat(2)), [1, 3, 5, 7, 9, 1, 3, 5, 7, 9])
        XCTAssertThrowsError(try d.shard(count: 0, index: 0))
        XCTAssertThrowsError(try d.shard(count: 2, index: 2))
        XCTAssertThrowsError(try d.shard(count: 2, index: -1))
    }

    func testPrefetchKeepsOrderEndsAndStopsWhenReleased() throws {
        let files = try numberFiles(.gzip)
        let pipeline = Dataset.tfRecord(files, compression: .gzip).map(Self.parse).repeat(20)
        for size in [1, 2, 16] {
            XCTAssertEqual(try numbers(try pipeline.prefetch(size)), try numbers(pipeline), "buffer \(size)")
        }
        // An iterator dropped part-way, with the producer blocked on a full buffer, ends cleanly.
        let counter = Counter()
        let endless = Dataset.elements([[Tensor(Int32(1))]]).repeat().map { _ = counter.next(); return $0 }
        for _ in 0..<20 {
            let it = try endless.prefetch(2).makeIterator()
            XCTAssertNotNil(try it.next())
        }
        Thread.sleep(forTimeInterval: 0.5)   // time for the released producers to see they are done
        let produced = counter.next()
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(counter.next(), produced + 1, "no producer runs on after its iterator is gone")
    }

    func testCorruptFileErrorsSurfaceFromNextInPlaceAndStay() throws {
        var files = try numberFiles()
        var bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: files[1])))
        bytes[bytes.count - 2] ^= 0xff   // the last record's data CRC
        try Data(bytes).write(to: URL(fileURLWithPath: files[1]))
        files.append(files[0] + ".missing")
        for prefetch in [false, true] {
            var d = Dataset.tfRecord(files).map(Self.parse)
            if prefetch { d = try d.prefetch(3) }
            let it = d.makeIterator()
            for want in 0..<9 { XCTAssertEqual(try it.next()?[0].scalar(as: Int32.self), Int32(want)) }
            for _ in 0..<2 {
                XCTAssertThrowsError(try it.next()) {
                    XCTAssertEqual(($0 as? KilnError)?.code, .dataLoss)
                    XCTAssertTrue(($0 as? KilnError)?.message.contains("part1.tfrecord', record 4: corrupted record") == true, "\($0)")
                }
            }
        }
        XCTAssertThrowsError(try drain(Dataset.tfRecord(["/nonexistent/a.tfrecord"]))) { XCTAssertEqual(($0 as? KilnError)?.code, .notFound) }
        XCTAssertThrowsError(try drain(Dataset.elements([[Tensor("x")]]).map(Self.parse))) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }

    func testFeedsASessionBatchByBatch() throws {
        let g = Graph()
        let x = try g.placeholder(.int32, shape: [nil], name: "x")
        let total = try g.reduceSum(x, axes: [0])
        let sess = try Session(graph: g)
        let it = try Dataset.tfRecord(try numberFiles()).map(Self.parse).batch(4).makeIterator()
        var sums: [Int32] = []
        while let out = try sess.run([total], feeding: [x], from: it) { sums.append(try out[0].scalar(as: Int32.self)) }
        XCTAssertEqual(sums, [6, 22, 17] as [Int32], "0+1+2+3, 4+5+6+7, 8+9")
        let two = Dataset.elements([[Tensor(Int32(1)), Tensor(Int32(2))]]).makeIterator()
        XCTAssertThrowsError(try two.feeds(for: [x])) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }
}
