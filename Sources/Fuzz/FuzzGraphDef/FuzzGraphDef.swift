import CLibFuzzer
import Foundation
import KilnFrontend
import KilnFuzzSupport

/// Binary GraphDef (.pb) bytes: parse, import, then compile and run the imported graph.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGraphDef(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    GraphFuzz.parseImportAndRun(data, size, "GraphDefFile.parse(binary:)") { try GraphDefFile.parse(binary: Data($0)) }
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzGraphDef_main`; it hands control to libFuzzer.
@_cdecl("FuzzGraphDef_main")
public func fuzzGraphDefMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzGraphDef($0, $1) }
}
