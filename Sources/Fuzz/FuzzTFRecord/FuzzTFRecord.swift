import CLibFuzzer
import KilnFuzzSupport
import KilnIR
import KilnRuntime

/// A TFRecord file: the first byte picks the compression (none, ZLIB, GZIP), the rest is the
/// file. Every record read must re-frame to exactly the bytes it was read from.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    guard let first = bytes.first else { return 0 }
    let compression = TFRecordCompression.allCases[Int(first) % TFRecordCompression.allCases.count]
    var records: [[UInt8]] = []
    do {
        let reader = try TFRecordFileReader(bytes: Array(bytes.dropFirst()), compression: compression, source: "fuzz.tfrecord")
        while let r = try reader.next() { records.append(r) }
        if compression == .none && TFRecordWriter.encode(records) != Array(bytes.dropFirst()) {
            fatalError("TFRecord records do not re-frame to the file they came from")
        }
    } catch {
        expectKilnError(error, "TFRecordFileReader")
    }
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzTFRecord_main`; it hands control to libFuzzer.
@_cdecl("FuzzTFRecord_main")
public func fuzzTFRecordMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzTFRecord($0, $1) }
}
