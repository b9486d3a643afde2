import CLibFuzzer
import Foundation
import KilnFrontend
import KilnFuzzSupport

/// Text-format GraphDef (.pbtxt): parse, import, then compile and run the imported graph.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGraphDefText(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let graphDef: Tensorflow_GraphDef
    do { graphDef = try GraphDefFile.parse(text: String(decoding: fuzzBytes(data, size), as: UTF8.self)) } catch {
        expectKilnError(error, "GraphDefFile.parse(text:)")
        return 0
    }
    GraphFuzz.importAndRun(graphDef)
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzGraphDefText_main`; it hands control to libFuzzer.
@_cdecl("FuzzGraphDefText_main")
public func fuzzGraphDefTextMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzGraphDefText($0, $1) }
}
