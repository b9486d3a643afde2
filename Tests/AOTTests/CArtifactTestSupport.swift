import Foundation
import KilnCPU
import KilnIR
import KilnKernels
import KilnPasses
import KilnTestSupport
import XCTest
@testable import KilnAOT

/// Builds artifacts from IR text and runs them as programs: what the C-file, header and Swift
/// wrapper tests share.
enum CArtifactHarness {
    /// An artifact spec from IR text: the standard passes run; each feed `x` is `x:0`, result k
    /// is `out<k>:0`.
    static func spec(_ text: String, name: String) throws -> ArtifactSpec {
        var f = try Parser.parse(text)
        try PassManager.standard().run(&f)
        let types = f.typeTable()
        let feedNames = f.params.map { $0.name + ":0" }
        let fetchNames = f.results.indices.map { "out\($0):0" }
        let feeds = zip(f.params, ArtifactTensor.identifiers(for: feedNames)).enumerated().map { k, p in
            ArtifactTensor(name: feedNames[k], type: p.0.type, identifier: p.1)
        }
        let fetches = zip(f.results, ArtifactTensor.identifiers(for: fetchNames)).enumerated().map { k, r in
            ArtifactTensor(name: fetchNames[k], type: types[r.0]!, identifier: r.1)
        }
        return ArtifactSpec(name: name, function: f, feeds: feeds, fetches: fetches, target: .host, origin: "test IR @\(f.name)")
    }

    /// A fresh directory under the temporary directory, removed when the test ends.
    static func directory(_ test: XCTestCase) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-c-artifact-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// A C main for artifact `name`, written with its header's macros: reads each feed from the
    /// file named by its argument, runs `calls` times through `NAME_run` (and once more through
    /// `NAME_run_with_arena` on an arena of its own, checking both give the same bytes), writes
    /// each fetch to the next argument's file; a failed run prints `error <code> <last_error code>
    /// <message>` and exits 0.
    static func mainSource(_ spec: ArtifactSpec) -> String {
        let n = spec.name, N = n.uppercased()
        let feeds = spec.feeds.indices.map { "\(N)_FEED\($0)_BYTES" }
        let fetches = spec.fetches.indices.map { "\(N)_FETCH\($0)_BYTES" }
        return """
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include "\(n).h"

            static const size_t feed_bytes[] = { \((feeds + ["0"]).joined(separator: ", ")) };
            static const size_t fetch_bytes[] = { \((fetches + ["0"]).joined(separator: ", ")) };

            static void *slurp(const char *path, size_t bytes) {
                void *p = calloc(bytes + 1, 1);
                FILE *f = fopen(path, "rb");
                if (!p || !f || fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "cannot read %s\\n", path); exit(2); }
                fclose(f);
                return p;
            }

            int main(int argc, char **argv) {
                const void *feeds[\(N)_FEED_COUNT + 1];
                void *fetches[\(N)_FETCH_COUNT + 1], *again[\(N)_FETCH_COUNT + 1];
                char message[512];
                void *block = NULL;
                char *arena = NULL;
                int k, rc;
                if (argc != 1 + \(N)_FEED_COUNT + \(N)_FETCH_COUNT) { fprintf(stderr, "usage\\n"); return 2; }
                for (k = 0; k < \(N)_FEED_COUNT; k++) feeds[k] = slurp(argv[1 + k], feed_bytes[k]);
                for (k = 0; k < \(N)_FETCH_COUNT; k++) { fetches[k] = calloc(fetch_bytes[k] + 1, 1); again[k] = calloc(fetch_bytes[k] + 1, 1); }
                rc = \(n)_run(feeds, fetches);
                if (rc != \(N)_OK) {
                    int code = \(n)_last_error(message, sizeof message);
                    printf("error %d %d %s\\n", rc, code, message);
                    return 0;
                }
                if (\(n)_last_error(message, sizeof message) != 0 || message[0] != 0) { printf("last_error not cleared\\n"); return 3; }
                if (\(N)_ARENA_BYTES > 0) {
                    /* A caller-owned arena, aligned by hand (posix_memalign is not C99). */
                    block = malloc(\(N)_ARENA_BYTES + \(N)_ARENA_ALIGNMENT);
                    if (!block) return 4;
                    arena = (char *)block + (\(N)_ARENA_ALIGNMENT - (size_t)block % \(N)_ARENA_ALIGNMENT) % \(N)_ARENA_ALIGNMENT;
                }
                rc = \(n)_run_with_arena(feeds, again, arena);
                if (rc != \(N)_OK) { printf("run_with_arena failed: %d\\n", rc); return 5; }
                for (k = 0; k < \(N)_FETCH_COUNT; k++) {
                    FILE *f;
                    if (memcmp(fetches[k], again[k], fetch_bytes[k]) != 0) { printf("run_with_arena differs in fetch %d\\n", k); return 6; }
                    f = fopen(argv[1 + \(N)_FEED_COUNT + k], "wb");
                    if (!f || fwrite(fetches[k], 1, fetch_bytes[k], f) != fetch_bytes[k]) return 7;
                    fclose(f);
                }
                free(block);
                printf("ok\\n");
                return 0;
            }

            """
    }

