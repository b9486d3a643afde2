import CLibFuzzer
import Foundation
import KilnFrontend
import KilnFuzzSupport

/// Text-format GraphDef (.pbtxt): parse, import, then compile and run the imported graph.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGraphDefText(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    GraphFuzz.parseImportAndRun(data, size, "GraphDefFile.parse(text:)") { try GraphDefFile.parse(text: String(decoding: $0, as: UTF8.self)) }
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzGraphDefText_main`; it hands control to libFuzzer.
@_cdecl("FuzzGraphDefText_main")
public func fuzzGraphDefTextMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzGraphDefText($0, $1) }
}
