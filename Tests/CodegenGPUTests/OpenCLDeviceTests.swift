import XCTest
import Foundation
@testable import KilnOpenCL

final class OpenCLDeviceTests: XCTestCase {
    func testDeviceDiscoveryListsPoCLWhenItIsInstalled() throws {
        let devices = try OpenCL.devices()
        for d in devices {
            XCTAssertFalse(d.name.isEmpty)
            XCTAssertGreaterThan(d.computeUnits, 0)
            XCTAssertGreaterThan(d.globalMemoryBytes, 0)
        }
        // make test installs pocl-opencl-icd, which registers itself here.
        if FileManager.default.fileExists(atPath: "/etc/OpenCL/vendors/pocl.icd") {
            XCTAssertTrue(devices.contains { $0.platform.lowercased().contains("portable") || $0.vendor.lowercased().contains("pocl") },
                          "PoCL is registered but not listed: \(devices)")
        }
    }
}
