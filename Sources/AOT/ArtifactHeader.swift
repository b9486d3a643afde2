import KilnIR

/// `NAME.h`: the artifact's interface in plain C (C99, C++ through `extern "C"`, Swift through a
/// C module or `-import-objc-header`): a comment block with the logical signature, memory
/// figures, target and link line (as tfcompile's headers have), macros for every feed and fetch,
/// the error codes, and the four functions' prototypes.
enum ArtifactHeader {
    /// `NAME.h`; `library` is the runtime library's file name when there is one (for the link line).
    static func source(_ layout: ArtifactLayout, library: String?) -> String {
        let name = layout.spec.name, N = ArtifactCText.macroPrefix(layout)
        let guardName = "KILN_ARTIFACT_\(N)_H"
        var lines: [String] = []
        lines += commentBlock(layout, library: library)
        lines += ["#ifndef \(guardName)", "#define \(guardName)", "", "#include <stddef.h>", ""]

        lines += ["/* Counts; the arena \(name)_run_with_arena takes (\(N)_ARENA_BYTES may be 0: then NULL will do); constant bytes. */",
                  "#define \(N)_FEED_COUNT \(layout.spec.feeds.count)",
                  "#define \(N)_FETCH_COUNT \(layout.spec.fetches.count)",
                  "#define \(N)_ARENA_BYTES \(layout.arenaBytes)",
                  "#define \(N)_ARENA_ALIGNMENT 64",
                  "#define \(N)_CONSTANT_BYTES \(layout.constantBytes)", ""]
        lines += ["/* Error codes (TensorFlow's status codes). */",
                  "#define \(N)_OK 0",
                  "#define \(N)_ERROR_INVALID_ARGUMENT 3",
                  "#define \(N)_ERROR_RESOURCE_EXHAUSTED 8", ""]
        lines += tensorMacros(N, "FEED", layout.spec.feeds)
        lines += tensorMacros(N, "FETCH", layout.spec.fetches)

        lines += ["#ifdef __cplusplus", "extern \"C\" {", "#endif", ""]
        lines += prototypes(layout)
        lines += ["#ifdef __cplusplus", "}", "#endif", "", "#endif /* \(guardName) */", ""]
        return lines.joined(separator: "\n")
    }

    /// tfcompile-style summary: what the artifact computes, what it needs, how to link it.
    static func commentBlock(_ layout: ArtifactLayout, library: String?) -> [String] {
        let spec = layout.spec, name = spec.name
        var c = ["\(name).h: the graph compiled ahead of time by `kiln compile` (Kiln).",
                 "",
                 "Logical signature: \(name)_run(feeds, fetches), dense row-major buffers, in this order:"]
        func rows(_ title: String, _ tensors: [ArtifactTensor]) {
            c.append("  \(title):")
            if tensors.isEmpty { c.append("    (none)") }
            let nameWidth = tensors.map { $0.name.count }.max() ?? 0
            let typeWidth = tensors.map { ArtifactCText.signature($0.type).count }.max() ?? 0
            for (k, t) in tensors.enumerated() {
                let n = t.name.padding(toLength: max(nameWidth, t.name.count), withPad: " ", startingAt: 0)
                let s = ArtifactCText.signature(t.type)
                let ty = s.padding(toLength: max(typeWidth, s.count), withPad: " ", startingAt: 0)
                c.append("    [\(k)] \(n)  \(ty)  \(t.type.byteCount) bytes  (\(t.identifier))")
            }
        }
        rows("feeds", spec.feeds)
        rows("fetches", spec.fetches)
        c += ["",
              "Memory:",
              "  arena      \(layout.arenaBytes) bytes (values live at once\(layout.faultRecordOffset == nil ? "" : " and the run-time check record")), 64-byte aligned",
              "  constants  \(layout.constantBytes) bytes (weights and folded tensors, compiled into the code)",
              ""]
        switch layout.emit {
        case .object:
            c.append("Target: \(spec.target.triple), CPU \(spec.target.name)")
        case .c:
            c.append("Target: portable C99 (any C compiler; single-threaded)")
        }
        c += ["Origin: \(spec.origin)", "", "Link:"]
        switch layout.emit {
        case .object:
            c.append("  cc main.c \(name).o\(library.map { " " + $0 } ?? "") -lm -lpthread")
        case .c:
            c.append("  cc -O2 -std=c99 main.c \(name).c -lm")
        }
        return ["/*"] + c.map { $0.isEmpty ? " *" : " * " + ArtifactCText.commentText($0) } + [" */", ""]
    }

