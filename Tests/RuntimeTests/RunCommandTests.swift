import Foundation
import XCTest
import Kiln

/// `kiln run`, as the built binary.
final class RunCommandTests: KilnBinaryTestCase {
    private var frozen: String { Golden.directory.appendingPathComponent("frozen/frozen_mlp.pb").path }

    private func ioPairs() throws -> [(x: Tensor, probs: Tensor)] {
        let data = try Data(contentsOf: Golden.directory.appendingPathComponent("frozen/io.json"))
        let io = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return try (io["pairs"] as! [[String: Any]]).map { pair in
            (try Golden.tensor(pair["x:0"] as! [String: Any]), try Golden.tensor(pair["probs:0"] as! [String: Any]))
        }
    }

    func testRunOnTheFrozenMLPReproducesTensorFlowsProbsWithin1e5() throws {
        let pairs = try ioPairs()
        XCTAssertFalse(pairs.isEmpty)
        for (k, (x, want)) in pairs.enumerated() {
            let input = path("x\(k).npy")
            try NPY.write(x, path: input)
            let out = path("out\(k)")
            let r = try run(["run", frozen, "--feed", "x:0=\(input)", "--fetch", "probs:0", "x:0", "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            let got = try NPY.read(path: out + "/probs_0.npy")
            XCTAssertEqual(got.shape, want.shape)
            let worst = zip(got.doubles, want.doubles).map { Swift.abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-5)
            XCTAssertEqual(try NPY.read(path: out + "/x_0.npy"), x)

            let lines = r.stdout.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.count, 2, r.stdout)
            XCTAssertTrue(lines[0].hasPrefix("probs:0 float32 [\(want.shape[0]), 10] min="), lines[0])
            // The printed statistics are those of the fetched tensor.
            let fields = Dictionary(uniqueKeysWithValues: lines[0].split(separator: " ").compactMap { f -> (String, Double)? in
                let kv = f.split(separator: "=")
                return kv.count == 2 ? (String(kv[0]), Double(kv[1])!) : nil
            })
            let values = got.doubles
            XCTAssertEqual(fields["min"]!, values.min()!, accuracy: 1e-7)
            XCTAssertEqual(fields["max"]!, values.max()!, accuracy: 1e-7)
            XCTAssertEqual(fields["mean"]!, values.reduce(0, +) / Double(values.count), accuracy: 1e-7)
            XCTAssertEqual(fields["mean"]!, 0.1, accuracy: 1e-6)   // softmax rows sum to one
            XCTAssertTrue(lines[1].hasPrefix("x:0 float32 [\(x.shape[0]), 784] min="), lines[1])
        }
    }

    /// `--device` places every node of the imported graph; without soft placement a device the
    /// process lacks fails the run naming the node (never a silent fall back to the CPU).
    func testDeviceOptionFailsOnAnAbsentDeviceUnlessSoftPlacementAndLogsPlacement() throws {
        let (x, _) = try XCTUnwrap(ioPairs().first)
        try NPY.write(x, path: path("x.npy"))
        let base = ["run", frozen, "--feed", "x:0=\(path("x.npy"))", "--fetch", "probs:0"]
        let cpu = try run(base)
        XCTAssertEqual(cpu.status, 0, cpu.stderr)
        let hard = try run(base + ["--device", "/gpu:9"])
        XCTAssertNotEqual(hard.status, 0)
        XCTAssertTrue(hard.stderr.contains("Could not satisfy explicit device specification '/device:GPU:9' because no devices matching that specification are registered in this process; available devices: /job:localhost/replica:0/task:0/device:CPU:0"), hard.stderr)
        XCTAssertTrue(hard.stderr.contains("Cannot assign a device for operation '"), hard.stderr)
        let soft = try run(base + ["--device=/gpu:9", "--allow-soft-placement", "--log-device-placement"])
        XCTAssertEqual(soft.status, 0, soft.stderr)
        XCTAssertEqual(soft.stdout, cpu.stdout)
        let placed = soft.stderr.split(separator: "\n").filter { $0.contains(": /job:localhost/replica:0/task:0/device:") }
        XCTAssertTrue(placed.contains { $0.hasPrefix("probs: (Softmax): /job:localhost/replica:0/task:0/device:") }, soft.stderr)
    }

    /// `kiln run --device /gpu:0` on a real TensorFlow graph: every node on the OpenCL device
    /// (PoCL's CPU device where there is no GPU), results as on the CPU.
    func testDeviceGPU0RunsEveryNodeThereAndEqualsTheCPURun() throws {
        _ = try TestGPU.required("kiln run --device")
        let env = ["KILN_OPENCL_ALLOW_CPU": "1"]
        for (k, (x, want)) in try ioPairs().enumerated() {
            try NPY.write(x, path: path("x\(k).npy"))
            let args = ["run", frozen, "--feed", "x:0=\(path("x\(k).npy"))", "--fetch", "probs:0"]
            let cpu = try run(args + ["--out", path("cpu\(k)")])
            let gpu = try run(args + ["--out", path("gpu\(k)"), "--device", "/gpu:0", "--log-device-placement"], environment: env)
            XCTAssertEqual(cpu.status, 0, cpu.stderr)
            XCTAssertEqual(gpu.status, 0, gpu.stderr)
            let placed = gpu.stderr.split(separator: "\n").filter { $0.contains(": /job:localhost/replica:0/task:0/device:") }
            XCTAssertFalse(placed.isEmpty, gpu.stderr)
            for line in placed { XCTAssertTrue(line.hasSuffix("/device:GPU:0"), "not on the GPU: \(line)") }
            let a = try NPY.read(path: path("cpu\(k)/probs_0.npy")), b = try NPY.read(path: path("gpu\(k)/probs_0.npy"))
            XCTAssertEqual(a.shape, b.shape)
            let worst = zip(a.doubles, b.doubles).map { Swift.abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-5)
            XCTAssertLessThanOrEqual(zip(b.doubles, want.doubles).map { Swift.abs($0 - $1) }.max() ?? .infinity, 1e-5)
        }
    }

    func testBackendOptionCompilesWithCAndRejectsUnknownNames() throws {
        let g = Graph()
        let a = try g.placeholder(.float32, shape: [nil], name: "a")
        _ = try g.tanh(try g.multiply(a, try g.constant(Float(2))), name: "t")
        try g.writeGraphDef(toFile: path("g.pbtxt"))
        try NPY.write(Tensor(shape: [3], scalars: [0, 0.5, -1] as [Float]), path: path("a.npy"))
        let llvm = try run(["run", path("g.pbtxt"), "--feed=a=\(path("a.npy"))", "--fetch=t", "--backend", "llvm"], environment: ["KILN_DEBUG": "1"])
        let c = try run(["run", path("g.pbtxt"), "--feed=a=\(path("a.npy"))", "--fetch=t", "--backend=c"], environment: ["KILN_DEBUG": "1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertEqual(c.stdout, llvm.stdout)
        XCTAssertTrue(c.stderr.contains("with the c backend (c99 "), c.stderr)
        XCTAssertTrue(llvm.stderr.contains("with the llvm backend (llvm "), llvm.stderr)
        // KILN_BACKEND chooses when the option is absent.
        let env = try run(["run", path("g.pbtxt"), "--feed=a=\(path("a.npy"))", "--fetch=t"], environment: ["KILN_DEBUG": "1", "KILN_BACKEND": "c"])
        XCTAssertTrue(env.stderr.contains("with the c backend"), env.stderr)
        let bad = try run(["run", path("g.pbtxt"), "--fetch=t", "--backend", "gpu"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("unknown backend 'gpu': the backends are 'llvm' and 'c'"), bad.stderr)
    }

    func testRunWithoutOutWritesNoFilesAndAcceptsATextGraph() throws {
        let g = Graph()
        let a = try g.placeholder(.int32, shape: [nil], name: "a")
        _ = try g.multiply(a, try g.constant(3 as Int32), name: "tripled")
        try g.writeGraphDef(toFile: path("g.pbtxt"))
        try NPY.write(Tensor(shape: [3], scalars: [1, -2, 5] as [Int32]), path: path("a.npy"))
        let r = try run(["run", path("g.pbtxt"), "--feed=a=\(path("a.npy"))", "--fetch=tripled"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "tripled int32 [3] min=-6 max=15 mean=4\n")
        XCTAssertEqual(try files(), ["a.npy", "g.pbtxt"])
    }

    func testErrorsNameTheProblemOnStderrAndExitNonZero() throws {
        let x = path("x.npy")
        try NPY.write(Tensor(shape: [1, 784], scalars: [Float](repeating: 0, count: 784)), path: x)
        try Data((0..<300).map { UInt8(($0 * 91 + 7) % 256) }).write(to: URL(fileURLWithPath: path("garbage.pb")))
        try NPY.write(Tensor(shape: [2, 3], scalars: [Float](repeating: 0, count: 6)), path: path("small.npy"))
        let cases: [(args: [String], status: Int32, mentions: [String])] = [
            (["run", path("missing.pb"), "--fetch", "probs:0"], 1, [path("missing.pb"), "no such"]),
            (["run", frozen, "--feed", "nope:0=\(x)", "--fetch", "probs:0"], 1, ["feed 'nope:0'", "no operation named 'nope'"]),
            (["run", frozen, "--feed", "x:0=\(x)", "--fetch", "prob:0"], 1, ["fetch 'prob:0'", "'prob'"]),
            (["run", path("garbage.pb"), "--fetch", "probs:0"], 1, [path("garbage.pb"), "not a valid binary GraphDef"]),
            (["run", frozen, "--feed", "x:0=\(path("absent.npy"))", "--fetch", "probs:0"], 1, [path("absent.npy")]),
            (["run", frozen, "--feed", "x:0=\(path("small.npy"))", "--fetch", "probs:0"], 1, ["shape [2,3]", "x:0"]),
            (["run", frozen, "--fetch", "probs:0"], 1, ["You must feed", "'x'"]),
            (["run", frozen], 64, ["nothing to fetch", "Usage: kiln run"]),
            (["run", "--fetch", "probs:0"], 64, ["no graph file"]),
            (["run", frozen, "--feed", "x:0", "--fetch", "probs:0"], 64, ["NAME=FILE.npy"]),
            (["run", frozen, "--fetch", "probs:0", "--fast"], 64, ["Unknown option '--fast'"]),
        ]
        for c in cases {
            let r = try run(c.args)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "\(c.args)")
            for m in c.mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' missing from stderr of \(c.args): \(r.stderr)") }
        }
        let help = try run(["help", "run"])
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.contains("USAGE: kiln run [<graph> ...] [--feed <NAME=FILE.npy> ...] [--fetch <NAME> ...]"), help.stdout)
        XCTAssertTrue(help.stdout.contains("--out <DIR>"), help.stdout)
    }
}
