import XCTest
import Kiln
import KilnOpenCL
import KilnTestSupport

/// A tensor larger than the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE) is a
/// resourceExhausted error naming its node, raised when the run is compiled: nothing is
/// allocated first, and the same graph on the CPU is only bound by the memory limit.
final class DeviceBufferLimitTests: XCTestCase {
    func testATensorOverTheLargestDeviceBufferNamesItsNode() throws {
        var config = try TestGPU.required("the device's largest buffer")
        config.memoryLimit = .max
        let device = try XCTUnwrap(try OpenCL.gpus(allowCPU: true).first)
        let rows = Int(device.maxAllocBytes / 4096) + 1   // rows of 1024 floats, one row too many
        let g = Graph()
        let total = try g.device("/gpu:0") {
            let big = try g.fill([rows, 1024], 1, name: "big")
            return try g.reduceSum(big, name: "total")
        }
        assertKilnError(.resourceExhausted, contains: ["OOM", "shape[\(rows), 1024]", "'big'", "(op: 'Fill')", "CL_DEVICE_MAX_MEM_ALLOC_SIZE", "\(device.maxAllocBytes)"]) {
            try Session(graph: g, config: config).run(total)
        }
    }
}
