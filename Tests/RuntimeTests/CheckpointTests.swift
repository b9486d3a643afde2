import Foundation
import XCTest
import KilnTestSupport
import Kiln
@testable import KilnRuntime

final class CheckpointTests: ScratchDirectoryTestCase {
    private var goldenDir: String { Golden.checkpointDirectory }

    /// One tensor of every dtype a checkpoint holds, including edge shapes.
    private func everyDType() throws -> [(key: String, tensor: Tensor)] {
        [
            ("f32", try Tensor(shape: [2, 3], scalars: [1.5, -0, .infinity, -.infinity, .leastNonzeroMagnitude, 3e38] as [Float])),
            ("f64/nan", try Tensor(shape: [2], scalars: [Double.nan, -1e-300])),
            ("i32", try Tensor(shape: [4], scalars: [0, -1, Int32.max, Int32.min])),
            ("i64", Tensor(Int64.min)),
            ("bool", try Tensor(shape: [2, 2], scalars: [true, false, false, true])),
            ("u8", try Tensor(shape: [3], scalars: [0, 128, 255] as [UInt8])),
            ("i16", try Tensor(shape: [3], scalars: [-32768, -1, 32767] as [Int16])),
            ("f16", try Tensor(halfBits: [0x3C00, 0x8001, 0x7BFF, 0xFC00, 0x7E00], dtype: .float16, shape: [5])),
            ("bf16", try Tensor(halfBits: [0x3F80, 0x0001, 0xFF7F, 0x7FC0], dtype: .bfloat16, shape: [2, 2])),
            ("str/vector", try Tensor(shape: [4], strings: [Array("conv1/weights".utf8), [], [0, 0xFF, 0x80, 10], Array(repeating: 120, count: 300)])),
            ("str/scalar", Tensor("model.ckpt")),
            ("empty", try Tensor(shape: [0, 5], scalars: [Float]())),
            ("empty/str", try Tensor(shape: [0], strings: [])),
        ]
    }

    // MARK: CRC32C

