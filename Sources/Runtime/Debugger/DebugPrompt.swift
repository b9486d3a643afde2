import KilnIR
import KilnFrontend

/// tfdbg's command line over a DebugSession: `run [-f FILTER]`, `lt`, `ni NODE`,
/// `li NODE [-d N]`, `pt TENSOR[SLICE]`, `help`, `exit`.
extension DebugSession {
    public static let promptHelp = """
    run [-f FILTER]     run the step; with a filter (has_inf_or_nan, or one added with
                        addTensorFilter) list the matching tensors in execution order
    lt                  list the tensors of the last run: execution order, name, op, dtype, shape
    ni NODE             node info: op, device, inputs, consumers, attributes, where it was made
    li NODE [-d N]      the inputs of NODE as a tree, N levels deep (1)
    pt TENSOR[SLICE]    print a tensor of the last run, e.g. pt scope/Log:0[0:2, :]
    help                this text
    exit                leave
    """

    /// Reads commands from `input` (one line per call, nil at the end) until `exit` or the end,
    /// writing prompts and answers to `output`. `run` runs the given step.
    public func interactive(fetches: [Output], feeds: [Output: Tensor] = [:], targets: [KilnFrontend.Operation] = [],
                            input: () -> String? = { readLine() }, output: (String) -> Void = { print($0, terminator: "") }) {
        func say(_ text: String) { output(text + "\n") }
        while true {
            output("tfdbg> ")
            guard let line = input() else { output("\n"); return }
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let command = words.first else { continue }
            do {
                switch command {
                case "exit", "quit": return
                case "help", "h": say(Self.promptHelp)
                case "run", "r":
                    var filter: String?
                    if let f = words.firstIndex(where: { $0 == "-f" || $0 == "--till_filter_pass" }) {
                        guard f + 1 < words.count else { throw KilnError.invalidArgument("run -f needs a filter name") }
                        filter = words[f + 1]
                    }
                    let run = try self.run(fetches, feeds: feeds, targets: targets, until: filter)
                    if let filter {
                        say("\(run.matches.count) tensor(s) matched \(filter)" + (run.matches.isEmpty ? "" : ", in execution order (the first is where it arose):"))
                        for t in run.matches { say(Self.matchLine(t)) }
                    } else {
                        say("ran: \(lastRunTensors.count) tensor(s); fetched " + zip(fetches, run.results).map { "\($0.0.name) \($0.1.dtype.name)\(Shape($0.1.shape))" }.joined(separator: ", "))
                    }
                case "lt":
                    guard !lastRunTensors.isEmpty else { say("no run yet: use run"); continue }
                    let matched = Set(lastMatches.map(\.name))
                    say("order  tensor  op  dtype  shape")
                    for t in lastRunTensors { say("#\(t.executionIndex)  \(t.name)\(matched.contains(t.name) ? " *" : "")  \(t.op)  \(t.dtype.name)  \(t.shape)") }
                case "ni":
                    guard words.count >= 2 else { throw KilnError.invalidArgument("usage: ni NODE") }
                    say(try nodeInfo(words[1]).description)
                case "li":
                    guard words.count >= 2 else { throw KilnError.invalidArgument("usage: li NODE [-d N]") }
                    var depth = 1
                    if let d = words.firstIndex(where: { $0 == "-d" || $0 == "--depth" }) {
                        guard d + 1 < words.count, let n = Int(words[d + 1]) else { throw KilnError.invalidArgument("li -d needs a number") }
                        depth = n
                    }
                    say(try listInputs(words[1], depth: depth))
                case "pt":
                    let rest = line.drop(while: { $0 == " " }).dropFirst(2).trimmingCharacters(in: .whitespaces)
                    guard !rest.isEmpty else { throw KilnError.invalidArgument("usage: pt TENSOR[SLICE]") }
                    let name = rest.prefix(while: { $0 != "[" }).trimmingCharacters(in: .whitespaces)
                    say(try printTensor(name, slice: String(rest.drop(while: { $0 != "[" }))))
                default:
                    say("unknown command '\(command)'; help lists the commands")
                }
            } catch {
                say("error: \(error)")
            }
        }
    }

    /// One matching tensor on a line that starts with its name: name, op, dtype, shape,
    /// position in execution order, and the node's source location when known.
    public static func matchLine(_ t: DebugTensor) -> String {
        "\(t.name)  \(t.op)  \(t.dtype.name)\(t.shape)  #\(t.executionIndex)"
    }
}
