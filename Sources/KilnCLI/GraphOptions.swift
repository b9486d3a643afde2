import ArgumentParser
import Kiln

/// One `--feed NAME=VALUE`: the tensor's name and what feeds it (a .npy file for `kiln run` and
/// `kiln bench`, `DTYPE[d0,...]` for `kiln compile`), split at the first '='.
struct Feed {
    var name: String
    var value: String

    /// A usage error (exit 64) when `spec` is not NAME=VALUE; `expected` spells VALUE for the message.
    static func parse(_ spec: String, expected: String, hint: String = "") throws -> Feed {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else {
            throw ValidationError("--feed takes NAME=\(expected), got '\(spec)'\(hint)")
        }
        return Feed(name: String(spec[..<eq]), value: String(spec[spec.index(after: eq)...]))
    }
}

/// The options of a command that runs a GraphDef: the graph file, `--feed NAME=FILE.npy`
/// (repeatable), `--fetch NAME...` (every name up to the next option; repeatable) and `--backend`.
struct GraphRunOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The GraphDef file (binary .pb or text .pbtxt).", valueName: "graph"))
    var graphs: [String] = []

    @Option(name: .customLong("feed"), help: ArgumentHelp("Feed the tensor NAME from a .npy file (repeatable).", valueName: "NAME=FILE.npy"),
            transform: { try Feed.parse($0, expected: "FILE.npy") })
    var feeds: [Feed] = []

    @Option(name: .customLong("fetch"), parsing: .upToNextOption, help: ArgumentHelp("The tensors to fetch: every name up to the next option.", valueName: "NAME"))
    var fetches: [String] = []

    @OptionGroup var backend: BackendOption

    /// The graph file, when the command takes at most one (usage errors otherwise).
    func singleGraph(required: Bool) throws -> String? {
        if graphs.count > 1 { throw ValidationError("one graph file expected, got \(graphs.count): \(graphs.joined(separator: " "))") }
        if required && graphs.isEmpty { throw ValidationError("no graph file given") }
        return graphs.first
    }

    var feedFiles: [(name: String, file: String)] { feeds.map { ($0.name, $0.value) } }
}

/// `--backend llvm|c`: the code generator every session of the command compiles with (absent: KILN_BACKEND).
struct BackendOption: ParsableArguments {
    @Option(name: .customLong("backend"), help: ArgumentHelp("The code generator: llvm or c (default: KILN_BACKEND, else llvm).", valueName: "llvm|c"),
            transform: { try BackendKind(named: $0) })
    var kind: BackendKind?
}

/// `--only NAME[,NAME...]` and `--sizes N[,N...]`: comma-separated lists.
func commaList(_ value: String) -> [String] {
    value.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
}
