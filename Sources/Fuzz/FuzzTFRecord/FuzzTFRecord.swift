import CLibFuzzer
import KilnFuzzSupport
import KilnIR
import KilnRuntime

/// A TFRecord file: the first byte picks the compression (none, ZLIB, GZIP), the rest is the
/// file. Every record read must re-frame to exactly the bytes it was read from, and reading in
/// batches (the reader op's path) must give the same records, offsets and failure as reading one
/// record at a time.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    guard let first = bytes.first else { return 0 }
    let compression = TFRecordCompression.allCases[Int(first) % TFRecordCompression.allCases.count]
    let file = Array(bytes.dropFirst())
    var records: [[UInt8]] = [], offsets: [Int] = [], failure: String?
    do {
        let reader = try TFRecordFileReader(bytes: file, compression: compression, source: "fuzz.tfrecord")
        while true {
            let at = reader.offset
            guard let r = try reader.next() else { break }
            records.append(r)
            offsets.append(at)
        }
        if compression == .none && TFRecordWriter.encode(records) != file {
            fatalError("TFRecord records do not re-frame to the file they came from")
        }
    } catch {
        expectKilnError(error, "TFRecordFileReader")
        failure = "\(error)"
    }
    var batched = TensorStrings(), batchedOffsets: [Int] = [], batchFailure: String?
    do {
        let reader = try TFRecordFileReader(bytes: file, compression: compression, source: "fuzz.tfrecord")
        while try reader.next(3, into: &batched, offsets: &batchedOffsets) == 3 {}
    } catch {
        batchFailure = "\(error)"
    }
    if Array(batched) != records || batchedOffsets != offsets || batchFailure != failure {
        fatalError("TFRecord batch reads differ from single reads: \(batched.count) vs \(records.count) records, \(batchFailure ?? "no error") vs \(failure ?? "no error")")
    }
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzTFRecord_main`; it hands control to libFuzzer.
@_cdecl("FuzzTFRecord_main")
public func fuzzTFRecordMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzTFRecord($0, $1) }
}
