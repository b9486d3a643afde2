import Foundation
import PackagePlugin

/// Embeds the C runtime's sources (Sources/CKilnRT: the header, then every .c file in name
/// order) into the AOT module as Swift string literals, so `kiln compile` can write and build
/// the exact runtime the in-process code runs on, for any target, without the source tree.
/// `/bin/sh` does the work: the plugin needs no tool of its own built first.
@main
struct EmbedRuntime: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let runtime = context.package.directoryURL.appending(path: "Sources/CKilnRT")
        let sources = try FileManager.default.contentsOfDirectory(atPath: runtime.path)
            .filter { $0.hasSuffix(".c") }.sorted()
            .map { runtime.appending(path: $0) }
        let files = [runtime.appending(path: "include/CKilnRT.h")] + sources
        let output = context.pluginWorkDirectoryURL.appending(path: "RuntimeSources.swift")
        // Each file becomes (name: "pool.c", text: #"""<file>"""#); raw strings keep every byte.
        let script = ##"""
            out="$1"; shift
            {
              printf '// Generated from Sources/CKilnRT by the EmbedRuntime plugin: do not edit.\n'
              printf 'enum RuntimeSources {\n    static let files: [(name: String, text: String)] = [\n'
              for f in "$@"; do
                printf '        (name: "%s", text: #"""\n' "$(basename "$f")"
                cat "$f"
                printf '\n"""#),\n'
              done
              printf '    ]\n}\n'
            } > "$out.tmp" && mv "$out.tmp" "$out"
            """##
        return [.buildCommand(displayName: "Embedding the C runtime's sources", executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: ["-c", script, "embed"] + [output.path] + files.map(\.path),
                              inputFiles: files, outputFiles: [output])]
    }
}
