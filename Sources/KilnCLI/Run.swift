import Foundation
import Kiln

/// `kiln run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR]`: imports a
/// GraphDef, feeds .npy files, runs the fetches once and prints one line per fetch (name, dtype,
/// shape, min, max, mean); with --out, also writes each fetch to DIR/<name, ':' -> '_'>.npy.
enum Run {
    static let usage = "usage: kiln run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR]"

    /// A command line that cannot be run as written (exit status 2).
    struct UsageError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    struct Options {
        var graph = ""
        var feeds: [(name: String, file: String)] = []
        var fetches: [String] = []
        var out: String?
    }

    /// Options as `--name value` or `--name=value`; `--fetch` takes every name up to the next option.
    static func parse(_ args: [String]) throws -> Options {
        var o = Options()
        var graphs: [String] = []
        var i = 0
        func value(_ flag: String, inline: String?) throws -> String {
            if let inline { return inline }
            i += 1
            guard i < args.count, !args[i].hasPrefix("--") else { throw UsageError(message: "\(flag) needs a value") }
            return args[i]
        }
        while i < args.count {
            let arg = args[i]
            let (flag, inline): (String, String?) = {
                guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return (arg, nil) }
                return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
            }()
            switch flag {
            case "--feed":
                let spec = try value(flag, inline: inline)
                guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
                    throw UsageError(message: "--feed takes NAME=FILE.npy, got '\(spec)'")
                }
                o.feeds.append((String(spec[..<eq]), String(spec[spec.index(after: eq)...])))
            case "--fetch":
                o.fetches.append(try value(flag, inline: inline))
                while inline == nil, i + 1 < args.count, !args[i + 1].hasPrefix("--") {
                    i += 1
                    o.fetches.append(args[i])
                }
            case "--out":
                o.out = try value(flag, inline: inline)
            default:
                if arg.hasPrefix("-") { throw UsageError(message: "unknown option '\(arg)'") }
                graphs.append(arg)
            }
            i += 1
        }
        guard graphs.count == 1 else {
            throw UsageError(message: graphs.isEmpty ? "no graph file given" : "one graph file expected, got \(graphs.count): \(graphs.joined(separator: " "))")
        }
        guard !o.fetches.isEmpty else { throw UsageError(message: "nothing to fetch (give --fetch NAME)") }
        o.graph = graphs[0]
        return o
    }

    static func run(_ args: [String]) throws {
        let o = try parse(args)
        let g = Graph()
        try g.importGraphDef(GraphDefFile.read(path: o.graph), prefix: "")
        var feeds: [Output: Tensor] = [:]
        for (name, file) in o.feeds {
            let tensor = try described("feed '\(name)'") { try g.tensor(named: name) }
            feeds[tensor] = try described("feed '\(name)'") { try NPY.read(path: file) }
        }
        let fetches = try o.fetches.map { name in try described("fetch '\(name)'") { try g.tensor(named: name) } }
        let values = try Session(graph: g).run(fetches, feeds: feeds)
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
        let number = { (v: Double) in String(format: "%.9g", v) }
        return head + " min=\(number(values.min()!)) max=\(number(values.max()!)) mean=\(number(values.reduce(0, +) / Double(values.count)))"
    }

    /// Runs `body`, putting `what` in front of a KilnError's message.
    private static func described<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as KilnError { throw KilnError(e.code, "\(what): \(e.message)") }
    }
}
