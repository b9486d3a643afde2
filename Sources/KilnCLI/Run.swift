import Foundation
import Kiln

/// `kiln run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR]`: imports a
/// GraphDef, feeds .npy files, runs the fetches once and prints one line per fetch (name, dtype,
/// shape, min, max, mean); with --out, also writes each fetch to DIR/<name, ':' -> '_'>.npy.
/// `--device /gpu:0` places every node without a device there (TensorFlow's import under
/// `tf.device`); a node that cannot run there fails the run unless `--allow-soft-placement`.
/// `/gpu:N` counts OpenCL GPUs, and CPU OpenCL devices too with KILN_OPENCL_ALLOW_CPU=1.
enum Run {
    static let usage = "usage: kiln run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR] [--backend llvm|c] [--device DEVICE [--allow-soft-placement] [--log-device-placement]]"

    struct Options {
        var graph: String
        var feeds: [(name: String, file: String)]
        var fetches: [String]
        var out: String?
        var backend: BackendKind?
        var device: String?
        var allowSoftPlacement: Bool
        var logDevicePlacement: Bool
    }

    static func parse(_ args: [String]) throws -> Options {
        let o = try KilnCLI.Options.parse(args, command: "run", accepting: ["--feed", "--fetch", "--out", "--backend", "--device", "--allow-soft-placement", "--log-device-placement"])
        guard o.graphs.count == 1 else {
            throw UsageError(command: "run", message: o.graphs.isEmpty ? "no graph file given" : "one graph file expected, got \(o.graphs.count): \(o.graphs.joined(separator: " "))")
        }
        guard !o.fetches.isEmpty else { throw UsageError(command: "run", message: "nothing to fetch (give --fetch NAME)") }
        return Options(graph: o.graphs[0], feeds: o.feeds, fetches: o.fetches, out: o.out, backend: o.backend, device: o.device,
                       allowSoftPlacement: o.allowSoftPlacement, logDevicePlacement: o.logDevicePlacement)
    }

    /// A GraphDef imported with its feeds read and its fetches resolved (shared with `kiln bench GRAPH`).
    /// With `device`, nodes without a device of their own are placed there.
    static func load(graph path: String, feeds feedFiles: [(name: String, file: String)], fetches names: [String],
                     device: String? = nil) throws -> (Graph, [Output: Tensor], [Output]) {
        let g = Graph()
        let def = try GraphDefFile.read(path: path)
        if let device { try g.device(device) { _ = try g.importGraphDef(def, prefix: "") } } else { try g.importGraphDef(def, prefix: "") }
        var feeds: [Output: Tensor] = [:]
        for (name, file) in feedFiles {
            let tensor = try described("feed '\(name)'") { try g.tensor(named: name) }
            feeds[tensor] = try described("feed '\(name)'") { try NPY.read(path: file) }
        }
        let fetches = try names.map { name in try described("fetch '\(name)'") { try g.tensor(named: name) } }
        return (g, feeds, fetches)
    }

    static func run(_ args: [String]) throws {
        let o = try parse(args)
        let (g, feeds, fetches) = try load(graph: o.graph, feeds: o.feeds, fetches: o.fetches, device: o.device)
        let config = SessionConfig(allowSoftPlacement: o.allowSoftPlacement, logDevicePlacement: o.logDevicePlacement, backend: o.backend)
        let values = try Session(graph: g, config: config).run(fetches, feeds: feeds)
        for (name, t) in zip(o.fetches, values) {
            if let dir = o.out {
                let file = (dir as NSString).appendingPathComponent(name.replacingOccurrences(of: ":", with: "_") + ".npy")
                try NPY.write(t, path: file)
            }
            print(summary(name, t))
        }
    }

    /// "probs:0 float32 [2, 10] min=1.2e-05 max=0.98 mean=0.1"; strings and empty tensors have
    /// no statistics.
    static func summary(_ name: String, _ t: Tensor) -> String {
        let head = "\(name) \(t.dtype.name) [\(t.shape.map(String.init).joined(separator: ", "))]"
        guard t.dtype != .string, t.elementCount > 0 else { return head + " min=n/a max=n/a mean=n/a" }
        let values = t.doubles
        // numpy's spelling of the special values, and its min/max: NaN if any element is NaN.
        let number = { (v: Double) in v.isNaN ? "nan" : String(format: "%.9g", v) }
        let hasNaN = values.contains { $0.isNaN }
        let lo = hasNaN ? .nan : values.min()!, hi = hasNaN ? .nan : values.max()!
        return head + " min=\(number(lo)) max=\(number(hi)) mean=\(number(values.reduce(0, +) / Double(values.count)))"
    }

    /// Runs `body`, putting `what` in front of a KilnError's message.
    private static func described<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as KilnError { throw KilnError(e.code, "\(what): \(e.message)") }
    }
}
