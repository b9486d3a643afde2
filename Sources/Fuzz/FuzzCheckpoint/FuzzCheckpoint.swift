import CLibFuzzer
import Foundation
import KilnFuzzSupport
import KilnIR
import KilnRuntime

/// A checkpoint: the input splits (see `splitInput`) into the .index file and the single data
/// shard, written to a private directory; the reader opens the prefix and reads every tensor.
let directory: String = {
    var template = Array("\(NSTemporaryDirectory())/kiln-fuzz-ckpt-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    return String(cString: p)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let (index, shard) = splitInput(fuzzBytes(data, size))
    let prefix = directory + "/model.ckpt"
    guard FileManager.default.createFile(atPath: prefix + ".index", contents: Data(index)),
          FileManager.default.createFile(atPath: prefix + ".data-00000-of-00001", contents: Data(shard)) else {
        fatalError("cannot write the checkpoint files under \(directory)")
    }
    do {
        let reader = try CheckpointReader(prefix: prefix)
        _ = reader.dtypesAndShapes
        for key in reader.keys {
            do { _ = try reader.tensor(named: key) } catch { expectKilnError(error, "CheckpointReader.tensor(named:)") }
        }
    } catch {
        expectKilnError(error, "CheckpointReader(prefix:)")
    }
    return 0
}

// SwiftPM links an executable's `main` as an alias of `FuzzCheckpoint_main`; it hands control to libFuzzer.
@_cdecl("FuzzCheckpoint_main")
public func fuzzCheckpointMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { fuzzCheckpoint($0, $1) }
}
