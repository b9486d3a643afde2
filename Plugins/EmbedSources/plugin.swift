import Foundation
import PackagePlugin

/// Embeds source files into a module as Swift string literals, so the built binary can write
/// them out anywhere without the source tree:
/// - KilnAOT: the C runtime's sources (Sources/CKilnRT: the header, then every .c file in name
///   order) as `RuntimeSources`, so `kiln compile` can write and build the exact runtime the
///   in-process code runs on, for any target;
/// - KilnCLI: the peers' benchmark scripts (scripts/peers/*.py, name order) as `PeerScripts`,
///   which `kiln bench --peers` writes to a temporary directory and runs with the user's Python.
/// `/bin/sh` does the work: the plugin needs no tool of its own built first.
@main
struct EmbedSources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        func files(in dir: String, suffix: String) throws -> [URL] {
            let url = root.appending(path: dir)
            return try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(suffix) }.sorted().map { url.appending(path: $0) }
        }
        let (enumName, from, inputs): (String, String, [URL])
        switch target.name {
        case "KilnAOT":
            (enumName, from, inputs) = ("RuntimeSources", "Sources/CKilnRT", [root.appending(path: "Sources/CKilnRT/include/CKilnRT.h")] + (try files(in: "Sources/CKilnRT", suffix: ".c")))
        case "KilnCLI":
            (enumName, from, inputs) = ("PeerScripts", "scripts/peers", try files(in: "scripts/peers", suffix: ".py"))
        default:
            throw PluginError.unknownTarget(target.name)
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "\(enumName).swift")
        // Each file becomes (name: "pool.c", text: #"""<file>"""#); raw strings keep every byte.
        let script = ##"""
            out="$1"; name="$2"; from="$3"; shift 3
            {
              printf '// Generated from %s by the EmbedSources plugin: do not edit.\n' "$from"
              printf 'enum %s {\n    static let files: [(name: String, text: String)] = [\n' "$name"
              for f in "$@"; do
                printf '        (name: "%s", text: #"""\n' "$(basename "$f")"
                cat "$f"
                printf '\n"""#),\n'
              done
              printf '    ]\n}\n'
            } > "$out.tmp" && mv "$out.tmp" "$out"
            """##
        return [.buildCommand(displayName: "Embedding \(from) as \(enumName)", executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: ["-c", script, "embed", output.path, enumName, from] + inputs.map(\.path),
                              inputFiles: inputs, outputFiles: [output])]
    }

    enum PluginError: Error, CustomStringConvertible {
        case unknownTarget(String)
        var description: String {
            switch self { case .unknownTarget(let name): return "EmbedSources knows what to embed for KilnAOT and KilnCLI, not \(name)" }
        }
    }
}
