import Foundation
import XCTest
import KilnTestSupport

/// `kiln bench --peers`, as the built binary: its options, the peers' scripts it carries, the
/// skipped-peer lines and the ratio table, with a stand-in Python that answers from canned
/// figures (no Python package needed), and once with a real Python where one has the packages.
final class PeerBenchCommandTests: KilnBinaryTestCase {
    /// The repository's scripts/peers, which the binary must carry byte for byte.
    var scriptsDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/peers")
    }

    func testPythonWithoutPeersAndPeersWithADeviceAreRefused() throws {
        let a = try run(["bench", "--python", "/usr/bin/python3"])
        XCTAssertNotEqual(a.status, 0)
        XCTAssertTrue(a.stderr.contains("--python is the Python of --peers"), a.stderr)
        let b = try run(["bench", "--peers", "--device", "/gpu:0"])
        XCTAssertNotEqual(b.status, 0)
        XCTAssertTrue(b.stderr.contains("--peers runs the standard workloads on the CPU"), b.stderr)
    }

    func testWithoutAPythonEveryPeerIsSkippedWithTheReasonNotAnError() throws {
        let r = try run(["bench", "--peers", "--quick"], environment: ["PATH": path("empty"), "KILN_PEERS_PYTHON": ""])
        XCTAssertEqual(r.status, 0, r.stderr)
        for peer in ["tf1 (tf1.py)", "xla (tf1.py --xla)", "jax (jax_peer.py)", "onnxruntime (onnxruntime_peer.py)", "tf.data (input_pipeline.py --tf-data)"] {
            XCTAssertTrue(r.stdout.contains("peer \(peer): skipped, no python3 on PATH (give --python PATH or KILN_PEERS_PYTHON)"), r.stdout)
        }
        XCTAssertTrue(r.stdout.contains("(no peer measured any selected workload)"), r.stdout)
    }

    /// A stand-in for Python: copies each script it is given beside it (so the test can compare
    /// them with the repository's), then answers as a peer would. tf1 measures matmul_small at
    /// 2 ms and a workload Kiln does not have; jax fails its first sample; --xla exits without a
    /// word; the others report their packages missing.
    func writeCannedPython() throws -> String {
        let seen = path("seen")
        try FileManager.default.createDirectory(atPath: seen, withIntermediateDirectories: true)
        let script = """
            #!/bin/sh
            cp "$1" "\(seen)/"
            name=$(basename "$1"); shift
            case "$name $*" in
            *--xla*) exit 3 ;;
            "tf1.py"*)
              echo '{"peer": "tf1", "version": "9.9-canned", "threads": 2, "workloads": ["matmul_small", "no_such_workload"], "method": {"matmul_small": "canned figures"}}'
              while read -r line; do
                case "$line" in
                *matmul_small*) echo '{"workload": "matmul_small", "median": 0.002, "min": 0.002, "samples": [0.002]}' ;;
                *) echo '{"workload": "no_such_workload", "median": 0.5, "min": 0.5, "samples": [0.5]}' ;;
                esac
              done ;;
            "jax_peer.py"*)
              echo '{"peer": "jax", "version": "0.0", "threads": 2, "workloads": ["matmul_small"], "method": {}}'
              while read -r line; do echo '{"workload": "matmul_small", "error": "RuntimeError: canned failure"}'; done ;;
            *) echo "{\\"peer\\": \\"x\\", \\"skipped\\": \\"ModuleNotFoundError: No module named '$name'\\"}" ;;
            esac
            """
        let file = path("python")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(file, 0o755), 0)
        return file
    }

    func testCannedPeersGiveRatiosFromTheSameRunAndTheirMethods() throws {
        let python = try writeCannedPython()
        let r = try run(["bench", "--peers", "--quick", "--only", "matmul_small,no_such_workload", "--python", python, "--json", path("peers.json")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(r.stdout.contains("peer tf1 9.9-canned: 2 intra-op threads (tf1.py)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("peer onnxruntime (onnxruntime_peer.py): skipped, ModuleNotFoundError: No module named 'onnxruntime_peer.py'"), r.stdout)
        XCTAssertTrue(r.stdout.contains("peer xla (tf1.py --xla): skipped, the script exited before it said what it measures"), r.stdout)

        // matmul_small takes microseconds in Kiln against the canned 2 ms: peer/kiln well above 1.
        let row = try XCTUnwrap(lines.first { $0.hasPrefix("matmul_small ") && $0.contains(" tf1 ") }, r.stdout)
        XCTAssertTrue(row.contains("2.000 ms"), row)
        let ratio = try XCTUnwrap(row.split(separator: " ").first { $0.hasSuffix("x") && Double($0.dropLast()) != nil }.flatMap { Double($0.dropLast()) }, row)
        XCTAssertGreaterThan(ratio, 1)
        XCTAssertTrue(row.contains("Kiln \(String(format: "%.2f", ratio))x faster"), row)
        // Kiln's median in the row is the one the ratio divides by.
        let kilnField = row.components(separatedBy: "2.000 ms")[1].trimmingCharacters(in: .whitespaces)
        let kilnParts = kilnField.split(separator: " ")
        let kiln = Double(kilnParts[0])! * (kilnParts[1] == "us" ? 1e-6 : 1e-3)
        XCTAssertEqual(ratio, 0.002 / kiln, accuracy: 0.02 * ratio + 0.01)

        let failed = try XCTUnwrap(lines.first { $0.hasPrefix("matmul_small ") && $0.contains(" jax ") }, r.stdout)
        XCTAssertTrue(failed.contains("failed") && failed.contains("RuntimeError: canned failure"), failed)
        let missing = try XCTUnwrap(lines.first { $0.hasPrefix("no_such_workload") }, r.stdout)
        XCTAssertTrue(missing.contains("500.000 ms") && missing.contains("kiln has no workload no_such_workload"), missing)
        XCTAssertTrue(r.stdout.contains("matmul_small / tf1: canned figures"), r.stdout)

        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("peers.json")))) as! [String: Any]
        let tf1 = try XCTUnwrap((doc["peers"] as! [[String: Any]]).first { $0["workload"] as? String == "matmul_small" && $0["peer"] as? String == "tf1" })
        XCTAssertEqual(tf1["peer_median_ms"] as! Double, 2, accuracy: 1e-9)
        XCTAssertEqual(tf1["peer_over_kiln"] as! Double, 2 / (tf1["kiln_median_ms"] as! Double), accuracy: 1e-9)
        XCTAssertTrue((doc["skipped"] as! [[String: Any]]).contains { $0["peer"] as? String == "xla" })
    }

    /// Every script in scripts/peers is carried by the binary unchanged, and each says how to
    /// run it by hand.
    func testTheBinaryCarriesThePeersScriptsAsTheyAreInTheRepository() throws {
        let python = try writeCannedPython()
        let r = try run(["bench", "--peers", "--quick", "--only", "matmul_small", "--python", python])
        XCTAssertEqual(r.status, 0, r.stderr)
        let repository = try FileManager.default.contentsOfDirectory(atPath: scriptsDirectory.path).filter { $0.hasSuffix(".py") }.sorted()
        XCTAssertTrue(repository.contains("tf1.py") && repository.contains("peer_common.py"), "\(repository)")
        let launched = Set(try FileManager.default.contentsOfDirectory(atPath: path("seen")))
        XCTAssertEqual(launched, ["tf1.py", "jax_peer.py", "onnxruntime_peer.py", "input_pipeline.py"])
        for name in launched {
            let carried = try String(contentsOfFile: path("seen/\(name)"), encoding: .utf8)
            let source = try String(contentsOf: scriptsDirectory.appendingPathComponent(name), encoding: .utf8)
            XCTAssertEqual(carried, source, "\(name) differs from scripts/peers/\(name): rebuild kiln")
            XCTAssertTrue(source.contains("scripts/peers/\(name)"), "\(name) does not document its command line")
        }
    }

    /// A real peer script, when a Python with ONNX Runtime is at hand (KILN_PEERS_PYTHON, else
    /// python3 on PATH): reduce_sum_rows beside Kiln's, with a ratio.
    func testARealPeerScriptMeasuresBesideKiln() throws {
        let env = ProcessInfo.processInfo.environment
        let python = (env["KILN_PEERS_PYTHON"].flatMap { $0.isEmpty ? nil : ToolRunner.find($0) }) ?? ToolRunner.find("python3")
        guard let python, (try? ToolRunner.run([python, "-c", "import numpy, onnx, onnxruntime"]).status) == 0 else {
            throw XCTSkip("SKIPPED: no Python with numpy, onnx and onnxruntime (set KILN_PEERS_PYTHON, e.g. to a venv made with `pip install onnxruntime onnx`)")
        }
        let r = try run(["bench", "--peers", "--quick", "--only", "reduce_sum_rows", "--python", python])
        XCTAssertEqual(r.status, 0, r.stderr)
        let row = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("reduce_sum_rows") && $0.contains(" onnxruntime ") }, r.stdout)
        XCTAssertTrue(row.contains("x  Kiln"), String(row))
    }
}
