import XCTest
@testable import KilnOpenCL

final class DeviceLibraryCopyTests: XCTestCase {
    /// Every count around the float4 boundary, and one spanning many work groups with a tail.
    func testCopyIsExactForEveryCount() throws {
        let h = try LibraryHarness()
        for count in Array(0...9) + [255, 1024, 1_000_003] {
            let values = (0..<count).map { Float($0) * 0.5 - 7 }
            let src = try h.upload(values)
            // One float past the end must stay as it was.
            let dst = try h.upload([Float](repeating: -1, count: count + 1))
            try h.launch(OpenCLLibrary.copyF32, logical: [count], [.buffer(src), .buffer(dst), .int64(Int64(count))])
            let got = try h.download(dst, count: count + 1, as: Float.self)
            XCTAssertEqual(Array(got.prefix(count)), values, "count \(count)")
            XCTAssertEqual(got[count], -1, "count \(count) wrote past its end")
        }
    }

    func testCopyRangeCoversEveryFloat4() throws {
        let limits = OpenCLLibrary.Limits(maxWorkGroupSize: 1024, localMemoryBytes: 48 << 10, isCPU: false)
        let r = try OpenCLLibrary.ndRange(kernel: OpenCLLibrary.copyF32, logical: [1027], limits: limits)
        XCTAssertEqual(r.local, [256])
        XCTAssertEqual(r.global, [512])
        XCTAssertEqual(try OpenCLLibrary.ndRange(kernel: OpenCLLibrary.copyF32, logical: [0], limits: limits).global, [0])
    }
}
