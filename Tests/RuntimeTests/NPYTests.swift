import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// The fixtures were written once by numpy 2.4 (`numpy.lib.format.write_array`), so these tests
/// check Kiln against numpy's own bytes without needing numpy.
final class NPYTests: XCTestCase {
    private func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")).path
    }

    /// Each fixture's array, as numpy wrote it.
    private var numpyArrays: [(file: String, tensor: Tensor)] {
        [
            ("f4_2x3.npy", try! Tensor(shape: [2, 3], scalars: [1.5, -2.25, 3, 0, 1e-7, -0.0] as [Float])),
            ("f8_3.npy", try! Tensor(shape: [3], scalars: [Double.pi, -1e300, .infinity])),
            ("i4_2x2.npy", try! Tensor(shape: [2, 2], scalars: [1, -2, Int32.max, Int32.min])),
            ("i8_3.npy", try! Tensor(shape: [3], scalars: [9_007_199_254_740_993, -1, 0] as [Int64])),
            ("i2_2x3.npy", try! Tensor(shape: [2, 3], scalars: [1, -2, 32767, -32768, 0, 258] as [Int16])),
            // float16 (numpy's <f2): 1, -2.5, the largest, the smallest subnormal, -0, infinity.
            ("f2_2x3.npy", try! Tensor(halfBits: [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0x7C00], dtype: .float16, shape: [2, 3])),
            ("f2_3.npy", try! Tensor(halfBits: [0, 0x3C00, 0x4000], dtype: .float16, shape: [3])),
            ("u1_4.npy", try! Tensor(shape: [4], scalars: [0, 1, 128, 255] as [UInt8])),
            ("b1_2x2.npy", try! Tensor(shape: [2, 2], scalars: [true, false, false, true])),
            ("f4_scalar.npy", Tensor(2.5 as Float)),
            ("i4_empty_0x3.npy", try! Tensor(shape: [0, 3], scalars: [Int32]())),
        ]
    }

    func testFilesWrittenByNumpyReadExactly() throws {
        for (file, want) in numpyArrays {
            XCTAssertEqual(try NPY.read(path: fixture(file)), want, file)
        }
        XCTAssertEqual(try NPY.read(path: fixture("f4_v2.npy")), try Tensor(shape: [3, 2], scalars: [0, 1, 2, 3, 4, 5] as [Float]))
        XCTAssertEqual(try NPY.read(path: fixture("i8_v3.npy")), try Tensor(shape: [4], scalars: [0, 1, 2, 3] as [Int64]))
    }

    func testKilnWritesTheSameBytesAsNumpySave() throws {
        for (file, tensor) in numpyArrays {
            let numpy = try XCTUnwrap(FileManager.default.contents(atPath: fixture(file)))
            XCTAssertEqual(try NPY.encode(tensor), [UInt8](numpy), file)
        }
    }

    func testWriteThenReadRoundTripsThroughAFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(UUID().uuidString).npy").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try Tensor(shape: [2, 2, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8] as [Double])
        try NPY.write(t, path: path)
        XCTAssertEqual(try NPY.read(path: path), t)
        let bytes = try NPY.encode(t)
        let headerEnd = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
        XCTAssertEqual(headerEnd % 64, 0, "data starts 64-byte aligned, as numpy writes it")
        assertKilnError(.unimplemented, contains: ["string"]) { _ = try NPY.encode(Tensor("x")) }
        // numpy has no standard bfloat16: a clear error naming the dtype.
        assertKilnError(.unimplemented, contains: ["bfloat16", "numpy"]) {
            _ = try NPY.encode(Tensor(halfBits: [0x3F80], dtype: .bfloat16, shape: [1]))
        }
    }

    func testHeaderTooLongForVersion1IsWrittenAsVersion2AndReadsBack() throws {
        // numpy itself allows 64 dimensions; 22000 unit dimensions make a header over 65535 bytes.
        let t = try Tensor(shape: [Int](repeating: 1, count: 22_000), scalars: [42] as [Int32])
        let bytes = try NPY.encode(t)
        XCTAssertEqual(Array(bytes[6..<8]), [2, 0])
        let headerEnd = 12 + (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        XCTAssertEqual(headerEnd % 64, 0)
        XCTAssertEqual(try NPY.decode(bytes), t)
    }

    func testFortranOrderBigEndianAndUnsupportedDTypesAreClearErrors() throws {
        assertKilnError(.unimplemented, contains: ["Fortran", "f4_fortran.npy"]) { _ = try NPY.read(path: fixture("f4_fortran.npy")) }
        assertKilnError(.unimplemented, contains: ["big-endian", "'>f4'"]) { _ = try NPY.read(path: fixture("f4_bigendian.npy")) }
        // A dtype Kiln lacks (complex64): the same float16 file with its descr changed.
        var complex = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: fixture("f2_3.npy"))))
        let at = try XCTUnwrap((0..<complex.count - 3).first { Array(complex[$0..<($0 + 3)]) == Array("<f2".utf8) })
        complex.replaceSubrange(at..<(at + 3), with: Array("<c8".utf8))
        assertKilnError(.unimplemented, contains: ["unsupported dtype '<c8'"]) { _ = try NPY.decode(complex) }
        assertKilnError(.notFound, contains: ["/no/such.npy"]) { _ = try NPY.read(path: "/no/such.npy") }
    }

    func testBadMagicTruncationAndMalformedHeadersNeverCrash() throws {
        let good = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: fixture("f4_2x3.npy"))))
        var badMagic = good
        badMagic[1] = UInt8(ascii: "X")
        assertKilnError(.invalidArgument, contains: ["not a .npy file", "bad magic"]) { _ = try NPY.decode(badMagic) }
        assertKilnError(.dataLoss, contains: ["truncated", "24 bytes of data from offset 128, 23 remain"]) { _ = try NPY.decode(Array(good.dropLast())) }
        for length in 0..<(good.count - 24) {
            XCTAssertThrowsError(try NPY.decode(Array(good.prefix(length))), "length \(length)") { error in
                XCTAssertTrue(error is KilnError)
            }
        }
        var unknownVersion = good
        unknownVersion[6] = 9
        assertKilnError(.unimplemented, contains: ["version 9.0"]) { _ = try NPY.decode(unknownVersion) }
        var malformed = good
        let shape = try XCTUnwrap(good.firstRange(of: Array("(2, 3)".utf8)))
        malformed.replaceSubrange(shape, with: Array("[2, 3]".utf8))
        assertKilnError(.invalidArgument, contains: ["malformed .npy header", "shape"]) { _ = try NPY.decode(malformed) }
        // Random damage anywhere answers with a KilnError or a tensor.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            var bytes = good
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            do { _ = try NPY.decode(bytes) } catch is KilnError {} catch { XCTFail("\(error)") }
        }
    }
}
