import Foundation
import XCTest
import Kiln

/// `kiln bench GRAPH --feed ... --fetch ...`, as the built binary: a user's graph timed like the
/// standard workloads, in the same table and JSON shape.
final class BenchCommandTests: KilnBinaryTestCase {
    /// relu(a x w) for a fed [64,128] a: a matrix product, so the rate is GFLOP/s.
    func writeProductGraph() throws -> (graph: String, feed: String) {
        let g = Graph()
        let a = try g.placeholder(.float32, shape: [nil, 128], name: "a")
        let w = try g.constant(Tensor(shape: [128, 32], scalars: (0..<(128 * 32)).map { Float($0 % 7) * 0.1 - 0.3 }))
        _ = try g.relu(g.matmul(a, w), name: "out")
        try g.writeGraphDef(toFile: path("product.pbtxt"))
        try NPY.write(Tensor(shape: [64, 128], scalars: (0..<(64 * 128)).map { Float($0 % 5) * 0.2 }), path: path("a.npy"))
        return (path("product.pbtxt"), path("a.npy"))
    }

    func json(_ file: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
    }

    func testAGraphWithAProductIsTimedFusedAndUnfusedAndRatedInGFLOPs() throws {
        let (graph, feed) = try writeProductGraph()
        let r = try run(["bench", graph, "--feed", "a=\(feed)", "--fetch", "out", "--quick", "--json", path("bench.json")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("limits: memcpy 256 MiB"), r.stdout)
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("product.pbtxt") }
        XCTAssertNotNil(row, r.stdout)
        XCTAssertTrue(row?.contains("GFLOP/s") ?? false, r.stdout)

        let doc = try json(path("bench.json"))
        let limits = doc["limits"] as! [String: Any]
        XCTAssertGreaterThan(limits["copy_gbps"] as! Double, 0)
        XCTAssertGreaterThan(limits["sgemm_gflops"] as! Double, 0)
        let workloads = doc["workloads"] as! [[String: Any]]
        XCTAssertEqual(workloads.count, 1)
        let w = workloads[0]
        XCTAssertEqual(w["name"] as? String, "product.pbtxt")
        let (median, minimum) = (w["median_ms"] as! Double, w["min_ms"] as! Double)
        XCTAssertGreaterThan(median, 0)
        XCTAssertLessThanOrEqual(minimum, median)
        XCTAssertGreaterThan(w["unfused_median_ms"] as! Double, 0)
        XCTAssertEqual(w["fusion_applies"] as? Bool, true)
        // 2 * 64 * 128 * 32 floating-point operations per run.
        XCTAssertEqual(w["gflops"] as! Double, 2 * 64 * 128 * 32 / (median / 1e3) / 1e9, accuracy: 1e-6 * (w["gflops"] as! Double))
        XCTAssertTrue(w["gbps"] is NSNull)
    }