    /// `PREFIX_FEED<k>_...` for each tensor, then `PREFIX_FEED_<identifier>` (its index).
    static func tensorMacros(_ N: String, _ kind: String, _ tensors: [ArtifactTensor]) -> [String] {
        var lines: [String] = []
        for (k, t) in tensors.enumerated() {
            let p = "\(N)_\(kind)\(k)"
            lines.append("/* \(kind.lowercased()) \(k): \(ArtifactCText.commentText(t.name)), \(ArtifactCText.signature(t.type)) */")
            lines.append("#define \(p)_NAME \(ArtifactCText.stringLiteral(t.name))")
            lines.append("#define \(p)_DTYPE \(ArtifactCText.dataType(t.type.dtype))")
            lines.append("#define \(p)_RANK \(t.type.rank)")
            // C has no empty initializer: a scalar's shape is { 0 } with rank 0.
            lines.append("#define \(p)_SHAPE { \(t.type.shape.isEmpty ? "0" : t.type.shape.map(String.init).joined(separator: ", ")) }")
            for (j, d) in t.type.shape.enumerated() { lines.append("#define \(p)_DIM\(j) \(d)") }
            lines.append("#define \(p)_ELEMENTS \(t.type.elementCount)")
            lines.append("#define \(p)_BYTES \(t.type.byteCount)")
        }
        if !tensors.isEmpty { lines.append("") }
        // The index by identifier; an identifier spelling one of the macros above (`COUNT`) would
        // redefine it, so that one has none.
        let reserved: Set<String> = ["COUNT"]
        for (k, t) in tensors.enumerated() {
            if reserved.contains(t.identifier) {
                lines.append("/* \(N)_\(kind)_\(t.identifier) would be \(N)_\(kind)_COUNT: \(kind.lowercased()) \(k) has no index macro. */")
            } else {
                lines.append("#define \(N)_\(kind)_\(t.identifier) \(k)")
            }
        }
        if !tensors.isEmpty { lines.append("") }
        return lines
    }

    static func prototypes(_ layout: ArtifactLayout) -> [String] {
        let name = layout.spec.name, N = ArtifactCText.macroPrefix(layout)
        let threads: String
        switch layout.emit {
        case .object:
            threads = """
                /* Asks for `threads` threads (the caller included) for the work runs split; threads <= 0
                 * asks for one per online CPU (the default). It takes effect only before the first run
                 * that splits work (the pool starts then and keeps its size). Returns the number of
                 * threads runs use: 1 when this artifact never splits work. */
                """
        case .c:
            threads = """
                /* Kept for the same interface as an object artifact: a C artifact runs on the calling
                 * thread only, so this changes nothing and returns 1. */
                """
        }
        return ["""
            /* Runs the graph once. feeds[k] points to feed k's \(N)_FEEDk_BYTES bytes, fetches[k] to room for
             * fetch k's \(N)_FETCHk_BYTES bytes (dense, row-major, in the orders above); the results are
             * written there. Returns \(N)_OK (0), \(N)_ERROR_INVALID_ARGUMENT (3: a run-time check failed,
             * e.g. an index out of range; \(name)_last_error says which) or \(N)_ERROR_RESOURCE_EXHAUSTED
             * (8: its arena could not be allocated).
             * It allocates an arena of \(N)_ARENA_BYTES at its first call and keeps it for later calls.
             * Thread-safe: a call made while another thread is inside \(name)_run uses an arena of its
             * own, allocated and freed for that call. */
            int \(name)_run(const void *const feeds[], void *const fetches[]);

            /* \(name)_run with a caller-owned arena: \(N)_ARENA_BYTES bytes aligned to
             * \(N)_ARENA_ALIGNMENT (NULL only when \(N)_ARENA_BYTES is 0). Never allocates. Returns
             * \(N)_OK or \(N)_ERROR_INVALID_ARGUMENT. Calls running at once need arenas of their own. */
            int \(name)_run_with_arena(const void *const feeds[], void *const fetches[], void *arena);

            \(threads)
            int \(name)_set_threads(int threads);

            /* The code the calling thread's last run returned (0, 3 or 8). When message is not NULL
             * and size > 0, writes its explanation there, NUL-terminated and truncated to size - 1
             * bytes ("" after a successful run): TensorFlow's message for a failed check, or the
             * arena that could not be allocated. */
            int \(name)_last_error(char *message, size_t size);

            """]
    }
}
