import Foundation
import XCTest
import Kiln
import KilnTestSupport

/// Real TensorFlow outputs: the copies of ../shared/golden's files in Fixtures/golden (listed in
/// Fixtures/golden-files.txt, refreshed by `make fixtures`), so a clone needs nothing beside it;
/// $KILN_GOLDEN_DIR points the tests at another copy instead.
enum Golden {
    static var directory: URL {
        if let d = ProcessInfo.processInfo.environment["KILN_GOLDEN_DIR"] { return URL(fileURLWithPath: d) }
        return Bundle.module.resourceURL!.appendingPathComponent("Fixtures/golden")
    }

    /// Tests/RuntimeTests/Fixtures in the source tree (what is committed).
    static var sourceFixtures: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures") }

    /// ../shared/golden beside the repository, where the fixtures are copied from.
    static var sharedDirectory: URL {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repo.deletingLastPathComponent().appendingPathComponent("shared/golden")
    }

    static func lines(_ file: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        }
    }

    static func dtype(_ name: String) -> DType { DType(name: name)! }

    /// A golden tensor: {"dtype", "shape", "data"} with non-finite floats as strings.
    static func tensor(_ j: [String: Any]) throws -> Tensor {
        let d = dtype(j["dtype"] as! String)
        let shape = (j["shape"] as! [Any]).map { ($0 as! NSNumber).intValue }
        let data = j["data"] as! [Any]
        var t = try Tensor(zeros: d, shape: shape)
        for (i, v) in data.enumerated() { try t.setElement(scalar(v, d), at: i) }
        return t
    }

    static func scalar(_ v: Any, _ d: DType) -> ScalarValue {
        if let s = v as? String {
            switch s {
            case "NaN": return .f(.nan)
            case "Infinity": return .f(.infinity)
            default: return .f(-.infinity)
            }
        }
        if d == .bool { return .b((v as! NSNumber).boolValue) }
        let n = v as! NSNumber
        if d.isFloatingPoint { return .f(n.doubleValue) }
        return .i(n.int64Value)
    }

    /// README tolerance: |a-b| <= atol + rtol*|b| for floats; exact for integers and bools.
    static func mismatch(_ got: Tensor, _ want: Tensor, rtol: Double, atol: Double = 1e-5) -> String? {
        if got.dtype != want.dtype { return "dtype \(got.dtype) != \(want.dtype)" }
        if got.shape != want.shape { return "shape \(got.shape) != \(want.shape)" }
        for i in 0..<want.elementCount {
            let (a, b) = (got.element(at: i), want.element(at: i))
            if want.dtype.isFloatingPoint {
                let (x, y) = (a.asDouble, b.asDouble)
                if x.isNaN && y.isNaN { continue }
                if x == y { continue }
                if Swift.abs(x - y) > atol + rtol * Swift.abs(y) { return "element \(i): \(x) != \(y)" }
            } else if a != b {
                return "element \(i): \(a) != \(b)"
            }
        }
        return nil
    }
}

/// What the golden suites (forward, gradient, helper ops) share: where they run and how a suite's
/// failures and counts are reported.
extension GoldenOpsTests {
    typealias Backends = [(name: String, config: SessionConfig)]

    /// Every backend here (see `backends`); having none to run on fails the test.
    static func everyBackend() -> Backends {
        XCTAssertFalse(backends.isEmpty, "no backend to run the golden cases on")
        return backends
    }

    /// /gpu:0 alone, every op without a device placed there; skipped without a GPU, `suite` saying what.
    static func gpuBackend(_ suite: String) throws -> Backends { [("/gpu:0", try TestGPU.required(suite))] }

    /// Runs `cases` on each backend (batched, see `runBatched`): every case that disagrees with
    /// TensorFlow fails the test, named by `label`, its op, attributes and note; each backend prints
    /// `backend <name>: <suite>: N cases passed, M failed` and adds its counts to the bundle's tally.
    /// `breakdown` sees each backend's problems first (the forward suite counts them per family).
    static func checkCases(_ cases: [[String: Any]], label: String, suite: String, on backends: Backends, batch: Int,
                           build: @escaping ([String: Any], Graph, String) throws -> BuiltCase,
                           breakdown: (String, [Int: String]) -> Void = { _, _ in }) {
        BundleTally.install()
        for (backend, config) in backends {
            let problems = runBatched(cases, config: config, batch: batch, build: build)
            for k in problems.keys.sorted() {
                let c = cases[k]
                XCTFail("backend \(backend), \(label) \(c["op"]!) \(c["attrs"] ?? "")\(c["note"].map { " \($0)" } ?? ""): \(problems[k]!)")
            }
            breakdown(backend, problems)
            print("backend \(backend): \(suite): \(cases.count - problems.count) cases passed, \(problems.count) failed")
            BundleTally.add(backend, passed: cases.count - problems.count, failed: problems.count)
        }
    }
}
