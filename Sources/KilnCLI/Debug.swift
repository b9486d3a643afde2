import ArgumentParser
import Foundation
import Kiln

/// `kiln debug GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--until FILTER]`:
/// tfdbg for a GraphDef. With `--until has_inf_or_nan` it runs the step once and prints the
/// matching tensors in execution order, one per line starting with the tensor's name (the first
/// is where the NaN or Inf arose); without it, it opens the `tfdbg>` prompt on stdin and stdout.
struct DebugGraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Run a GraphDef under the debugger: find the first NaN or Inf, or open the tfdbg> prompt.",
        discussion: "With --until has_inf_or_nan, prints the matching tensors in execution order (one per line, name first) and exits; without --until, reads tfdbg commands (run -f has_inf_or_nan, lt, ni, li, pt, help, exit) from stdin.")

    @OptionGroup var graph: GraphRunOptions

    @Option(help: ArgumentHelp("Run once and print the tensors this filter matches (has_inf_or_nan).", valueName: "FILTER"))
    var until: String?

    func validate() throws {
        _ = try graph.singleGraph(required: true)
        guard !graph.fetches.isEmpty else { throw ValidationError("nothing to fetch (give --fetch NAME)") }
    }

    func run() throws {
        try DebugCommand.run(graph: graph.graphs[0], feeds: graph.feedFiles, fetches: graph.fetches, until: until, backend: graph.backend.kind)
    }
}

/// The logic of `kiln debug`, on already-parsed values.
enum DebugCommand {
    static func run(graph path: String, feeds feedFiles: [(name: String, file: String)], fetches names: [String], until: String?,
                    backend: BackendKind?, input: () -> String? = { readLine() },
                    output: (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) throws {
        let (g, feeds, fetches) = try Run.load(graph: path, feeds: feedFiles, fetches: names)
        let debug = DebugSession(wrapping: try Session(graph: g, config: SessionConfig(backend: backend)))
        guard let until else {
            return debug.interactive(fetches: fetches, feeds: feeds, input: input, output: output)
        }
        let run = try debug.run(fetches, feeds: feeds, until: until)
        for t in run.matches { output(DebugSession.matchLine(t) + "\n") }
        if run.matches.isEmpty { FileHandle.standardError.write(Data("kiln debug: no tensor matched \(until)\n".utf8)) }
    }
}
