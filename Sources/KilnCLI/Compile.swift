import ArgumentParser
import Foundation
import Kiln

/// `kiln compile GRAPH --feed NAME=DTYPE[d0,...]... --fetch NAME... --name NAME --out DIR
/// [--checkpoint PREFIX] [--target TRIPLE] [--cpu CPU] [--emit object|c]`: compiles the graph
/// ahead of time into files that link with a plain C compiler (ArtifactCompiler), and prints
/// each file written with its size, then the compile time.
struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a graph ahead of time into files that link with a plain C compiler.",
        discussion: """
            Writes DIR/NAME.o (or NAME.c with --emit c), the runtime library it calls (if any), DIR/NAME.h and \
            DIR/NAME.swift; variables become constants from the checkpoint; links with `cc ... -lm -lpthread`.
            """)

    @Argument(help: ArgumentHelp("The graph: a GraphDef (.pb, .pbtxt) or a MetaGraphDef (.meta).", valueName: "graph"))
    var graphs: [String] = []

    @Option(name: .customLong("feed"), help: ArgumentHelp("A feed with its dtype and concrete shape, e.g. x=float32[1,784] ([] for a scalar; repeatable).",
                                                         valueName: "NAME=DTYPE[d0,d1,...]"),
            transform: { spec in
                try Feed.parse(spec, expected: "DTYPE[d0,d1,...]",
                               hint: ": feed '\(spec)' needs a dtype and a concrete shape (e.g. x=float32[1,784], [] for a scalar)")
            })
    var feeds: [Feed] = []

    @Option(name: .customLong("fetch"), parsing: .upToNextOption, help: ArgumentHelp("The tensors the artifact returns: every name up to the next option.", valueName: "NAME"))
    var fetches: [String] = []

    @Option(help: ArgumentHelp("The artifact's name, a C identifier: the symbols are NAME_run, ...", valueName: "NAME"))
    var name: String?

    @Option(help: ArgumentHelp("The output directory.", valueName: "DIR"))
    var out: String?

    @Option(help: ArgumentHelp("The checkpoint whose values the variables become.", valueName: "PREFIX"))
    var checkpoint: String?

    @Option(help: ArgumentHelp("The target triple (default: this machine's).", valueName: "TRIPLE"))
    var target: String?

    @Option(help: ArgumentHelp("The target CPU (default: this machine's for its own triple).", valueName: "CPU"))
    var cpu: String?

    @Option(help: ArgumentHelp("What to emit: an object file or one C file.", valueName: "object|c"))
    var emit: String = "object"

    func validate() throws {
        guard graphs.count == 1 else {
            throw ValidationError(graphs.isEmpty ? "no graph file given" : "one graph file expected, got \(graphs.count): \(graphs.joined(separator: " "))")
        }
        guard !fetches.isEmpty else { throw ValidationError("nothing to fetch (give --fetch NAME)") }
        guard name != nil else { throw ValidationError("no artifact name (give --name NAME, a C identifier: the symbols are NAME_run, ...)") }
        guard out != nil else { throw ValidationError("no output directory (give --out DIR)") }
        guard ArtifactCompiler.emitNames.contains(emit) else {
            throw ValidationError("--emit takes \(ArtifactCompiler.emitNames.joined(separator: " or ")), got '\(emit)'")
        }
    }

    /// What `validate` admitted, as the driver's request (it parses NAME=DTYPE[dims] whole).
    var request: ArtifactCompiler.Request {
        ArtifactCompiler.Request(graph: graphs[0], feeds: feeds.map { "\($0.name)=\($0.value)" }, fetches: fetches, name: name ?? "",
                                 directory: out ?? "", checkpoint: checkpoint, triple: target, cpu: cpu, emit: emit)
    }

    func run() throws {
        let r = try ArtifactCompiler.compile(request)
        for (path, bytes) in r.files { print("wrote \(path) (\(bytes) bytes)") }
        print(String(format: "compiled in %.0f ms (graph and freezing %.0f, plan %.0f, code %.0f, runtime library %.0f); arena %d bytes, constants %d bytes",
                     r.totalMs, r.frontMs, r.planMs, r.codeMs, r.libraryMs, r.arenaBytes, r.constantBytes))
    }
}
