import XCTest
import Foundation
import KilnIR
import KilnPasses
import KilnKernels
import KilnOpenCL

/// A device without cl_khr_fp64 (NVIDIA's OpenCL has it, many others do not): Kiln's own
/// random normals and erf/erfc compute in float there, the program uses no double at all, and
/// a float64 tensor is refused at compile time with an error naming it. Run on PoCL with its
/// cl_khr_fp64 taken out of the device's extensions.
final class DeviceWithoutFloat64Tests: XCTestCase {
    func backend() throws -> OpenCLBackend {
        guard var device = try OpenCL.gpus(allowCPU: true).first else {
            print("DeviceWithoutFloat64Tests: SKIPPED, no OpenCL device (install pocl-opencl-icd: make setup)")
            throw XCTSkip("no OpenCL device")
        }
        device.extensions.remove("cl_khr_fp64")
        return OpenCLBackend(device: device)
    }

    func testFloat64TensorsAreRefusedAtCompileTime() throws {
        let b = try backend()
        let f = try KernelCase.parse("""
        func @d(%0: f32[4] feed "x") {
          %1 = cast %0 to=f64
          %2 = mul %1, %1
          return %2
        }
        """)
        XCTAssertThrowsError(try b.compile(f, options: CompileOptions())) { e in
            let message = "\(e)"
            XCTAssert(message.contains("float64") && message.contains("cl_khr_fp64") && message.contains("%1 (cast)"), message)
        }
    }

    func testNormalsAndErrorFunctionsComputeInFloat() throws {
        let b = try backend()
        let n = 4096
        let f = try KernelCase.parse("""
        func @r(%0: i64[] feed "counter", %1: f32[\(n)] feed "x") {
          %2 = random.normal %0 dtype=f32 shape=[\(n)] seed=7
          %3 = random.truncated_normal %0 dtype=f32 shape=[\(n)] seed=8
          %4 = erf %1
          %5 = erfc %1
          return %2, %3, %4, %5
        }
        """)
        let exe = try b.compile(f, options: CompileOptions(keepSource: true))
        let source = exe.stats.source ?? ""
        XCTAssertFalse(source.contains("double") || source.contains("cl_khr_fp64"), "the program uses double:\n\(source)")
        // erf/erfc over [-6, 9]: erfc down to 4e-37, still a normal float.
        let xs = (0..<n).map { Float(-6 + 15 * Double($0) / Double(n - 1)) }
        var inputs = [Tensor(Int64(3)), try Tensor(shape: [n], scalars: xs)]
        let got = try exe.run(&inputs).map { try $0.scalars(as: Float.self) }
        let want = try ReferenceEvaluator.run(f, parameters: inputs).results.map { try $0.scalars(as: Float.self) }
        // Box-Muller in float: log, sqrt and cos of float, a few ulp of values up to ~5.
        for r in 0..<2 {
            let worst = zip(got[r], want[r]).map { abs(Double($0) - Double($1)) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, "normal draws \(r) differ from the reference's by up to \(worst)")
        }
        // OpenCL's erf and erfc in float: at most 16 ulp (2e-6 relative), against double libm.
        for (r, fn) in [(2, { (x: Double) in Foundation.erf(x) }), (3, { (x: Double) in Foundation.erfc(x) })] {
            for (k, x) in xs.enumerated() {
                let w = fn(Double(x))
                XCTAssertLessThanOrEqual(abs(Double(got[r][k]) - w), 2e-6 * abs(w) + 1e-45, "\(r == 2 ? "erf" : "erfc")(\(x)) = \(got[r][k]), libm \(w)")
            }
        }
    }
}
