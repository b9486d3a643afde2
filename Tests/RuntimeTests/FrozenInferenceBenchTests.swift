import Foundation
import XCTest
import Kiln

/// `kiln bench`'s cnn_infer_frozen: the digits CNN frozen (convert_variables_to_constants), timed
/// beside its variables version in the same run.
final class FrozenInferenceBenchTests: KilnBinaryTestCase {
    func testFrozenCNNIsTimedBesideItsVariablesVersion() throws {
        let r = try run(["bench", "--quick", "--only", "cnn_infer_frozen", "--json", path("frozen.json")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("cnn_infer_frozen ") }.map(String.init) ?? ""
        XCTAssertNotNil(row.range(of: #"weights constants; with variables [0-9.]+ ms in the same run \([0-9]+\.[0-9]{2}x\)$"#,
                                  options: .regularExpression), r.stdout)
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("frozen.json")))) as! [String: Any]
        let workloads = doc["workloads"] as! [[String: Any]]
        XCTAssertEqual(workloads.compactMap { $0["name"] as? String }, ["cnn_infer_frozen"])
        let (median, minimum) = (workloads[0]["median_ms"] as! Double, workloads[0]["min_ms"] as! Double)
        XCTAssertGreaterThan(minimum, 0)
        XCTAssertLessThanOrEqual(minimum, median)
        XCTAssertGreaterThan(workloads[0]["unfused_median_ms"] as! Double, 0)
    }
}
