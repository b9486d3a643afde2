import ArgumentParser
import Foundation
import Kiln

/// `kiln run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR]`: imports a
/// GraphDef, feeds .npy files, runs the fetches once and prints one line per fetch (name, dtype,
/// shape, min, max, mean); with --out, also writes each fetch to DIR/<name, ':' -> '_'>.npy.
/// `--device /gpu:0` places every node without a device there (TensorFlow's import under
/// `tf.device`); a node that cannot run there fails the run unless `--allow-soft-placement`.
/// `/gpu:N` counts OpenCL GPUs, and CPU OpenCL devices too with KILN_OPENCL_ALLOW_CPU=1.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a GraphDef, feed .npy files, print name, dtype, shape, min, max and mean of each fetch.",
        discussion: "With --out DIR each fetch is also written to DIR/<name, ':' as '_'>.npy.")

    @OptionGroup var graph: GraphRunOptions

    @Option(help: ArgumentHelp("Also write each fetch to DIR/<name, ':' as '_'>.npy.", valueName: "DIR"))
    var out: String?

    @Option(help: ArgumentHelp("Place every node without a device there, as importing under tf.device (/gpu:N counts OpenCL GPUs).", valueName: "DEVICE"))
    var device: String?

    @Flag(help: "Run a node that cannot run on its device on the CPU instead of failing.")
    var allowSoftPlacement = false

    @Flag(help: "Print each node's device on stderr.")
    var logDevicePlacement = false

    func validate() throws {
        _ = try graph.singleGraph(required: true)
        guard !graph.fetches.isEmpty else { throw ValidationError("nothing to fetch (give --fetch NAME)") }
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

    func run() throws {
        let (g, feeds, fetches) = try Run.load(graph: graph.graphs[0], feeds: graph.feedFiles, fetches: graph.fetches, device: device)
        let config = SessionConfig(allowSoftPlacement: allowSoftPlacement, logDevicePlacement: logDevicePlacement, backend: graph.backend.kind)
        let values = try Session(graph: g, config: config).run(fetches, feeds: feeds)
        for (name, t) in zip(graph.fetches, values) {
            if let dir = out {
                let file = (dir as NSString).appendingPathComponent(name.replacingOccurrences(of: ":", with: "_") + ".npy")
                try NPY.write(t, path: file)
            }
            print(Run.summary(name, t))
        }
    }

    /// "probs:0 float32 [2, 10] min=1.2e-05 max=0.98 mean=0.1"; strings and empty tensors have
    /// no statistics.
    static func summary(_ name: String, _ t: Tensor) -> String {
        "\(name) \(t.dtype.name) [\(t.shape.map(String.init).joined(separator: ", "))] " + TensorStatistics.line(t)
    }

    /// Runs `body`, putting `what` in front of a KilnError's message.
    private static func described<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as KilnError { throw KilnError(e.code, "\(what): \(e.message)") }
    }
}
