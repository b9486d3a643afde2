import CLibFuzzer
import KilnFuzzSupport
import KilnIR
import KilnRuntime

/// .npy bytes: decode; whatever decodes must encode and decode again to the same tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let tensor: Tensor
    do { tensor = try NPY.decode(fuzzBytes(data, size), source: "fuzz.npy") } catch {
        expectKilnError(error, "NPY.decode")
        return 0
    }
    do {
        let again = try NPY.decode(try NPY.encode(tensor))
        guard again.dtype == tensor.dtype, again.shape == tensor.shape,
              again.withUnsafeBytes({ a in tensor.withUnsafeBytes { a.elementsEqual($0) } }) else {
            fatalError("NPY round trip changed \(tensor.dtype) \(tensor.shape)")
        }
    } catch {
        fatalError("NPY could not re-read what it wrote for \(tensor.dtype) \(tensor.shape): \(error)")
    }
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzNPY_main`; it hands control to libFuzzer.
@_cdecl("FuzzNPY_main")
public func fuzzNPYMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzNPY($0, $1) }
}
