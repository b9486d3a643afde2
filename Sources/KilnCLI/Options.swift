import Kiln

/// A command line that cannot be run as written (exit status 2, with the command's usage).
struct UsageError: Error, CustomStringConvertible {
    let command: String
    let message: String
    var description: String { message }
}

/// The options of `kiln run`, `kiln bench` and `kiln compile`: a graph file, `--feed NAME=FILE.npy`
/// (`NAME=DTYPE[dims]` for compile; repeatable),
/// `--fetch NAME...` (every name up to the next option), `--backend llvm|c`, `--device DEVICE`
/// with `--allow-soft-placement` and `--log-device-placement`, and flags each
/// command opts into.
/// Options are `--name value` or `--name=value`.
struct Options {
    var graphs: [String] = []
    var feeds: [(name: String, file: String)] = []
    var fetches: [String] = []
    var out: String?
    var json: String?
    var only: [String]?
    var quick = false
    /// The code generator every session of the command compiles with (nil: KILN_BACKEND).
    var backend: BackendKind?
    /// `--device /gpu:0`: the device of every node the graph does not place itself (as
    /// importing it under `tf.device`).
    var device: String?
    var allowSoftPlacement = false
    var logDevicePlacement = false
    /// `kiln compile`'s: the artifact's name, checkpoint prefix, target triple, CPU, what to emit.
    var name: String?
    var checkpoint: String?
    var target: String?
    var cpu: String?
    var emit: String?

    static func parse(_ args: [String], command: String, accepting accepted: Set<String>) throws -> Options {
        var o = Options()
        var i = 0
        func fail(_ message: String) -> UsageError { UsageError(command: command, message: message) }
        func value(_ flag: String, inline: String?) throws -> String {
            if let inline { return inline }
            i += 1
            guard i < args.count, !args[i].hasPrefix("--") else { throw fail("\(flag) needs a value") }
            return args[i]
        }
        while i < args.count {
            let arg = args[i]
            let (flag, inline): (String, String?) = {
                guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return (arg, nil) }
                return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
            }()
            if flag.hasPrefix("-") && !accepted.contains(flag) { throw fail("unknown option '\(arg)'") }
            switch flag {
            case "--feed":
                let spec = try value(flag, inline: inline)
                guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
                    throw fail(command == "compile" ? "--feed takes NAME=DTYPE[d0,d1,...], got '\(spec)': feed '\(spec)' needs a dtype and a concrete shape (e.g. x=float32[1,784], [] for a scalar)"
                                                    : "--feed takes NAME=FILE.npy, got '\(spec)'")
                }
                o.feeds.append((String(spec[..<eq]), String(spec[spec.index(after: eq)...])))
            case "--fetch":
                o.fetches.append(try value(flag, inline: inline))
                while inline == nil, i + 1 < args.count, !args[i + 1].hasPrefix("--") {
                    i += 1
                    o.fetches.append(args[i])
                }
            case "--out": o.out = try value(flag, inline: inline)
            case "--json": o.json = try value(flag, inline: inline)
            case "--only": o.only = try value(flag, inline: inline).split(separator: ",").map(String.init)
            case "--quick": o.quick = true
            case "--device": o.device = try value(flag, inline: inline)
            case "--allow-soft-placement": o.allowSoftPlacement = true
            case "--log-device-placement": o.logDevicePlacement = true
            case "--name": o.name = try value(flag, inline: inline)
            case "--checkpoint": o.checkpoint = try value(flag, inline: inline)
            case "--target": o.target = try value(flag, inline: inline)
            case "--cpu": o.cpu = try value(flag, inline: inline)
            case "--emit": o.emit = try value(flag, inline: inline)
            case "--backend":
                let name = try value(flag, inline: inline)
                do { o.backend = try BackendKind(named: name) } catch let e as KilnError { throw fail(e.message) }
            default: o.graphs.append(arg)
            }
            i += 1
        }
        return o
    }
}