    func testCRC32CMatchesTheStandardVectorsAndTheTFRecordHelloRecord() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum(Array(0...31) as [UInt8]), 0x46DD_794E)
        // FORMATS.md §1: the TFRecord framing of "hello".
        XCTAssertEqual(CRC32C.mask(CRC32C.checksum([5, 0, 0, 0, 0, 0, 0, 0] as [UInt8])), 0x3E04_B2EA)
        XCTAssertEqual(CRC32C.mask(CRC32C.checksum(Array("hello".utf8))), 0x191C_1FBB)
        // FORMATS.md §4: the empty metaindex block's trailer CRC.
        XCTAssertEqual(CRC32C.mask(CRC32C.checksum([0, 0, 0, 0, 1, 0, 0, 0, 0] as [UInt8])), 0xB0A1_F2C0)
    }

    /// The CPU's crc32 instruction (where `extend` uses it) and the portable tables agree on every
    /// length up to a few blocks, from every alignment, continuing any CRC.
    func testCRC32CInstructionAndTablesAgreeAtEveryLengthAndAlignment() throws {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ ($0 >> 3) &* 29) }
        guard CRC32C.hardware else { throw XCTSkip("this CPU has no crc32 instruction: extend uses the tables, checked by the vectors above") }
        try bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for n in 0...(all.count - start) {
                    let piece = UnsafeRawBufferPointer(rebasing: all[start..<(start + n)])
                    let prior = UInt32(truncatingIfNeeded: (start &* 1_000_003 &+ n) &* 0x9E37_79B9)
                    let (fast, portable) = (CRC32C.extend(prior, piece), CRC32C.extendPortable(prior, piece))
                    guard fast == portable else { return XCTFail("start \(start), \(n) bytes after 0x\(String(prior, radix: 16)): 0x\(String(fast, radix: 16)) vs 0x\(String(portable, radix: 16))") }
                }
            }
        }
        XCTAssertEqual(Array("123456789".utf8).withUnsafeBytes { CRC32C.extendPortable(0, $0) }, 0xE306_9283)
    }

    func testCRC32CExtendsInPiecesAndMaskInvertsForAnyValue() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            XCTAssertEqual(CRC32C.extend(CRC32C.checksum(data[..<split]), data[split...]), whole)
        }
        // The table-driven loop against the bit-at-a-time definition.
        var bitwise: UInt32 = 0xFFFF_FFFF
        for b in data {
            bitwise ^= UInt32(b)
            for _ in 0..<8 { bitwise = bitwise & 1 != 0 ? (bitwise >> 1) ^ 0x82F6_3B78 : bitwise >> 1 }
        }
        XCTAssertEqual(whole, ~bitwise)
        for c in [0, 1, 0xFFFF_FFFF, 0xA282_EAD8, whole] as [UInt32] {
            XCTAssertEqual(CRC32C.unmask(CRC32C.mask(c)), c)
            XCTAssertNotEqual(CRC32C.mask(c), c)
        }
    }

    // MARK: TensorFlow's files

    func testGoldenCheckpointsMatchVariablesJSONExactly() throws {
        for name in ["model.ckpt-10", "model.ckpt-20"] {
            let reader = try CheckpointReader(prefix: goldenDir + "/" + name)
            let want = try Golden.checkpointVariables(name)
            XCTAssertEqual(reader.keys, ["conv1/bias", "conv1/weights", "fc/bias", "fc/weights", "global_step"])
            XCTAssertEqual(reader.header.numShards, 1)
            XCTAssertEqual(Set(reader.dtypesAndShapes.keys), Set(want.keys))
            for (key, expected) in want {
                XCTAssertEqual(reader.dtypesAndShapes[key]?.dtype, expected.dtype, key)
                XCTAssertEqual(reader.dtypesAndShapes[key]?.shape, expected.shape, key)
                XCTAssertEqual(try reader.tensor(named: key), expected, "\(name): \(key)")
            }
            XCTAssertEqual(try reader.tensor(named: "global_step").scalar(as: Int64.self), name == "model.ckpt-10" ? 10 : 20)
        }
    }

    func testKilnWritesTheGoldenVariablesByteForByteAsTensorFlowDid() throws {
        for name in ["model.ckpt-10", "model.ckpt-20"] {
            let golden = goldenDir + "/" + name
            let tensors = try CheckpointReader(prefix: golden).allTensors()
            let prefix = path(name)
            // Given in an arbitrary order: the writer sorts.
            try CheckpointWriter.write(tensors.sorted { $0.key > $1.key }.map { (key: $0.key, tensor: $0.value) }, prefix: prefix)
            for file in [CheckpointPaths.index(prefix: golden), CheckpointPaths.data(prefix: golden)] {
                let ours = file.replacingOccurrences(of: golden, with: prefix)
                XCTAssertEqual(FileManager.default.contents(atPath: ours), FileManager.default.contents(atPath: file), "\(ours) differs from TensorFlow's")
            }
        }
    }

    func testCheckpointStateFileOfTheGoldenFolderAndLatestCheckpoint() throws {
        let state = try XCTUnwrap(try CheckpointState.read(directory: goldenDir))
        XCTAssertEqual(state.modelCheckpointPath, goldenDir + "/model.ckpt-20")
        XCTAssertEqual(state.allModelCheckpointPaths, [goldenDir + "/model.ckpt-10", goldenDir + "/model.ckpt-20"])
        XCTAssertEqual(try latestCheckpoint(directory: goldenDir), goldenDir + "/model.ckpt-20")
        XCTAssertNil(try latestCheckpoint(directory: scratch.path))
    }

    // MARK: round trips

    func testEveryDTypeRoundTripsThroughAKilnCheckpoint() throws {
        let prefix = path("model.ckpt-1")
        let written = try CheckpointWriter.write(everyDType(), prefix: prefix)
        XCTAssertEqual(written, [prefix + ".index", prefix + ".data-00000-of-00001"])
        let reader = try CheckpointReader(prefix: prefix)
        XCTAssertEqual(reader.keys, try everyDType().map(\.key).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        for (key, t) in try everyDType() {
            XCTAssertEqual(try reader.tensor(named: key), t, key)
            XCTAssertEqual(reader.dtypesAndShapes[key]?.shape, t.shape, key)
        }
        XCTAssertEqual(reader.entries["str/scalar"]?.hasShape, true)
        XCTAssertEqual(reader.entries["i16"]?.dtype, .dtInt16, "int16 is stored as TensorFlow's DT_INT16")
        XCTAssertEqual(reader.entries["f16"]?.dtype, .dtHalf, "float16 is stored as TensorFlow's DT_HALF")
        XCTAssertEqual(reader.entries["bf16"]?.dtype, .dtBfloat16, "bfloat16 is stored as TensorFlow's DT_BFLOAT16")
        let names = try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
        XCTAssertEqual(names, ["model.ckpt-1.data-00000-of-00001", "model.ckpt-1.index"], "no temporary files are left behind")
        XCTAssertEqual(CheckpointPaths.existingFiles(prefix: prefix), [prefix + ".index", prefix + ".data-00000-of-00001"])
        assertKilnError(.notFound, contains: ["Key missing not found"]) { _ = try reader.tensor(named: "missing") }
    }

    func testStringTensorDataFollowsTensorFlowsLayout() throws {
        let prefix = path("strings")
        try CheckpointWriter.write(["s": Tensor(shape: [2], strings: [Array("ab".utf8), Array("xyz".utf8)])], prefix: prefix)
        let data = try XCTUnwrap(FileManager.default.contents(atPath: CheckpointPaths.data(prefix: prefix)))
        var lengths: [UInt8] = []
        lengths.appendFixed32(2)
        lengths.appendFixed32(3)
        let lengthCRC = CRC32C.mask(CRC32C.checksum(lengths))
        var expected: [UInt8] = [2, 3]
        expected.appendFixed32(lengthCRC)
        expected += Array("abxyz".utf8)
        XCTAssertEqual([UInt8](data), expected)
        var stored: [UInt8] = []
        stored.appendFixed32(lengthCRC)
        let entry = try XCTUnwrap(CheckpointReader(prefix: prefix).entries["s"])
        XCTAssertEqual(entry.size, 11)
        XCTAssertEqual(entry.crc32C, CRC32C.mask(CRC32C.checksum(lengths + stored + Array("abxyz".utf8))))
    }

    func testThousandsOfKeysSpanSeveralTableBlocksAndReadBack() throws {
        let prefix = path("many")
        let tensors = (0..<25_000).map { i in (key: "layer_\(i % 97)/unit_\(i)/kernel", tensor: Tensor(Int32(i))) }
        try CheckpointWriter.write(tensors, prefix: prefix)
        let index = try XCTUnwrap(FileManager.default.contents(atPath: CheckpointPaths.index(prefix: prefix)))
        XCTAssertGreaterThan(index.count, 2 * TableWriter.blockSize, "the index must hold several data blocks")
        let reader = try CheckpointReader(prefix: prefix)
        XCTAssertEqual(reader.keys.count, tensors.count)
        for i in stride(from: 0, to: tensors.count, by: 997) {
            XCTAssertEqual(try reader.tensor(named: tensors[i].key).scalar(as: Int32.self), Int32(i))
        }
    }

    func testTableSeparatorsFollowLevelDBsBytewiseComparator() {
        let b = { (s: String) in Array(s.utf8) }
        XCTAssertEqual(TableWriter.shortestSeparator(b("abcd"), b("abzz")), b("abd"))
        XCTAssertEqual(TableWriter.shortestSeparator(b("abc"), b("abd")), b("abc"))
        XCTAssertEqual(TableWriter.shortestSeparator(b("ab"), b("abc")), b("ab"))
        XCTAssertEqual(TableWriter.shortestSeparator(b("a"), b("c")), b("b"))
        XCTAssertEqual(TableWriter.shortestSeparator([0x61, 0xFF, 0x01], [0x62, 0x00]), [0x61, 0xFF, 0x01])
        XCTAssertEqual(TableWriter.shortestSeparator([0xFF, 0x01], [0xFF, 0x05]), [0xFF, 0x02])
        XCTAssertEqual(TableWriter.shortSuccessor(b("global_step")), b("h"))
        XCTAssertEqual(TableWriter.shortSuccessor([0xFF, 0xFF, 0x01, 0x07]), [0xFF, 0xFF, 0x02])
        XCTAssertEqual(TableWriter.shortSuccessor([0xFF, 0xFF]), [0xFF, 0xFF])
    }

    func testTableWithAnOversizedValueAndBinaryKeysRoundTrips() throws {
        var w = TableWriter()
        let big = [UInt8](repeating: 7, count: 2 * TableWriter.blockSize + 1)
        let entries: [(key: [UInt8], value: [UInt8])] = [([0x00], [1]), ([0x00, 0xFF], [2]), ([0x01], big), ([0xFF], []), ([0xFF, 0xFF, 0xFF], [3])]
        for e in entries { w.add(key: e.key, value: e.value) }
        let read = try TableReader.entries(w.finish())
        XCTAssertEqual(read.map(\.key), entries.map(\.key))
        XCTAssertEqual(read.map(\.value), entries.map(\.value))
    }

    func testSnappyCompressedBlocksAreRead() throws {
        // "abcabcabcabcxyz": a literal, an overlapping 1-byte-offset copy, a literal.
        let stream: [UInt8] = [15, 2 << 2, 0x61, 0x62, 0x63, (9 - 4) << 2 | 1, 3, 2 << 2, 0x78, 0x79, 0x7A]
        XCTAssertEqual(try Snappy.decompress(stream[...]), Array("abcabcabcabcxyz".utf8))
        // A 2-byte-offset copy and a long literal.
        let literal = [UInt8](repeating: 0x41, count: 70)
        let long: [UInt8] = [74, 60 << 2, 69] + literal + [(4 - 1) << 2 | 2, 70, 0]
        XCTAssertEqual(try Snappy.decompress(long[...]), literal + literal.prefix(4))
        XCTAssertThrowsError(try Snappy.decompress([5, 1 << 2 | 1, 9][...]))
        XCTAssertThrowsError(try Snappy.decompress([200, 1][...]))

        // A whole table whose data block is stored Snappy-compressed (as one literal).
        var block = BlockBuilder(restartInterval: 16)
        block.add(key: Array("k1".utf8), value: Array("v1".utf8))
        block.add(key: Array("k2".utf8), value: Array("v2".utf8))
        let raw = block.finish()
        var compressed: [UInt8] = []
        compressed.appendVarint(UInt64(raw.count))
        compressed += [UInt8((raw.count - 1) << 2)] + raw
        var file = compressed + [TableFormat.snappyCompression]
        file.appendFixed32(CRC32C.mask(CRC32C.extend(CRC32C.checksum(compressed), [TableFormat.snappyCompression])))
        let dataHandle = BlockHandle(offset: 0, size: UInt64(compressed.count))
        let meta = BlockBuilder(restartInterval: 16).finish()
        let metaHandle = BlockHandle(offset: UInt64(file.count), size: UInt64(meta.count))
        file += meta + [0]
        file.appendFixed32(CRC32C.mask(CRC32C.extend(CRC32C.checksum(meta), [0])))
        var index = BlockBuilder(restartInterval: 1)
        index.add(key: Array("l".utf8), value: dataHandle.encoded)
        let indexBytes = index.finish()
        let indexHandle = BlockHandle(offset: UInt64(file.count), size: UInt64(indexBytes.count))
        file += indexBytes + [0]
        file.appendFixed32(CRC32C.mask(CRC32C.extend(CRC32C.checksum(indexBytes), [0])))
        var footer = metaHandle.encoded + indexHandle.encoded
        footer += [UInt8](repeating: 0, count: 40 - footer.count)
        footer.appendFixed64(TableFormat.magic)
        let read = try TableReader.entries(file + footer)
        XCTAssertEqual(read.map { String(decoding: $0.key + [0x3D] + $0.value, as: UTF8.self) }, ["k1=v1", "k2=v2"])
    }

    // MARK: corruption and failures

    func testFlippedDataByteIsDataLossNamingFileTensorAndOffset() throws {
        let prefix = path("model.ckpt-5")
        let tensors: [(key: String, tensor: Tensor)] = [("a", try Tensor(shape: [4], scalars: [1, 2, 3, 4] as [Float])),
                                                       ("b", try Tensor(shape: [3], scalars: [5, 6, 7] as [Double])),
                                                       ("c", try Tensor(shape: [2], strings: [Array("hi".utf8), Array("there".utf8)]))]
        try CheckpointWriter.write(tensors, prefix: prefix)
        let dataPath = CheckpointPaths.data(prefix: prefix)
        let clean = try XCTUnwrap(FileManager.default.contents(atPath: dataPath))
        // "b" occupies bytes 16..<40, "c" the rest.
        for (byte, victim, offset) in [(20, "b", 16), (clean.count - 1, "c", 40), (41, "c", 40)] {
            var bad = clean
            bad[byte] ^= 0x10
            try bad.write(to: URL(fileURLWithPath: dataPath))
            let reader = try CheckpointReader(prefix: prefix)
            assertKilnError(.dataLoss, contains: ["'\(victim)'", dataPath, "offset \(offset)"]) { _ = try reader.tensor(named: victim) }
            XCTAssertEqual(try reader.tensor(named: "a"), tensors[0].tensor, "other tensors stay readable")
        }
    }

    func testTruncatedOrDamagedIndexIsDataLossNeverACrash() throws {
        let prefix = path("model.ckpt-7")
        try CheckpointWriter.write(everyDType(), prefix: prefix)
        let indexPath = CheckpointPaths.index(prefix: prefix)
        let clean = try XCTUnwrap(FileManager.default.contents(atPath: indexPath))
        for length in 0..<clean.count {
            try clean.prefix(length).write(to: URL(fileURLWithPath: indexPath))
            assertKilnError(.dataLoss, contains: [indexPath]) { _ = try CheckpointReader(prefix: prefix) }
        }
        // Flipping any single byte is detected, except in the footer's zero padding (unused,
        // like TensorFlow's reader), where it must change nothing.
        var undetected = 0
        for i in 0..<clean.count {
            var bad = clean
            bad[i] ^= 0x04
            try bad.write(to: URL(fileURLWithPath: indexPath))
            do {
                let reader = try CheckpointReader(prefix: prefix)
                XCTAssertEqual(try reader.allTensors().count, try everyDType().count, "byte \(i)")
                undetected += 1
            } catch let e as KilnError {
                XCTAssertEqual(e.code, .dataLoss, "byte \(i): \(e.message)")
            }
        }
        XCTAssertLessThan(undetected, 40)
    }

    func testMissingDataFileIsNotFoundNamingItAndMissingIndexNamesThePrefix() throws {
        let prefix = path("model.ckpt-3")
        try CheckpointWriter.write(["w": Tensor(1 as Float)], prefix: prefix)
        try FileManager.default.removeItem(atPath: CheckpointPaths.data(prefix: prefix))
        let reader = try CheckpointReader(prefix: prefix)
        XCTAssertEqual(reader.keys, ["w"], "the index alone lists the tensors")
        assertKilnError(.notFound, contains: [CheckpointPaths.data(prefix: prefix)]) { _ = try reader.tensor(named: "w") }
        assertKilnError(.notFound, contains: [path("nothing-here")]) { _ = try CheckpointReader(prefix: path("nothing-here")) }
    }

    func testTruncatedDataFileIsDataLoss() throws {
        let prefix = path("short")
        try CheckpointWriter.write(["w": Tensor(shape: [8], scalars: [Double](repeating: 1, count: 8))], prefix: prefix)
        let dataPath = CheckpointPaths.data(prefix: prefix)
        try FileManager.default.contents(atPath: dataPath)!.prefix(50).write(to: URL(fileURLWithPath: dataPath))
        assertKilnError(.dataLoss, contains: ["'w'", "truncated", dataPath]) { _ = try CheckpointReader(prefix: prefix).tensor(named: "w") }
    }

    func testFailedSaveLeavesThePreviousCheckpointIntactAndNoTemporaryFiles() throws {
        let prefix = path("model.ckpt")
        let before = ["v": try Tensor(shape: [2], scalars: [1, 2] as [Float])]
        try CheckpointWriter.write(before, prefix: prefix)
        struct Crash: Error {}
        XCTAssertThrowsError(try CheckpointWriter.write([(key: "v", tensor: Tensor(shape: [3], scalars: [9, 9, 9] as [Float]))],
                                                         prefix: prefix, hook: { if $0 == .temporariesSynced { throw Crash() } }))
        XCTAssertEqual(try CheckpointReader(prefix: prefix).allTensors(), before)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: scratch.path).contains { $0.contains("tempstate") })

        assertKilnError(.invalidArgument, contains: ["'v'", "twice"]) {
            try CheckpointWriter.write([(key: "v", tensor: Tensor(1 as Float)), (key: "v", tensor: Tensor(2 as Float))], prefix: prefix)
        }
        assertKilnError(.invalidArgument, contains: ["non-empty"]) { try CheckpointWriter.write(["": Tensor(1 as Float)], prefix: prefix) }
        XCTAssertEqual(try CheckpointReader(prefix: prefix).allTensors(), before)
        // A new directory is created for the prefix.
        try CheckpointWriter.write(before, prefix: path("deep/er/model"))
        XCTAssertEqual(try CheckpointReader(prefix: path("deep/er/model")).allTensors(), before)
    }

    // MARK: checkpoint state

    func testCheckpointStateStoresPathsRelativeToItsDirectoryWithTimestamps() throws {
        let dir = scratch.path
        let state = CheckpointState(modelCheckpointPath: dir + "/model.ckpt-2",
                                    allModelCheckpointPaths: [dir + "/model.ckpt-1", dir + "/model.ckpt-2", "/elsewhere/model.ckpt-0"],
                                    allModelCheckpointTimestamps: [1_795_702_923.25, 1_795_702_924.5, 1], lastPreservedTimestamp: 1_795_702_900.5)
        try state.write(directory: dir)
        XCTAssertEqual(try String(contentsOfFile: dir + "/checkpoint", encoding: .utf8), """
            model_checkpoint_path: "model.ckpt-2"
            all_model_checkpoint_paths: "model.ckpt-1"
            all_model_checkpoint_paths: "model.ckpt-2"
            all_model_checkpoint_paths: "/elsewhere/model.ckpt-0"
            all_model_checkpoint_timestamps: 1795702923.25
            all_model_checkpoint_timestamps: 1795702924.5
            all_model_checkpoint_timestamps: 1.0
            last_preserved_timestamp: 1795702900.5

            """)
        XCTAssertEqual(try CheckpointState.read(directory: dir), state)
        // The list spelling of repeated values, which other writers use, reads the same.
        let listForm = try CheckpointState(text: "model_checkpoint_path: 'a' all_model_checkpoint_timestamps: [1.5, 2]")
        XCTAssertEqual(listForm.allModelCheckpointTimestamps, [1.5, 2])
        XCTAssertEqual(listForm.allModelCheckpointPaths, [])

        XCTAssertNil(try latestCheckpoint(directory: dir), "the state names a checkpoint that does not exist")
        try CheckpointWriter.write(["x": Tensor(1 as Float)], prefix: dir + "/model.ckpt-2")
        XCTAssertEqual(try latestCheckpoint(directory: dir), dir + "/model.ckpt-2")

        try "model_checkpoint_path: 12 { broken".write(toFile: dir + "/checkpoint", atomically: true, encoding: .utf8)
        assertKilnError(.dataLoss, contains: [dir + "/checkpoint"]) { _ = try latestCheckpoint(directory: dir) }
    }
}
