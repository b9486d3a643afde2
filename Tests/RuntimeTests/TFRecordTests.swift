import Foundation
import XCTest
import KilnFrontend
import KilnIR
@testable import KilnRuntime

/// TFRecord files against TensorFlow's own (golden/tfrecord, committed in Fixtures/golden):
/// the records, their framing and GZIP compression; then damaged files, which must be dataLoss
/// errors naming the file and offset.
final class TFRecordTests: XCTestCase {
    struct RecordsJSON: Decodable {
        struct File: Decodable { let records: Int; let bytes: Int }
        struct Img: Decodable { struct Values: Decodable { let data: [Int64] }; let values: Values }
        let files: [String: File]
        let img: Img
        let record0_serialized_hex: String
        let record_lengths: [Int]
    }

    func fixture(_ name: String) throws -> String {
        Golden.directory.appendingPathComponent("tfrecord/\(name)").path
    }

    func golden() throws -> RecordsJSON {
        try JSONDecoder().decode(RecordsJSON.self, from: Data(contentsOf: URL(fileURLWithPath: try fixture("records.json"))))
    }

    func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tfrecord-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir.appendingPathComponent(name).path
    }

    func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = [], it = s.utf8.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String(bytes: [a, b], encoding: .ascii)!, radix: 16)!) }
        return out
    }

    /// Checks record i against the recipe in records.json (label i, score [i/2, -i], the image).
    func checkExample(_ record: [UInt8], _ i: Int, _ g: RecordsJSON) throws {
        let ex = try Tensorflow_Example(serializedBytes: record)
        XCTAssertEqual(ex.features.feature["label"]?.int64List.value, [Int64(i)])
        XCTAssertEqual(ex.features.feature["score"]?.floatList.value, [Float(i) * 0.5, -Float(i)])
        var img: [UInt8] = []
        for v in g.img.values.data { withUnsafeBytes(of: v.littleEndian) { img += $0 } }
        XCTAssertEqual(ex.features.feature["img_raw"]?.bytesList.value, [Data(img)])
    }

    func testReadsTensorFlowsUncompressedAndGzipFiles() throws {
        let g = try golden()
        for (file, compression) in [("data.tfrecord", TFRecordCompression.none), ("data_gzip.tfrecord", .gzip)] {
            let records = try TFRecordFileReader.records(path: try fixture(file), compression: compression)
            XCTAssertEqual(records.count, g.files[file]?.records, file)
            XCTAssertEqual(records.map(\.count), g.record_lengths, file)
            XCTAssertEqual(records.first, hex(g.record0_serialized_hex), file)
            for (i, r) in records.enumerated() { try checkExample(r, i, g) }
        }
    }

    func testIteratesRecordsAsASequence() throws {
        let reader = try TFRecordFileReader(path: try fixture("data.tfrecord"))
        var iterator = reader.makeIterator()
        var n = 0
        while iterator.next() != nil { n += 1 }
        XCTAssertEqual(n, 100)
        XCTAssertNil(iterator.error)
        XCTAssertEqual(reader.offset, try golden().files["data.tfrecord"]?.bytes)
    }

    /// A batch read appends what reading one record at a time returns, with each record's offset,
    /// and stops at the end of the file; a damaged record in a batch is the same error.
    func testBatchReadsAppendTheRecordsAndOffsetsOfSingleReads() throws {
        let path = try fixture("data.tfrecord")
        let single = try TFRecordFileReader.records(path: path)
        let reader = try TFRecordFileReader(path: path)
        var records = TensorStrings(), offsets: [Int] = []
        var counts: [Int] = []
        while true {
            let n = try reader.next(37, into: &records, offsets: &offsets)
            counts.append(n)
            if n < 37 { break }
        }
        XCTAssertEqual(counts, [37, 37, 26])
        XCTAssertEqual(Array(records), single)
        XCTAssertEqual(offsets.first, 0)
        XCTAssertEqual(zip(offsets, offsets.dropFirst()).map { $1 - $0 }, single.dropLast().map { $0.count + 16 })
        XCTAssertEqual(try reader.next(5, into: &records, offsets: &offsets), 0, "the end stays the end")

        var bad = TFRecordWriter.encode([Array("first".utf8), Array("second record".utf8)])
        bad[21 + 12 + 3] ^= 0x01
        let damaged = try TFRecordFileReader(bytes: bad, source: "batch.tfrecord")
        var some = TensorStrings(), at: [Int] = []
        XCTAssertThrowsError(try damaged.next(2, into: &some, offsets: &at)) {
            XCTAssertEqual(($0 as? KilnError)?.code, .dataLoss)
            XCTAssertTrue("\($0)".contains("TFRecord file 'batch.tfrecord', record 1: corrupted record at offset 21"), "\($0)")
        }
    }

    func testWriterReproducesTensorFlowsFileByteForByte() throws {
        let path = try fixture("data.tfrecord")
        let records = try TFRecordFileReader.records(path: path)
        let out = temporaryPath("copy.tfrecord")
        try TFRecordWriter.write(records, to: out)
        XCTAssertEqual(FileManager.default.contents(atPath: out), FileManager.default.contents(atPath: path))
        XCTAssertEqual(TFRecordWriter.encode(records), [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path))))
    }

    func testHelloRecordMatchesTheSpecVector() {
        XCTAssertEqual(TFRecordWriter.encode([Array("hello".utf8)]),
                       [5, 0, 0, 0, 0, 0, 0, 0, 0xea, 0xb2, 0x04, 0x3e, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xbb, 0x1f, 0x1c, 0x19])
    }

    func testCompressedRoundTripsAndEmptyRecords() throws {
        let records: [[UInt8]] = [[], Array("a".utf8), [UInt8](repeating: 7, count: 3 << 20), [], Array("last".utf8)]
        for compression in TFRecordCompression.allCases {
            let path = temporaryPath("rt.tfrecord")
            let w = try TFRecordWriter(path: path, compression: compression)
            for r in records { try w.write(r) }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the file appears only when closed")
            try w.close()
            XCTAssertEqual(w.count, records.count)
            XCTAssertEqual(try TFRecordFileReader.records(path: path, compression: compression), records, "\(compression)")
            if compression == .gzip { XCTAssertEqual(Array(try XCTUnwrap(FileManager.default.contents(atPath: path)).prefix(2)), [0x1f, 0x8b]) }
            XCTAssertThrowsError(try w.write([1])) { XCTAssertEqual(($0 as? KilnError)?.code, .failedPrecondition) }
        }
        XCTAssertEqual(try TFRecordFileReader(bytes: []).next(), nil, "an empty file holds no records")
    }

    func testCompressionTypeStrings() throws {
        XCTAssertEqual(try TFRecordCompression(typeString: ""), TFRecordCompression.none)
        XCTAssertEqual(try TFRecordCompression(typeString: "GZIP"), .gzip)
        XCTAssertEqual(try TFRecordCompression(typeString: "ZLIB"), .zlib)
        XCTAssertThrowsError(try TFRecordCompression(typeString: "SNAPPY")) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }

    /// Reads `bytes` to the end and returns the error, which must be dataLoss naming the source.
    func damage(_ bytes: [UInt8], _ compression: TFRecordCompression = .none, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try TFRecordFileReader(bytes: bytes, compression: compression, source: "bad.tfrecord").readAll()
            XCTFail("damaged data was read without an error", file: file, line: line)
            return ""
        } catch let e as KilnError {
            XCTAssertEqual(e.code, .dataLoss, e.message, file: file, line: line)
            XCTAssertTrue(e.message.contains("bad.tfrecord"), e.message, file: file, line: line)
            return e.message
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return ""
        }
    }

    func testDamagedFilesAreDataLossNamingTheOffset() throws {
        let good = TFRecordWriter.encode([Array("first".utf8), Array("second record".utf8)])
        let second = 12 + 5 + 4
        // Cut anywhere but a record boundary: truncated.
        for cut in 1..<good.count where cut != second {
            XCTAssertTrue(damage(Array(good[0..<cut])).contains("truncated record at offset \(cut < second ? 0 : second)"), "cut at \(cut)")
        }
        // Any flipped bit in a header or data: corrupted, at that record's offset.
        for i in good.indices {
            var bad = good
            bad[i] ^= 0x10
            XCTAssertTrue(damage(bad).contains("corrupted record at offset \(i < second ? 0 : second)"), "byte \(i)")
        }
        // Trailing bytes after the last record are a truncated record, not silently ignored.
        XCTAssertTrue(damage(good + [0, 0, 0]).contains("offset \(good.count)"))
    }

    /// Every kind of damage, to each record of a small file, uncompressed and inside a ZLIB or
    /// GZIP stream (offsets are into the decompressed stream, as TensorFlow reports them).
    func testEveryCorruptionKindNamesFileRecordAndOffsetInEveryCompression() throws {
        let records = [Array("first".utf8), Array("second record".utf8), []]
        let good = TFRecordWriter.encode(records)
        let starts = [0, 21, 21 + 12 + 13 + 4]
        func compress(_ b: [UInt8], _ c: TFRecordCompression) throws -> [UInt8] {
            switch c {
            case .none: return b
            case .zlib: return try Zlib.deflate(b, format: .zlib)
            case .gzip: return try Zlib.deflate(b, format: .gzip)
            }
        }
        for c in TFRecordCompression.allCases {
            for (n, start) in starts.enumerated() {
                let length = records[n].count
                // (what is flipped, the byte's offset from the record's start)
                var kinds = [("length byte", 0), ("length CRC", 9), ("data CRC", 12 + length + 2)]
                if length > 0 { kinds.append(("data byte", 12 + length / 2)) }
                for (kind, at) in kinds {
                    var bad = good
                    bad[start + at] ^= 0x01
                    let message = damage(try compress(bad, c), c)
                    // A flipped length byte may make the length claim more bytes than remain,
                    // but its CRC no longer matches, which is checked first.
                    XCTAssertTrue(message.contains("record \(n): corrupted record at offset \(start)"), "\(c) \(kind) of record \(n): \(message)")
                }
            }
            // Truncation at every offset but the record boundaries.
            for cut in 1..<good.count where !starts.contains(cut) {
                let n = starts.lastIndex { $0 < cut }!
                let message = damage(try compress(Array(good[0..<cut]), c), c)
                XCTAssertTrue(message.contains("record \(n): truncated record at offset \(starts[n])"), "\(c) cut at \(cut): \(message)")
            }
            // Cut at a boundary: the records before it, then the clean end.
            for (n, start) in starts.enumerated() {
                let reader = try TFRecordFileReader(bytes: try compress(Array(good[0..<start]), c), compression: c)
                XCTAssertEqual(try reader.readAll(), Array(records[0..<n]), "\(c) cut at record \(n)")
                XCTAssertEqual(reader.recordsRead, n)
                XCTAssertNil(try reader.next(), "the end stays the end")
            }
        }
    }

    func testWriterReleasedUnclosedStillWritesItsFile() throws {
        let records: [[UInt8]] = [Array("kept".utf8), [1, 2, 3]]
        for compression in TFRecordCompression.allCases {
            let path = temporaryPath("dropped.tfrecord")
            do {
                let w = try TFRecordWriter(path: path, compression: compression)
                for r in records { try w.write(r) }
            }
            XCTAssertEqual(try TFRecordFileReader.records(path: path, compression: compression), records, "\(compression)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
            XCTAssertEqual(leftovers, ["dropped.tfrecord"], "no temporary file is left behind")
        }
    }

    func testHugeDeclaredLengthIsAnErrorNotAnAllocation() throws {
        // A length whose own CRC is right, so only the bounds check stands between it and memory
        // (in a compressed stream, whose length is unknown, only the bytes that arrive).
        for length in [UInt64(1) << 40, UInt64.max, UInt64(Int.max), UInt64(Int.max - 10), 100] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: length.littleEndian) { lb in
                bytes += lb
                TFRecordFraming.appendLE(CRC32C.mask(CRC32C.checksum(lb)), to: &bytes)
            }
            bytes += [1, 2, 3, 4, 5, 6, 7, 8]
            XCTAssertTrue(damage(bytes).contains("truncated record at offset 0: it declares \(length) bytes of data but only 4 remain"), "\(length)")
            XCTAssertTrue(damage(try Zlib.deflate(bytes, format: .gzip), .gzip).contains("truncated record at offset 0: it declares \(length) bytes of data but only 4 remain"), "gzip \(length)")
        }
    }

    /// A file is written in chunks and read through a window of 256 KB, neither side holding the
    /// file: records that straddle the window's end, and one larger than the window (which grows
    /// to hold it, and only it), read back exactly, compressed and not.
    func testFilesAreStreamedThroughAWindowNotLoadedWhole() throws {
        var records: [[UInt8]] = []
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<3000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let n = i == 1500 ? 600_000 : Int(state >> 33) % 3000
            records.append((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) })
        }
        for compression in TFRecordCompression.allCases {
            let path = temporaryPath("stream.tfrecord")
            let writer = try TFRecordWriter(path: path, compression: compression)
            for r in records { try writer.write(r) }
            XCTAssertLessThan(writer.heldBytes, 4 << 20, "\(compression): the writer holds a chunk, not the file")
            try writer.close()
            let reader = try TFRecordFileReader(path: path, compression: compression)
            var read = 0, largestHeld = 0
            while let r = try reader.next() {
                XCTAssertEqual(r, records[read], "\(compression) record \(read)")
                read += 1
                largestHeld = max(largestHeld, reader.heldBytes)
                if read == 1400 { XCTAssertEqual(reader.heldBytes, TFRecordFileReader.windowBytes, "\(compression): a window, not the file") }
            }
            XCTAssertEqual(read, records.count, "\(compression)")
            XCTAssertLessThanOrEqual(largestHeld, 4 * TFRecordFileReader.windowBytes, "\(compression): grown for the large record only")
        }
    }

    /// A reader reads the file as it was when opened: records a writer appends afterwards (an
    /// events file still being written) are not half-read as damage.
    func testAFileIsReadAsItWasWhenOpened() throws {
        let path = temporaryPath("growing.tfrecord")
        try TFRecordWriter.write([Array("a".utf8), Array("b".utf8)], to: path)
        let reader = try TFRecordFileReader(path: path)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(TFRecordWriter.encode([Array("later".utf8)])))
        handle.closeFile()
        XCTAssertEqual(try reader.readAll(), [Array("a".utf8), Array("b".utf8)])
        XCTAssertEqual(try TFRecordFileReader.records(path: path).count, 3, "a new reader sees the appended record")
    }

    func testADamagedRecordStaysTheErrorOfLaterReads() throws {
        var bad = TFRecordWriter.encode([Array("first".utf8), Array("second record".utf8)])
        bad[21 + 12 + 3] ^= 0x01
        let reader = try TFRecordFileReader(bytes: bad, source: "sticky.tfrecord")
        XCTAssertEqual(try reader.next(), Array("first".utf8))
        for _ in 0..<2 {
            XCTAssertThrowsError(try reader.next()) { XCTAssertTrue("\($0)".contains("record 1: corrupted record at offset 21"), "\($0)") }
        }
    }

    func testADirectoryIsNotAFile() {
        XCTAssertThrowsError(try TFRecordFileReader(path: FileManager.default.temporaryDirectory.path)) {
            XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument)
            XCTAssertTrue("\($0)".contains("is not a regular file"), "\($0)")
        }
    }

    func testDamagedCompressedStreamIsDataLoss() throws {
        let gz = try Zlib.deflate(TFRecordWriter.encode([Array("payload".utf8)]), format: .gzip)
        _ = damage(Array(gz.dropLast(6)), .gzip)
        var flipped = gz
        flipped[12] ^= 0xff
        _ = damage(flipped, .gzip)
        _ = damage(Array("not compressed at all".utf8), .zlib)
    }

    /// Concatenated gzip members are one stream (gzip(1) reads them so); bytes after the last
    /// member that are no member are damage.
    func testConcatenatedGzipMembersReadAsOneStream() throws {
        let first = [Array("one".utf8), [UInt8](repeating: 9, count: 300_000)], second = [Array("two".utf8)]
        let joined = try Zlib.deflate(TFRecordWriter.encode(first), format: .gzip) + Zlib.deflate(TFRecordWriter.encode(second), format: .gzip)
        XCTAssertEqual(try TFRecordFileReader(bytes: joined, compression: .gzip).readAll(), first + second)
        XCTAssertEqual(try Zlib.inflate(joined), TFRecordWriter.encode(first) + TFRecordWriter.encode(second))
        _ = damage(joined + Array("trailing".utf8), .gzip)
    }

    func testMissingFileIsNotFound() {
        XCTAssertThrowsError(try TFRecordFileReader(path: "/nonexistent/x.tfrecord")) { XCTAssertEqual(($0 as? KilnError)?.code, .notFound) }
    }
}