    func testAGraphWithoutProductsIsRatedByTheBytesItMustMove() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [4096], name: "x")
        _ = try g.tanh(x * 2, name: "y")
        try g.writeGraphDef(toFile: path("chain.pb"))
        try NPY.write(Tensor(shape: [4096], scalars: [Float](repeating: 0.5, count: 4096)), path: path("x.npy"))
        let r = try run(["bench", path("chain.pb"), "--feed=x=\(path("x.npy"))", "--fetch=y", "--quick", "--json=\(path("b.json"))"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let w = (try json(path("b.json"))["workloads"] as! [[String: Any]])[0]
        // One read of the 16 KiB feed and one write of the 16 KiB fetch.
        XCTAssertEqual(w["gbps"] as! Double, 2 * 4096 * 4 / ((w["median_ms"] as! Double) / 1e3) / 1e9, accuracy: 1e-6 * (w["gbps"] as! Double))
        XCTAssertTrue(w["gflops"] is NSNull)
        XCTAssertEqual(w["fusion_applies"] as? Bool, true)
    }

    func testAGraphFusionCannotChangeIsMarkedSameCode() throws {
        let g = Graph()
        let a = try g.placeholder(.float32, shape: [8, 8], name: "a")
        _ = try g.matmul(a, a, name: "out")
        try g.writeGraphDef(toFile: path("square.pb"))
        try NPY.write(Tensor(shape: [8, 8], scalars: [Float](repeating: 0.5, count: 64)), path: path("a8.npy"))
        let r = try run(["bench", path("square.pb"), "--feed", "a=\(path("a8.npy"))", "--fetch", "out", "--quick", "--json", path("s.json")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix("square.pb") }
        XCTAssertTrue(row?.contains("same code") ?? false, r.stdout)
        let w = (try json(path("s.json"))["workloads"] as! [[String: Any]])[0]
        XCTAssertEqual(w["fusion_applies"] as? Bool, false)
        XCTAssertGreaterThan(w["unfused_median_ms"] as! Double, 0)
    }

    /// `kiln bench --quick --only NAME`: its method line says `method`, its one row's note matches
    /// `note`, and the JSON holds that one workload, with times.
    func checkSideBySideWorkload(_ name: String, method: String, note: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(["bench", "--quick", "--only", name, "--json", path(name + ".json")])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stdout.contains(name + ": " + method), r.stdout, file: file, line: line)
        let row = r.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map(String.init) ?? ""
        XCTAssertNotNil(row.range(of: note + "$", options: .regularExpression), r.stdout, file: file, line: line)
        let workloads = try json(path(name + ".json"))["workloads"] as! [[String: Any]]
        XCTAssertEqual(workloads.compactMap { $0["name"] as? String }, [name], file: file, line: line)
        let (median, minimum) = (workloads[0]["median_ms"] as! Double, workloads[0]["min_ms"] as! Double)
        XCTAssertGreaterThan(minimum, 0, file: file, line: line)
        XCTAssertLessThanOrEqual(minimum, median, file: file, line: line)
    }

    /// debug_step: the training step under the debugger, with the plain step's median and the
    /// ratio of the two in its note, and its times in the JSON like any workload's.
    func testDebugStepTimesTheTrainingStepUnderTheDebuggerBesideThePlainOne() throws {
        try checkSideBySideWorkload("debug_step", method: "the digits training step (batch 64) under DebugSession.run",
                                    note: #"plain Session\.run [0-9.]+ (ms|us), has_inf_or_nan costs [0-9]+\.[0-9]{2}x"#)
    }

    /// digits_input: the training step fed by the queue pipeline beside the same step fed arrays,
    /// both rates and their ratio in its note.
    func testDigitsInputSetsTheQueuePipelineBesideFedArrays() throws {
        try checkSideBySideWorkload("digits_input", method: "the digits training step (batch 64) fed by the queue pipeline",
                                    note: #"steps/s: queues [0-9]+, arrays [0-9]+, queues/arrays [0-9]+\.[0-9]{2}; batch 64, 1 reader thread"#)
    }

    /// The batch-template workloads: the step on an executable for every batch beside the step
    /// compiled for its batch alone, with the ratio in the note; a new batch's first run beside
    /// its compile.
    func testBatchTemplateWorkloadsSetTheSharedExecutableBesideOnesCompiledPerBatch() throws {
        try checkSideBySideWorkload("mlp_sgd_any_batch", method: "mlp_sgd_step on one executable compiled for every batch up to 128",
                                    note: #"batch 128 on the batch-128 executable; compiled for 128 alone [0-9.]+ (ms|us), [0-9]+\.[0-9]{3}x its time"#)
    }

    func testMisusedOptionsExitWithUsageAndBadInputNamesTheFeed() throws {
        let (graph, feed) = try writeProductGraph()
        let cases: [(args: [String], status: Int32, mentions: [String])] = [
            (["bench", "--feed", "a=\(feed)"], 64, ["--feed and --fetch need a graph file", "Usage: kiln bench"]),
            (["bench", graph], 64, ["nothing to fetch"]),
            (["bench", graph, "--fetch", "out", "--only", "mlp"], 64, ["--only"]),
            (["bench", "--fast"], 64, ["Unknown option '--fast'"]),
            (["bench", "--only", "bogus"], 64, ["no workload matches --only bogus", "mlp_sgd_step"]),
            (["bench", graph, "other.pb", "--fetch", "out"], 64, ["one graph file expected"]),
            (["bench", graph, "--feed", "b=\(feed)", "--fetch", "out", "--quick"], 1, ["feed 'b'"]),
        ]
        for c in cases {
            let r = try run(c.args)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stderr)")
            for m in c.mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' missing from stderr of \(c.args): \(r.stderr)") }
        }
    }

    /// `--device /gpu:0` on PoCL (standing in for a GPU): the device's limits measured in the
    /// same run with the method beside them, the workloads placed on the device rated against
    /// those limits, the ratios the issue targets, and all of it in the JSON.
    func testDeviceBenchRatesDeviceWorkloadsAgainstLimitsMeasuredInTheSameRun() throws {
        guard (try? DeviceLimits.describe(gpu: 0, allowCPU: true)) != nil else {
            print("SKIPPED: kiln bench --device needs an OpenCL device (none installed)")
            throw XCTSkip("kiln bench --device needs an OpenCL device (none installed)")
        }
        let n = try DeviceLimits.gemmSize(gpu: 0, allowCPU: true)
        let r = try run(["bench", "--device", "/gpu:0", "--quick", "--only", "eltwise_chain_16M,matmul_\(n)", "--json", path("device.json")],
                        environment: ["KILN_OPENCL_ALLOW_CPU": "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for line in ["kiln bench --device /gpu:0: ", "method: limits by the device's own clock", "limits: copy kernel 256 MiB", "library sgemm \(n) ",
                     "ratio: fused elementwise chain / copy kernel", "ratio: matmul_\(n) / library sgemm \(n)"] {
            XCTAssertTrue(r.stdout.contains(line), "'\(line)' missing from:\n\(r.stdout)")
        }
        let chain = r.stdout.split(separator: "\n").first { $0.hasPrefix("eltwise_chain_16M ") }
        XCTAssertTrue(chain?.contains("% of copy kernel") ?? false, r.stdout)
        let product = r.stdout.split(separator: "\n").first { $0.hasPrefix("matmul_\(n) ") }
        XCTAssertTrue(product?.contains("% of library sgemm") ?? false, r.stdout)

        let doc = try json(path("device.json"))
        let limits = doc["limits"] as! [String: Any]
        XCTAssertGreaterThan(limits["copy_gbps"] as! Double, 0)
        XCTAssertGreaterThan(limits["sgemm_gflops"] as! Double, 0)
        XCTAssertEqual(limits["sgemm_n"] as? Int, n)
        let workloads = doc["workloads"] as! [[String: Any]]
        XCTAssertEqual(Set(workloads.compactMap { $0["name"] as? String }), ["eltwise_chain_16M", "eltwise_chain_16M_fed", "matmul_\(n)"])
        for w in workloads { XCTAssertGreaterThan(w["median_ms"] as! Double, 0, "\(w)") }
    }

    func testDeviceBenchNamesAMissingDeviceAndRefusesWhatDoesNotApply() throws {
        let cases: [(args: [String], env: [String: String], status: Int32, mentions: [String])] = [
            (["bench", "--device", "/gpu:9"], ["KILN_OPENCL_ALLOW_CPU": "1"], 1, ["no OpenCL device /gpu:9"]),
            (["bench", "--device", "/cpu:0"], [:], 64, ["--device takes one GPU, /gpu:N", "Usage: kiln bench"]),
            (["bench", "--device", "/device:GPU:*"], [:], 64, ["--device takes one GPU"]),
            (["bench", "--device", "/job:localhost/replica:0/task:0/device:GPU:7"], ["KILN_OPENCL_ALLOW_CPU": "1"], 1, ["no OpenCL device /gpu:7"]),
            (["bench", "--device", "/gpu:0", "--backend", "c"], [:], 64, ["--backend do not apply"]),
            (["bench", "--device", "/gpu:0", "--only", "bogus"], ["KILN_OPENCL_ALLOW_CPU": "1"], 64, ["no workload matches --only bogus", "eltwise_chain_16M"]),
        ]
        for c in cases {
            if c.env["KILN_OPENCL_ALLOW_CPU"] != nil, (try? DeviceLimits.describe(gpu: 0, allowCPU: true)) == nil, c.status == 64 { continue }
            let r = try run(c.args, environment: c.env)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stderr)")
            for m in c.mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' missing from stderr of \(c.args): \(r.stderr)") }
        }
    }
}
