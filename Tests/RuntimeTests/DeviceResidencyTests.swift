import XCTest
import KilnTestSupport
import Foundation
import Kiln

/// Variables that live on /gpu:0 between runs (OpenCL; PoCL where there is no GPU): whoever
/// reads them on the host side (value(of:), a CPU op, the Saver) sees the device's latest
/// value, and a host write (setValue, restore) is what the device reads next.
final class DeviceResidencyTests: ScratchDirectoryTestCase {
    func testHostAndCPUReadersSeeTheDevicesWritesAndTheDeviceSeesHostWrites() throws {
        let config = try TestGPU.required("variable residency")
        let g = Graph()
        let v = try g.variable([1, 2] as [Float], name: "v")
        let bump = try g.assignAdd(v, try g.constant([1, 1] as [Float]), name: "bump")
        // A CPU op that takes the variable itself, and one that takes its read (on the GPU).
        let direct = try g.device("/cpu:0") { try g.multiply(v.variableOp.output(), try g.constant([2, 2] as [Float]), name: "direct") }
        let viaRead = try g.device("/cpu:0") { try g.add(v, try g.constant([0.5, 0.5] as [Float]), name: "via_read") }
        let sess = try Session(graph: g, config: config)
        try sess.run(try g.globalVariablesInitializer())
        _ = try sess.run(bump)
        XCTAssertEqual(sess.lastRunSummary?.backend, "opencl")
        XCTAssertEqual(try sess.value(of: v)?.scalars(as: Float.self), [2, 3], "value(of:) reads the device's write")
        _ = try sess.run(bump)
        XCTAssertEqual(try sess.run(direct).scalars(as: Float.self), [6, 8], "a CPU op reads the device's write")
        XCTAssertEqual(try sess.run(viaRead).scalars(as: Float.self), [3.5, 4.5])
        try sess.setValue(Tensor(shape: [2], scalars: [10, 20] as [Float]), of: v)
        XCTAssertEqual(try sess.run(bump).scalars(as: Float.self), [11, 21], "the device reads the host's write")
        XCTAssertEqual(try sess.run(v).scalars(as: Float.self), [11, 21])

        let saver = try Saver(graph: g)
        let prefix = try saver.save(sess, prefix: path("model.ckpt"))
        _ = try sess.run(bump)
        try saver.restore(sess, prefix: prefix)
        XCTAssertEqual(try sess.run(bump).scalars(as: Float.self), [12, 22], "a restore is what the device reads next")
    }
}
