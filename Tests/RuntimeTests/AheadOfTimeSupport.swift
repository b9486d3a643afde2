import Foundation
import XCTest
import Kiln
import KilnTestSupport

/// Builds and runs programs around `kiln compile` artifacts: a C harness that reads every feed
/// from one file (the feeds' bytes in order), calls NAME_run (and NAME_run_with_arena, which
/// must agree) and writes every fetch to another file, linked with the system's or a cross C
/// compiler; and the comparison with Session.run.
class AheadOfTimeTestCase: KilnBinaryTestCase {
    /// The harness for an artifact with `feeds` feeds and `fetches` fetches, using only the
    /// header's constants. `argv`: FEEDS_FILE FETCHES_FILE [RUNS]: with RUNS, the artifact is
    /// run that many more times and the median time of one run is printed (`median_us=`).
    func harness(name: String, feeds: Int, fetches: Int) -> String {
        let up = name.uppercased()
        let list = { (kind: String, n: Int) in n == 0 ? "0" : (0..<n).map { "\(up)_\(kind)\($0)_BYTES" }.joined(separator: ", ") }
        return """
        #define _POSIX_C_SOURCE 200112L
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <time.h>
        #include "\(name).h"

        static const size_t feed_bytes[] = {\(list("FEED", feeds))};
        static const size_t fetch_bytes[] = {\(list("FETCH", fetches))};
        enum { feed_count = \(feeds), fetch_count = \(fetches) };

        static void *buffer(size_t n) {
            void *p = NULL;
            if (posix_memalign(&p, 64, n < 64 ? 64 : n) != 0) { fprintf(stderr, "out of memory\\n"); exit(4); }
            memset(p, 0, n < 64 ? 64 : n);
            return p;
        }
        static int compare(const void *a, const void *b) {
            double x = *(const double *)a, y = *(const double *)b;
            return x < y ? -1 : x > y;
        }
        static int fail(int rc) {
            char message[1024];
            int code = \(name)_last_error(message, sizeof message);
            fprintf(stderr, "run failed with %d (last_error %d): %s\\n", rc, code, message);
            return 3;
        }

        int main(int argc, char **argv) {
            if (argc < 3) { fprintf(stderr, "usage: %s FEEDS FETCHES [RUNS]\\n", argv[0]); return 2; }
            if (\(up)_FEED_COUNT != feed_count || \(up)_FETCH_COUNT != fetch_count || \(up)_ARENA_ALIGNMENT != 64) return 5;
            const void *feeds[feed_count + 1];
            void *fetches[fetch_count + 1], *again[fetch_count + 1];
            FILE *in = fopen(argv[1], "rb");
            if (!in) { perror(argv[1]); return 2; }
            for (int k = 0; k < feed_count; k++) {
                void *p = buffer(feed_bytes[k]);
                if (fread(p, 1, feed_bytes[k], in) != feed_bytes[k]) { fprintf(stderr, "short feed %d\\n", k); return 2; }
                feeds[k] = p;
            }
            fclose(in);
            for (int k = 0; k < fetch_count; k++) { fetches[k] = buffer(fetch_bytes[k]); again[k] = buffer(fetch_bytes[k]); }
            int rc = \(name)_run(feeds, fetches);
            if (rc != \(up)_OK) return fail(rc);
            void *arena = buffer(\(up)_ARENA_BYTES);
            rc = \(name)_run_with_arena(feeds, again, \(up)_ARENA_BYTES ? arena : NULL);
            if (rc != \(up)_OK) return fail(rc);
            for (int k = 0; k < fetch_count; k++)
                if (memcmp(fetches[k], again[k], fetch_bytes[k]) != 0) { fprintf(stderr, "run_with_arena differs in fetch %d\\n", k); return 6; }
            FILE *out = fopen(argv[2], "wb");
            if (!out) { perror(argv[2]); return 2; }
            for (int k = 0; k < fetch_count; k++) fwrite(fetches[k], 1, fetch_bytes[k], out);
            fclose(out);
            if (argc > 3) {
                int runs = atoi(argv[3]);
                double *t = malloc(sizeof(double) * (runs > 0 ? runs : 1));
                for (int i = 0; i < runs; i++) {
                    struct timespec a, b;
                    clock_gettime(CLOCK_MONOTONIC, &a);
                    if (\(name)_run(feeds, fetches) != \(up)_OK) return fail(1);
                    clock_gettime(CLOCK_MONOTONIC, &b);
                    t[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
                }
                qsort(t, runs, sizeof(double), compare);
                printf("median_us=%.3f threads=%d\\n", runs > 0 ? t[runs / 2] : 0.0, \(name)_set_threads(0));
            }
            return 0;
        }

        """
    }

    /// Links the harness with the artifact in `dir` (NAME.o and its library, or NAME.c) by
    /// `compiler` and returns the program's path.
    func link(name: String, dir: String, feeds: Int, fetches: Int, compiler: String = "cc", emitC: Bool = false) throws -> String {
        let main = dir + "/harness.c"
        try harness(name: name, feeds: feeds, fetches: fetches).write(toFile: main, atomically: true, encoding: .utf8)
        let program = dir + "/harness"
        let code = emitC ? [dir + "/\(name).c"] : [dir + "/\(name).o"]
        let libraries = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".a") }.sorted().map { dir + "/" + $0 }
        try ToolRunner.succeed([try ToolRunner.required(compiler, package: compiler == "cc" ? "gcc" : "gcc-aarch64-linux-gnu"),
                                "-O2"] + (emitC ? ["-std=c99"] : []) + ["-I", dir, "-o", program, main] + code + libraries + ["-lm", "-lpthread"])
        return program
    }

    /// The feeds' bytes, in order, in one file.
    func writeFeeds(_ feeds: [Tensor], to path: String) throws {
        var data = Data()
        for t in feeds { t.withUnsafeBytes { data.append(contentsOf: $0) } }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// The fetches a harness wrote, as tensors of the given types.
    func readFetches(_ path: String, types: [(DType, [Int])]) throws -> [Tensor] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var offset = 0
        return try types.map { dtype, shape in
            var t = try Tensor(zeros: dtype, shape: shape)
            let n = t.byteCount
            guard offset + n <= data.count else { throw KilnError.dataLoss("fetch file \(path) is too short") }
            try t.withUnsafeMutableBytes { dst in data.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) } }
            offset += n
            return t
        }
    }

    /// Every element within `tolerance * max(1, |expected|)`.
    func assertClose(_ got: [Tensor], _ want: [Tensor], tolerance: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (k, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g.dtype, w.dtype, "\(what) fetch \(k)", file: file, line: line)
            XCTAssertEqual(g.shape, w.shape, "\(what) fetch \(k)", file: file, line: line)
            let worst = zip(g.doubles, w.doubles).map { Swift.abs($0 - $1) / Swift.max(1, Swift.abs($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, tolerance, "\(what) fetch \(k): worst scaled difference \(worst)", file: file, line: line)
            XCTAssertFalse(g.doubles.contains { $0.isNaN } && !w.doubles.contains { $0.isNaN }, "\(what) fetch \(k) has NaN", file: file, line: line)
        }
    }

    /// Deterministic float32 values in [-1, 1).
    func randomFloats(_ shape: [Int], seed: UInt64) throws -> Tensor {
        var rng = SplitMix64(seed: seed)
        let n = shape.reduce(1, *)
        return try Tensor(shape: shape, scalars: (0..<n).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) })
    }
}
