import KilnIR
import KilnKernels
import KilnPasses

/// `kiln compile --emit c`: the whole artifact as one dependency-free C99 file, in this order:
/// a comment saying how to build it, the C runtime's portable paste (single-threaded products,
/// fault record and message, every function `static`), the plan's kernels and entry rendered in
/// `CDialect.c99Standalone` (static, runtime calls by name), the constants as aligned byte
/// arrays and their table, and the ABI's four functions written in C. Only those four have
/// external linkage, so any number of artifacts link into one program.
enum CArtifact {
    /// What the planner assumes for the portable file: one thread (nothing is split for a pool),
    /// every float32 product on the runtime's portable product (there is no OpenBLAS).
    static let description = TargetDescription(name: "c99 artifact", vectorBytes: 32, ownProducts: true, ownProductRange: 0...Int.max,
                                               parallelThreshold: Int.max)

    /// The whole artifact as one C99 file.
    static func source(_ layout: ArtifactLayout) throws -> String {
        try ArtifactCText.checkPassable(layout)
        let spec = layout.spec
        for (k, t) in layout.plan.constants.enumerated() where t.dtype == .string {
            throw KilnError.invalidArgument("constant \(k) of '\(spec.function.name)' is a string tensor: strings run on the host, not in an artifact")
        }
        let renderer = CStyleRenderer(.c99Standalone, title: "@\(spec.function.name) of artifact \(spec.name)")
        KernelWriter(renderer: renderer, function: spec.function, plan: layout.plan, target: layout.description)
            .write(entryName: layout.entryName)
        guard renderer.refusals.isEmpty else {
            throw KilnError.internalError("C99 cannot express \(renderer.refusals.joined(separator: "; "))")
        }
        // Generated code keeps locals and parameters it does not read (the renderer writes every
        // kernel with the same four tables): that is no warning for whoever builds the file.
        let quiet = """
            #if defined(__GNUC__) || defined(__clang__)
            #pragma GCC diagnostic push
            #if defined(__clang__)
            #pragma clang diagnostic ignored "-Wunknown-warning-option"
            #endif
            #pragma GCC diagnostic ignored "-Wunused-parameter"
            #pragma GCC diagnostic ignored "-Wunused-variable"
            #pragma GCC diagnostic ignored "-Wunused-but-set-variable"
            #endif
            """
        let loud = """
            #if defined(__GNUC__) || defined(__clang__)
            #pragma GCC diagnostic pop
            #endif
            """
        var parts = [preamble(layout), ArtifactRuntime.portableSource(), quiet, renderer.source, loud]
        parts.append(constants(layout))
        parts.append(glue(layout))
        return parts.joined(separator: "\n")
    }

    static func preamble(_ layout: ArtifactLayout) -> String {
        let name = layout.spec.name
        let t = ArtifactCText.commentText
        return """
            /*
             * \(name).c: the graph compiled ahead of time by `kiln compile --emit c` (Kiln), as one
             * C99 file with no dependency beyond the C library and libm.
             *
             * Build:      cc -O2 -std=c99 -c \(name).c
             *             (faster float sums: add -fopenmp-simd -DKILN_OPENMP_SIMD)
             * Link:       cc -O2 -std=c99 main.c \(name).c -lm
             * Interface:  \(name).h, or:
             *   int \(name)_run(const void *const feeds[], void *const fetches[]);
             *   int \(name)_run_with_arena(const void *const feeds[], void *const fetches[], void *arena);
             *   int \(name)_set_threads(int threads);
             *   int \(name)_last_error(char *message, size_t size);
             * Only these four functions have external linkage.
             *
             * Origin:     \(t(layout.spec.origin))
             * Arena:      \(layout.arenaBytes) bytes; constants: \(layout.constantBytes) bytes
             */
            #define KILN_ARTIFACT 1
            #define KILN_PORTABLE 1

            """
    }