    /// What a built artifact program did: its fetches, or the error it printed.
    enum Outcome {
        case results([Tensor])
        case error(code: Int, lastErrorCode: Int, message: String)
    }

    /// Runs `program` on `feeds`, reading the fetches back.
    static func execute(_ program: [String], _ spec: ArtifactSpec, _ feeds: [Tensor], in dir: String) throws -> Outcome {
        var args = program
        for (k, t) in feeds.enumerated() {
            let path = "\(dir)/feed\(k).bin"
            try t.withUnsafeBytes { try Data($0.prefix(t.byteCount)).write(to: URL(fileURLWithPath: path)) }
            args.append(path)
        }
        let fetchPaths = spec.fetches.indices.map { "\(dir)/fetch\($0).bin" }
        let output = try ToolRunner.succeed(args + fetchPaths)
        if output.hasPrefix("error ") {
            let parts = output.dropFirst(6).split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            return .error(code: Int(parts[0]) ?? -1, lastErrorCode: Int(parts[1]) ?? -1,
                          message: parts.count > 2 ? String(parts[2].dropLast()) : "")
        }
        guard output == "ok\n" else { throw KilnError.internalError("the program printed: \(output)") }
        return .results(try zip(spec.fetches, fetchPaths).map { t, path in
            try tensor(Array(Data(contentsOf: URL(fileURLWithPath: path))), t.type)
        })
    }

    static func tensor(_ bytes: [UInt8], _ type: TensorType) throws -> Tensor {
        func scalars<T: TensorScalar>(_: T.Type) -> [T] {
            bytes.withUnsafeBytes { raw in (0..<type.elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.stride, as: T.self) } }
        }
        switch type.dtype {
        case .float32: return try Tensor(shape: type.shape, scalars: scalars(Float.self))
        case .float64: return try Tensor(shape: type.shape, scalars: scalars(Double.self))
        case .int32: return try Tensor(shape: type.shape, scalars: scalars(Int32.self))
        case .int64: return try Tensor(shape: type.shape, scalars: scalars(Int64.self))
        case .uint8: return try Tensor(shape: type.shape, scalars: scalars(UInt8.self))
        case .int16: return try Tensor(shape: type.shape, scalars: scalars(Int16.self))
        case .float16, .bfloat16: 
            let bits = bytes.withUnsafeBytes { raw in (0..<type.elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self) } }
            return try Tensor(halfBits: bits, dtype: type.dtype, shape: type.shape)
        case .bool: return try Tensor(shape: type.shape, scalars: bytes.prefix(type.elementCount).map { $0 != 0 })
        case .string: throw KilnError.invalidArgument("no string fetches")
        }
    }

    /// `got` equals `want` within `tolerance` (relative, and absolute near zero); NaN matches NaN.
    static func assertClose(_ got: [Tensor], _ want: [Tensor], tolerance: Double, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (k, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g.shape, w.shape, "\(what) fetch \(k)", file: file, line: line)
            XCTAssertEqual(g.dtype, w.dtype, "\(what) fetch \(k)", file: file, line: line)
            let a = doubles(g), b = doubles(w)
            XCTAssertEqual(a.count, b.count, file: file, line: line)
            for (i, (x, y)) in zip(a, b).enumerated() where !(x.isNaN && y.isNaN) && !(abs(x - y) <= tolerance * max(1, abs(y))) {
                return XCTFail("\(what) fetch \(k) element \(i): \(x), want \(y)", file: file, line: line)
            }
        }
    }

    /// Every element as a Double (bools as 0 and 1), for comparisons across dtypes.
    static func doubles(_ t: Tensor) -> [Double] {
        switch t.dtype {
        case .float32: return (try? t.scalars(as: Float.self).map(Double.init)) ?? []
        case .float64: return (try? t.scalars(as: Double.self)) ?? []
        case .int32: return (try? t.scalars(as: Int32.self).map(Double.init)) ?? []
        case .int64: return (try? t.scalars(as: Int64.self).map(Double.init)) ?? []
        case .uint8: return (try? t.scalars(as: UInt8.self).map(Double.init)) ?? []
        case .int16: return (try? t.scalars(as: Int16.self).map(Double.init)) ?? []
        case .float16, .bfloat16: return t.doubles
        case .bool: return (try? t.scalars(as: Bool.self).map { $0 ? 1 : 0 }) ?? []
        case .string: return []
        }
    }
}
