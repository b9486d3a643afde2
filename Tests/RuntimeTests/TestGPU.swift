import XCTest
import Kiln
import KilnTestSupport

/// `/gpu:0` for the device tests: the first OpenCL GPU, or PoCL's CPU device standing in for
/// one. The test's session config allows CPU OpenCL devices, not the environment of the whole
/// suite, so every other test keeps running on the CPU.
enum TestGPU {
    static let config = SessionConfig(openCLAllowCPU: true)

    /// The session config that has a `/gpu:0`; without one, says why (printed and in the
    /// bundle's closing tally) and skips.
    static func required(_ what: String) throws -> SessionConfig {
        let devices: [PlacementDevice]
        do { devices = try Session.devices(config: config) } catch { return try skip(what, "listing OpenCL devices failed: \(error)") }
        if devices.contains(.gpu(0)) {
            // Ops without a device must go to the GPU under this config, or the device tests
            // would silently test the CPU.
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [2], name: "x")
            let sess = try Session(graph: g, config: config)
            _ = try sess.run(try g.exp(x), feeds: [x: Tensor(shape: [2], scalars: [0, 1] as [Float])])
            XCTAssertEqual(sess.lastRunSummary?.backend, "opencl", "an op without a device did not run on /gpu:0")
            return config
        }
        let opencl = (try? OpenCLDeviceList.lines(allowCPU: true)) ?? []
        let why = opencl.isEmpty ? "no OpenCL driver or device (install pocl-opencl-icd)" : "no OpenCL GPU or CPU device among: \(opencl.joined(separator: "; "))"
        return try skip(what, why)
    }

    private static func skip(_ what: String, _ why: String) throws -> SessionConfig {
        let line = "device /gpu:0: \(what) SKIPPED: \(why)"
        print(line)
        BundleTally.note(line)
        throw XCTSkip(line)
    }
}