    /// The plan's constants, exact bytes, 64-byte aligned, and the table the entry reads them
    /// from (then the null profile slot, as in-process executables have it).
    static func constants(_ layout: ArtifactLayout) -> String {
        let name = layout.spec.name
        var lines = ["/* The constants (weights, folded tensors), byte for byte as the plan holds them. */"]
        var table: [String] = []
        for (k, t) in layout.plan.constants.enumerated() {
            let bytes: [UInt8] = t.withUnsafeBytes { Array($0.prefix(t.byteCount)) }
            let id = "\(name)_constant\(k)"
            // C has no empty array: an empty tensor gets one unread byte.
            lines.append("static const uint8_t \(id)[\(max(bytes.count, 1))] KILN_ALIGNED64 = {  /* \(ArtifactCText.signature(TensorType(t.dtype, t.shape))) */")
            if bytes.isEmpty { lines.append("    0") }
            for start in stride(from: 0, to: bytes.count, by: 24) {
                lines.append("    " + bytes[start..<min(start + 24, bytes.count)].map { String($0) }.joined(separator: ",") + ",")
            }
            lines.append("};")
            table.append("(void *)\(id)")
        }
        table.append("0")
        lines.append("static void *const \(name)_constants[\(table.count)] = { \(table.joined(separator: ", ")) };")
        lines.append("")
        return lines.joined(separator: "\n")
    }

