import Foundation
import XCTest
import Kiln

/// The OpenCL program cache across processes: the first `kiln run --device /gpu:0` compiles
/// its program and writes the driver's binary; a second process loads the binary and skips the
/// driver's compile (KILN_DEBUG=1 says which happened).
final class OpenCLProgramCacheProcessTests: KilnBinaryTestCase {
    func testASecondProcessTakesTheProgramFromTheDiskCache() throws {
        _ = try TestGPU.required("the OpenCL program cache across processes")
        let frozen = Golden.directory.appendingPathComponent("frozen/frozen_mlp.pb").path
        let x = try Tensor(shape: [2, 784], scalars: (0..<1568).map { Float($0 % 7) / 7 })
        try NPY.write(x, path: path("x.npy"))
        let cache = path("opencl-cache")
        let env = ["KILN_OPENCL_ALLOW_CPU": "1", "KILN_DEBUG": "1", "KILN_OPENCL_CACHE": cache]
        let args = ["run", frozen, "--feed", "x:0=\(path("x.npy"))", "--fetch", "probs:0", "--device", "/gpu:0"]
        let first = try run(args + ["--out", path("first")], environment: env)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("program compiled by the driver"), first.stderr)
        XCTAssertFalse(first.stderr.contains("program from disk cache"), first.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".clbin") }
        XCTAssertFalse(files.isEmpty, "no binary written to \(cache)")

        let second = try run(args + ["--out", path("second")], environment: env)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("program from disk cache"), second.stderr)
        XCTAssertFalse(second.stderr.contains("program compiled by the driver"), "the second process compiled again:\n\(second.stderr)")
        XCTAssertEqual(try NPY.read(path: path("first/probs_0.npy")), try NPY.read(path: path("second/probs_0.npy")))
    }
}
