import Foundation
import Kiln

/// `kiln compile GRAPH --feed NAME=DTYPE[d0,...]... --fetch NAME... --name NAME --out DIR
/// [--checkpoint PREFIX] [--target TRIPLE] [--cpu CPU] [--emit object|c]`: compiles the graph
/// ahead of time into files that link with a plain C compiler (ArtifactCompiler), and prints
/// each file written with its size, then the compile time.
enum Compile {
    static let usage = "usage: kiln compile GRAPH.(pb|pbtxt|meta) --feed NAME=DTYPE[d0,d1,...]... --fetch NAME... --name NAME --out DIR [--checkpoint PREFIX] [--target TRIPLE] [--cpu CPU] [--emit object|c]"

    static func parse(_ args: [String]) throws -> ArtifactCompiler.Request {
        let o = try Options.parse(args, command: "compile", accepting: ["--feed", "--fetch", "--name", "--out", "--checkpoint", "--target", "--cpu", "--emit"])
        func fail(_ m: String) -> UsageError { UsageError(command: "compile", message: m) }
        guard o.graphs.count == 1 else {
            throw fail(o.graphs.isEmpty ? "no graph file given" : "one graph file expected, got \(o.graphs.count): \(o.graphs.joined(separator: " "))")
        }
        guard !o.fetches.isEmpty else { throw fail("nothing to fetch (give --fetch NAME)") }
        guard let name = o.name else { throw fail("no artifact name (give --name NAME, a C identifier: the symbols are NAME_run, ...)") }
        guard let out = o.out else { throw fail("no output directory (give --out DIR)") }
        if let emit = o.emit, !ArtifactCompiler.emitNames.contains(emit) {
            throw fail("--emit takes \(ArtifactCompiler.emitNames.joined(separator: " or ")), got '\(emit)'")
        }
        // Options splits --feed at '='; the driver parses NAME=DTYPE[dims] whole.
        return ArtifactCompiler.Request(graph: o.graphs[0], feeds: o.feeds.map { "\($0.name)=\($0.file)" }, fetches: o.fetches, name: name,
                                        directory: out, checkpoint: o.checkpoint, triple: o.target, cpu: o.cpu, emit: o.emit ?? "object")
    }

    static func run(_ args: [String]) throws {
        let r = try ArtifactCompiler.compile(parse(args))
        for (path, bytes) in r.files { print("wrote \(path) (\(bytes) bytes)") }
        print(String(format: "compiled in %.0f ms (graph and freezing %.0f, plan %.0f, code %.0f, runtime library %.0f); arena %d bytes, constants %d bytes",
                     r.totalMs, r.frontMs, r.planMs, r.codeMs, r.libraryMs, r.arenaBytes, r.constantBytes))
    }
}