    /// The ABI (the common brief's, the same as an object artifact's) in C.
    static func glue(_ layout: ArtifactLayout) -> String {
        let P = layout.spec.name, entry = layout.entryName
        let arenaBytes = layout.arenaBytes
        // NAME_run's own arena: a multiple of 64, at least 64, plus room to align a malloc block.
        let rounded = max(64, (arenaBytes + 63) / 64 * 64)
        var checks = ""
        if layout.faultRecordOffset != nil {
            var dims: [String] = []
            var rows: [String] = []
            for c in layout.checks {
                rows.append("    { \(ArtifactCText.stringLiteral(c.message)), \(c.shape.count), \(P)_check_dims + \(dims.count) },")
                dims += c.shape.map(String.init)
            }
            checks = """
                /* Per check site (kiln_fault.site - 1): TensorFlow's message with {index} and {value} to
                 * fill in, and the checked tensor's shape (what Check.error formats in-process). */
                static const int64_t \(P)_check_dims[\(max(dims.count, 1))] = { \(dims.isEmpty ? "0" : dims.joined(separator: ", ")) };
                static const struct { const char *message; int64_t rank; const int64_t *shape; } \(P)_checks[\(layout.checks.count)] = {
                \(rows.joined(separator: "\n"))
                };


                """
        }
        let faultReset: String, faultTest: String
        if let offset = layout.faultRecordOffset {
            faultReset = "    memset((char *)arena + \(offset), 0, 32);  /* the kiln_fault record: no check failed yet */\n"
            faultTest = """
                    {
                        int64_t fault[3];  /* site, position, value */
                        memcpy(fault, (char *)arena + \(offset), sizeof fault);
                        if (fault[0] != 0) {
                            \(P)_last.code = 3;
                            \(P)_last.site = fault[0];
                            \(P)_last.position = fault[1];
                            \(P)_last.value = fault[2];
                            return 3;
                        }
                    }

                """
        } else {
            faultReset = ""
            faultTest = ""
        }
        let message3: String
        if layout.faultRecordOffset != nil {
            message3 = """
                        case 3:
                            if (\(P)_last.site >= 1 && \(P)_last.site <= \(layout.checks.count)) {
                                int64_t k = \(P)_last.site - 1;
                                kiln_fault_message(\(P)_checks[k].message, \(P)_checks[k].rank, \(P)_checks[k].shape,
                                                   \(P)_last.position, \(P)_last.value, message, size);
                            } else {
                                snprintf(message, size, "a run-time check failed");
                            }
                            break;

                """
        } else {
            message3 = ""
        }
        return """
            /* ---- The artifact's interface: \(P).h declares these four. ---- */
            #include <stdio.h>
            #include <stdlib.h>

            /* The last error is per thread where the compiler has thread-local storage. */
            #ifndef KILN_ARTIFACT_THREAD_LOCAL
            #if defined(__GNUC__) || defined(__clang__)
            #define KILN_ARTIFACT_THREAD_LOCAL __thread
            #elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
            #define KILN_ARTIFACT_THREAD_LOCAL _Thread_local
            #else
            #define KILN_ARTIFACT_THREAD_LOCAL
            #endif
            #endif

            int \(P)_run(const void *const feeds[], void *const fetches[]);
            int \(P)_run_with_arena(const void *const feeds[], void *const fetches[], void *arena);
            int \(P)_set_threads(int threads);
            int \(P)_last_error(char *message, size_t size);

            /* The calling thread's last run: its code (0, 3 or 8) and, for 3, the failed check. */
            static KILN_ARTIFACT_THREAD_LOCAL struct { int code; int64_t site, position, value; } \(P)_last;

            \(checks)int \(P)_run_with_arena(const void *const feeds[], void *const fetches[], void *arena) {
            \(faultReset)    \(entry)((void *)feeds, (void *)fetches, arena, (void *)\(P)_constants);
            \(faultTest)    \(P)_last.code = 0;
                return 0;
            }

            /* \(P)_run's arena: \(rounded) bytes (\(arenaBytes) rounded up to 64) inside a malloc block with
             * room to align it to 64 (aligned_alloc is C11). */
            static void *\(P)_arena_block;
            static char *\(P)_arena;

            static char *\(P)_allocate(void **block) {
                char *p;
                if ((uint64_t)\(rounded)u > (uint64_t)SIZE_MAX - 64) return NULL;
                *block = malloc((size_t)\(rounded)u + 64);
                if (*block == NULL) return NULL;
                p = (char *)*block;
                return p + ((64 - (uintptr_t)p % 64) % 64);
            }

            static int \(P)_allocation_failed(void) {
                \(P)_last.code = 8;
                return 8;
            }

            /* Taken while a thread runs on \(P)_arena; a call finding it taken uses an arena of its own. */
            #if defined(__GNUC__) || defined(__clang__)
            static int \(P)_busy;
            static int \(P)_claim(void) {
                int expected = 0;
                return __atomic_compare_exchange_n(&\(P)_busy, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
            }
            static void \(P)_unclaim(void) { __atomic_store_n(&\(P)_busy, 0, __ATOMIC_RELEASE); }
            #else
            /* No atomics to guard a shared arena with: every call allocates its own. */
            static int \(P)_claim(void) { return 0; }
            static void \(P)_unclaim(void) {}
            #endif

            int \(P)_run(const void *const feeds[], void *const fetches[]) {
                void *block;
                char *arena;
                int code;
                if (\(P)_claim()) {
                    if (\(P)_arena == NULL) {
                        \(P)_arena = \(P)_allocate(&\(P)_arena_block);
                        if (\(P)_arena == NULL) {
                            \(P)_unclaim();
                            return \(P)_allocation_failed();
                        }
                    }
                    code = \(P)_run_with_arena(feeds, fetches, \(P)_arena);
                    \(P)_unclaim();
                    return code;
                }
                arena = \(P)_allocate(&block);
                if (arena == NULL) return \(P)_allocation_failed();
                code = \(P)_run_with_arena(feeds, fetches, arena);
                free(block);
                return code;
            }

            /* A C artifact runs on the calling thread only. */
            int \(P)_set_threads(int threads) {
                (void)threads;
                return 1;
            }

            int \(P)_last_error(char *message, size_t size) {
                if (message != NULL && size > 0) {
                    switch (\(P)_last.code) {
            \(message3)        case 8:
                        snprintf(message, size, "cannot allocate the arena of \(rounded) bytes");
                        break;
                    default:
                        message[0] = 0;
                        break;
                    }
                }
                return \(P)_last.code;
            }

            """
    }
}
