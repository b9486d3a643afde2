import ArgumentParser
import Kiln

/// `kiln`: the command-line front of Kiln. Help (`kiln --help`, `kiln help CMD`, `kiln CMD --help`)
/// and usage errors (exit 64) come from swift-argument-parser; any other error is printed as
/// "Error: ..." with exit 1.
struct KilnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Kiln: TensorFlow-1-style graphs compiled to native code.",
        // A new subcommand is one line here.
        subcommands: [
            Bench.self,
            Scale.self,
            Devices.self,
            Run.self,
            Compile.self,
            Inspect.self,
            DebugGraph.self,
        ])
}

KilnCommand.main()
