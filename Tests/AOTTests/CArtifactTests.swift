import Foundation
import KilnCPU
import KilnIR
import KilnKernels
import KilnPasses
import KilnTestSupport
import XCTest
@testable import KilnAOT

/// `--emit c`: the one C99 file, built with `cc -O2 -std=c99 -Wall` and linked with a C main that
/// calls NAME_run, gives what the in-process LLVM backend gives (within 1e-5), the in-process
/// error text for a failed check, and exports only the ABI's four functions.
final class CArtifactTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(ToolRunner.find("cc") != nil, "needs a C compiler: apt-get install gcc")
    }

    /// `AheadOfTime.compile(.c)` into a fresh directory, the C file compiled to NAME.o with
    /// warnings as errors (so the file builds cleanly), and a C main linked against it.
    func build(_ text: String, name: String = "net", main: String? = nil, extraFlags: [String] = []) throws -> (spec: ArtifactSpec, dir: String, program: String) {
        let spec = try CArtifactHarness.spec(text, name: name)
        let dir = try CArtifactHarness.directory(self)
        let files = try AheadOfTime.compile(spec, emit: .c, to: dir)
        XCTAssertEqual(files.code, "\(dir)/\(name).c")
        XCTAssertNil(files.library)
        try ToolRunner.succeed(["cc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", "\(name).c", "-o", "\(name).o"] + extraFlags, in: dir)
        try (main ?? CArtifactHarness.mainSource(spec)).write(toFile: "\(dir)/main.c", atomically: true, encoding: .utf8)
        try ToolRunner.succeed(["cc", "-O2", "-std=c99", "-Wall", "-Werror", "-o", "main", "main.c", "\(name).o", "-lm", "-lpthread"], in: dir)
        return (spec, dir, "\(dir)/main")
    }

    /// The in-process LLVM backend's results, or its error.
    func inProcess(_ spec: ArtifactSpec, _ feeds: [Tensor]) -> Result<[Tensor], Error> {
        Result {
            var params = feeds
            return try LLVMBackend().compile(spec.function).run(&params)
        }
    }

    /// Builds and runs the artifact, compares its fetches; returns the C file's text.
    @discardableResult
    func assertAgrees(_ text: String, _ feeds: [Tensor], tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (spec, dir, program) = try build(text)
        let want = try inProcess(spec, feeds).get()
        if case .results(let got) = try CArtifactHarness.execute([program], spec, feeds, in: dir) {
            CArtifactHarness.assertClose(got, want, tolerance: tolerance, "C artifact", file: file, line: line)
        } else {
            XCTFail("the artifact failed", file: file, line: line)
        }
        return try String(contentsOfFile: "\(dir)/\(spec.name).c", encoding: .utf8)
    }

    static func floats(_ n: Int, scale: Float = 0.37, offset: Int = 0) -> [Float] {
        (0..<n).map { Float(($0 + offset) * 7919 % 23) * scale - 3 }
    }

    func testElementwiseAndReductionsMatchTheInProcessBackend() throws {
        try assertAgrees("""
        func @m(%0: f32[8,37] feed "x", %1: f32[37] feed "b", %2: i32[8,37] feed "k") {
          %3 = broadcast %1 shape=[8,37] dims=[1]
          %4 = add %0, %3
          %5 = tanh %4
          %6 = exp %5
          %7 = reduce.sum %6 axes=[1]
          %8 = reduce.max %4 axes=[0]
          %9 = constant i32[] 3
          %10 = broadcast %9 shape=[8,37] dims=[]
          %11 = floormod %2, %10
          %12 = reduce.sum %0 axes=[0,1]
          return %5, %7, %8, %11, %12
        }
        """, [try Tensor(shape: [8, 37], scalars: Self.floats(8 * 37)), try Tensor(shape: [37], scalars: Self.floats(37, scale: 0.1)),
              try Tensor(shape: [8, 37], scalars: (0..<(8 * 37)).map { Int32($0 * 37 % 101) - 50 })])
    }

    /// Products through the runtime's portable float32 and float64 products, with a constant
    /// weight matrix compiled into the file and transposed operands.
    func testProductsMatchTheInProcessBackend() throws {
        let w = (0..<(37 * 5)).map { Float($0 % 11) * 0.25 - 1 }
        let rows = stride(from: 0, to: w.count, by: 5).map { "[" + w[$0..<$0 + 5].map { "\($0)" }.joined(separator: ",") + "]" }
        try assertAgrees("""
        func @m(%0: f32[9,37] feed "x", %1: f64[6,4] feed "a", %2: f64[5,6] feed "c") {
          %3 = constant f32[37,5] [\(rows.joined(separator: ","))]
          %4 = dot %0, %3 transpose_a=false transpose_b=false
          %5 = dot %0, %0 transpose_a=false transpose_b=true
          %6 = dot %1, %2 transpose_a=true transpose_b=true
          return %4, %5, %6
        }
        """, [try Tensor(shape: [9, 37], scalars: Self.floats(9 * 37)),
              try Tensor(shape: [6, 4], scalars: (0..<24).map { Double($0) * 0.5 - 3 }),
              try Tensor(shape: [5, 6], scalars: (0..<30).map { Double($0 % 7) - 2.5 })])
    }

    /// A small CNN with its weights compiled in: convolution as patch products, bias, ReLU,
    /// max pooling, a dense layer and a softmax.
    func testConvolutionalNetworkMatchesTheInProcessBackend() throws {
        func literal(_ shape: [Int], _ seed: Int) -> String {
            let n = shape.reduce(1, *)
            let values = (0..<n).map { Float(($0 * 7919 + seed) % 97) / 97 - 0.5 }
            func nest(_ dims: ArraySlice<Int>, _ start: Int) -> String {
                guard let d = dims.first else { return "\(values[start])" }
                let inner = dims.dropFirst().reduce(1, *)
                return "[" + (0..<d).map { nest(dims.dropFirst(), start + $0 * inner) }.joined(separator: ",") + "]"
            }
            return "constant f32\(shape) \(nest(shape[...], 0))"
        }
        let text = """
        func @cnn(%0: f32[4,12,12,3] feed "images") {
          %1 = patches %0 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %2 = reshape %1 shape=[576,27]
          %3 = \(literal([27, 8], 1))
          %4 = dot %2, %3 transpose_a=false transpose_b=false
          %5 = \(literal([8], 2))
          %6 = broadcast %5 shape=[576,8] dims=[1]
          %7 = add %4, %6
          %8 = constant f32[] 0.0
          %9 = broadcast %8 shape=[576,8] dims=[]
          %10 = max %7, %9
          %11 = reshape %10 shape=[4,12,12,8]
          %12 = reduce_window.max %11 window=[1,2,2,1] strides=[1,2,2,1] pad_low=[0,0,0,0] pad_high=[0,0,0,0]
          %13 = reshape %12 shape=[4,288]
          %14 = \(literal([288, 10], 3))
          %15 = dot %13, %14 transpose_a=false transpose_b=false
          %16 = reduce.max %15 axes=[1]
          %17 = broadcast %16 shape=[4,10] dims=[0]
          %18 = sub %15, %17
          %19 = exp %18
          %20 = reduce.sum %19 axes=[1]
          %21 = broadcast %20 shape=[4,10] dims=[0]
          %22 = div %19, %21
          return %22, %15
        }
        """
        let source = try assertAgrees(text, [try Tensor(shape: [4, 12, 12, 3], scalars: Self.floats(4 * 12 * 12 * 3, scale: 0.11))])
        // Both products run on the runtime's portable product (the pasted runtime defines it once).
        let entry = try XCTUnwrap(source.range(of: "rendered as standalone C99"))
        XCTAssertGreaterThanOrEqual(source[entry.upperBound...].components(separatedBy: "kiln_sgemm(").count - 1, 2)
    }

    let gather = """
    func @m(%0: f32[6,4] feed "p", %1: i32[3,2] feed "i") {
      %2 = check.index %1 bounds=[6] node="emb/lookup" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
      %3 = gather %0, %2 axis=0 batch_dims=0
      %4 = constant f32[] 2.0
      %5 = broadcast %4 shape=[3,2,4] dims=[]
      %6 = mul %3, %5
      return %6
    }
    """

    /// A failed check returns 3, NAME_last_error gives the same code and the text the in-process
    /// backend throws; a good run afterwards clears it.
    func testFailedCheckReportsTheInProcessMessage() throws {
        let (spec, dir, program) = try build(gather)
        let table = try Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init))
        for indices: [Int32] in [[0, 5, 1, 6, 2, -1], [0, 5, 1, 2, -7, 3]] {
            let feeds = [table, try Tensor(shape: [3, 2], scalars: indices)]
            guard case .failure(let e) = inProcess(spec, feeds), let want = e as? KilnError else { return XCTFail("the in-process run did not fail") }
            guard case .error(let code, let last, let message) = try CArtifactHarness.execute([program], spec, feeds, in: dir) else {
                return XCTFail("the artifact did not fail for \(indices)")
            }
            XCTAssertEqual(code, 3)
            XCTAssertEqual(last, 3)
            XCTAssertEqual(message, want.message)
            XCTAssertTrue(message.hasPrefix("indices[1,1] = 6 is not in [0, 6)") || message.hasPrefix("indices[2,0] = -7 is not in [0, 6)"), message)
        }
        let good = [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, 4, 3] as [Int32])]
        guard case .results(let got) = try CArtifactHarness.execute([program], spec, good, in: dir) else { return XCTFail("good indices failed") }
        CArtifactHarness.assertClose(got, try inProcess(spec, good).get(), tolerance: 0, "gather")
    }

    /// The message is truncated to the buffer, NUL-terminated; a NULL buffer just gives the code.
    func testLastErrorTruncatesAndAcceptsNoBuffer() throws {
        let main = """
            #include <stdio.h>
            #include <string.h>
            #include "net.h"
            int main(void) {
                static float table[24], out[24];
                static const int indices[6] = { 0, 1, 2, 3, 4, 60 };
                const void *feeds[2] = { table, indices };
                void *fetches[1] = { out };
                char small[8];
                memset(small, 'x', sizeof small);
                printf("%d ", net_run(feeds, fetches));
                printf("%d ", net_last_error(NULL, 0));
                printf("%d ", net_last_error(small, sizeof small));
                printf("[%s] %d ", small, net_last_error(small, 0));
                printf("%d\\n", net_set_threads(4));
                return 0;
            }
            """
        let (_, dir, _) = try build(gather, main: main)
        XCTAssertEqual(try ToolRunner.succeed(["./main"], in: dir), "3 3 3 [indices] 3 1\n")
    }

    /// Only the four ABI functions are external, so two artifacts (each with its own copy of the
    /// runtime's portable code) link into one program and both run.
    func testOnlyTheFourFunctionsAreExportedAndTwoArtifactsLinkTogether() throws {
        let (specA, dir, _) = try build(gather, name: "first")
        let symbols = try ToolRunner.succeed(["nm", "-g", "--defined-only", "first.o"], in: dir)
        let names = symbols.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }.sorted()
        XCTAssertEqual(names, ["first_last_error", "first_run", "first_run_with_arena", "first_set_threads"])
        let undefined = try ToolRunner.succeed(["nm", "-u", "first.o"], in: dir)
        XCTAssertFalse(undefined.contains("kiln_"), "the file calls a runtime function it does not define:\n\(undefined)")

        let specB = try CArtifactHarness.spec("""
        func @m(%0: f32[9,37] feed "x") {
          %1 = dot %0, %0 transpose_a=true transpose_b=false
          return %1
        }
        """, name: "second")
        _ = try AheadOfTime.compile(specB, emit: .c, to: dir)
        XCTAssertEqual(specA.name, "first")
        try """
            #include <stdio.h>
            #include "first.h"
            #include "second.h"
            int main(void) {
                static float table[24], out[24], x[9 * 37], xtx[37 * 37];
                static const int indices[6] = { 5, 4, 3, 2, 1, 0 };
                const void *f1[2] = { table, indices }, *f2[1] = { x };
                void *o1[1] = { out }, *o2[1] = { xtx };
                int k, a, b;
                for (k = 0; k < 24; k++) table[k] = (float)k;
                for (k = 0; k < 9 * 37; k++) x[k] = 1.0f;
                a = first_run(f1, o1);
                b = second_run(f2, o2);
                printf("%d %d %g %g\\n", a, b, out[0], xtx[37 * 37 - 1]);
                return 0;
            }
            """.write(toFile: "\(dir)/both.c", atomically: true, encoding: .utf8)
        try ToolRunner.succeed(["cc", "-O2", "-std=c99", "-Wall", "-Werror", "-o", "both", "both.c", "first.c", "second.c", "-lm"], in: dir)
        XCTAssertEqual(try ToolRunner.succeed(["./both"], in: dir), "0 0 40 9\n")
    }

    /// NAME_run called from several threads at once (one on the kept arena, the others on
    /// arenas of their own) always gives the single-threaded result.
    func testConcurrentRunsGiveTheSameResults() throws {
        let text = """
        func @m(%0: f32[16,64] feed "x") {
          %1 = tanh %0
          %2 = dot %1, %0 transpose_a=false transpose_b=true
          %3 = exp %2
          %4 = reduce.sum %3 axes=[1]
          return %4
        }
        """
        let main = """
            #define _POSIX_C_SOURCE 200112L
            #include <pthread.h>
            #include <stdio.h>
            #include <string.h>
            #include "net.h"
            static float x[NET_FEED0_ELEMENTS], want[NET_FETCH0_ELEMENTS];
            static void *work(void *arg) {
                float got[NET_FETCH0_ELEMENTS];
                const void *feeds[1] = { x };
                void *fetches[1] = { got };
                int k;
                (void)arg;
                for (k = 0; k < 300; k++) {
                    memset(got, 0, sizeof got);
                    if (net_run(feeds, fetches) != 0 || memcmp(got, want, sizeof got) != 0) return (void *)1;
                }
                return NULL;
            }
            int main(void) {
                pthread_t threads[8];
                const void *feeds[1] = { x };
                void *fetches[1] = { want };
                int k, bad = 0;
                for (k = 0; k < NET_FEED0_ELEMENTS; k++) x[k] = (float)(k % 13) * 0.01f;
                if (net_run(feeds, fetches) != 0) return 1;
                for (k = 0; k < 8; k++) pthread_create(&threads[k], NULL, work, NULL);
                for (k = 0; k < 8; k++) { void *r; pthread_join(threads[k], &r); bad += r != NULL; }
                printf("%d bad\\n", bad);
                return 0;
            }
            """
        let (_, dir, _) = try build(text, main: main)
        XCTAssertEqual(try ToolRunner.succeed(["./main"], in: dir), "0 bad\n")
    }

    /// The file builds with clang too, and with the vectorised sums asked for.
    func testFileBuildsWithClangAndWithOpenMPSimdSums() throws {
        let (spec, dir, _) = try build("""
        func @m(%0: f32[64,64] feed "x") {
          %1 = reduce.sum %0 axes=[1]
          %2 = dot %0, %0 transpose_a=false transpose_b=false
          return %1, %2
        }
        """, extraFlags: ["-fopenmp-simd", "-DKILN_OPENMP_SIMD"])
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/net.c", encoding: .utf8).contains("KILN_SIMD_SUM("))
        let feeds = [try Tensor(shape: [64, 64], scalars: Self.floats(64 * 64, scale: 0.01))]
        guard case .results(let got) = try CArtifactHarness.execute(["\(dir)/main"], spec, feeds, in: dir) else { return XCTFail("failed") }
        CArtifactHarness.assertClose(got, try inProcess(spec, feeds).get(), tolerance: 1e-5, "omp simd sums")
        if ToolRunner.find("clang") != nil {
            try ToolRunner.succeed(["clang", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", "net.c", "-o", "clang.o"], in: dir)
        } else {
            print("CArtifactTests: clang is missing, the file was not built with it (apt-get install clang)")
        }
    }

    /// The same file cross-compiled for aarch64 and run under qemu gives the same results and
    /// the same failed-check message.
    func testFileCrossCompilesForAarch64AndRunsUnderQemu() throws {
        try XCTSkipUnless(ToolRunner.find("aarch64-linux-gnu-gcc") != nil, "needs aarch64-linux-gnu-gcc: apt-get install gcc-aarch64-linux-gnu")
        try XCTSkipUnless(ToolRunner.find("qemu-aarch64") != nil, "needs qemu-aarch64: apt-get install qemu-user")
        let text = """
        func @m(%0: f32[6,4] feed "p", %1: i32[3,2] feed "i", %2: f32[9,37] feed "x") {
          %3 = check.index %1 bounds=[6] node="emb/lookup" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
          %4 = gather %0, %3 axis=0 batch_dims=0
          %5 = dot %2, %2 transpose_a=true transpose_b=false
          %6 = tanh %5
          %7 = reduce.sum %6 axes=[0]
          return %4, %7
        }
        """
        let spec = try CArtifactHarness.spec(text, name: "net")
        let dir = try CArtifactHarness.directory(self)
        _ = try AheadOfTime.compile(spec, emit: .c, to: dir)
        try CArtifactHarness.mainSource(spec).write(toFile: "\(dir)/main.c", atomically: true, encoding: .utf8)
        try ToolRunner.succeed(["aarch64-linux-gnu-gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", "main", "main.c", "net.c", "-lm"], in: dir)
        let qemu = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "\(dir)/main"]
        let table = try Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init)), x = try Tensor(shape: [9, 37], scalars: Self.floats(9 * 37, scale: 0.05))
        let good = [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, 4, 3] as [Int32]), x]
        guard case .results(let got) = try CArtifactHarness.execute(qemu, spec, good, in: dir) else { return XCTFail("the aarch64 run failed") }
        CArtifactHarness.assertClose(got, try inProcess(spec, good).get(), tolerance: 1e-5, "aarch64 C artifact")
        let bad = [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 6, 2, -1] as [Int32]), x]
        guard case .error(3, 3, let message) = try CArtifactHarness.execute(qemu, spec, bad, in: dir) else { return XCTFail("the aarch64 run did not fail") }
        XCTAssertEqual(message, "indices[1,1] = 6 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')")
    }

    /// Constants are the plan's bytes exactly (a subnormal, -0, the largest float survive); the
    /// rendering is the same on every compile.
    func testConstantsAreExactBytesAndTheFileIsDeterministic() throws {
        let values: [Float] = [0.1, -0.0, 1e-40, 3.4028235e38, 7, -2.5] + (0..<34).map { Float($0) / 3 }
        let text = """
        func @m(%0: f32[40] feed "x") {
          %1 = constant f32[40] [\(values.map { "\($0)" }.joined(separator: ","))]
          %2 = mul %0, %1
          return %2
        }
        """
        let spec = try CArtifactHarness.spec(text, name: "net")
        let layout = try ArtifactLayout(spec: spec, emit: .c, description: CArtifact.description)
        let source = try CArtifact.source(layout)
        XCTAssertEqual(source, try CArtifact.source(layout))
        XCTAssertEqual(layout.plan.constants.count, 1)
        let bytes = values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } }
        XCTAssertTrue(source.contains("static const uint8_t net_constant0[160] KILN_ALIGNED64 = {"), source)
        XCTAssertTrue(source.contains("\n    " + bytes[0..<24].map(String.init).joined(separator: ",") + ",\n"), source)
        XCTAssertTrue(source.contains("\n    " + bytes[144..<160].map(String.init).joined(separator: ",") + ",\n};"), source)
        let (_, dir, program) = try build(text)
        let feeds = [try Tensor(shape: [40], scalars: [Float](repeating: 1, count: 40))]
        guard case .results(let got) = try CArtifactHarness.execute([program], spec, feeds, in: dir) else { return XCTFail("failed") }
        XCTAssertEqual(try got[0].scalars(as: Float.self).map(\.bitPattern), values.map(\.bitPattern))
    }

    /// Strings run on the host: a string feed or fetch is a clear error, not a C file.
    func testStringTensorsAreRefused() throws {
        let spec = try CArtifactHarness.spec("""
        func @m(%0: str[2] feed "s", %1: f32[2] feed "x") {
          return %0, %1
        }
        """, name: "net")
        let layout = try ArtifactLayout(spec: spec, emit: .c, description: CArtifact.description)
        XCTAssertThrowsError(try CArtifact.source(layout)) { e in
            XCTAssertEqual((e as? KilnError)?.code, .invalidArgument)
            XCTAssertEqual((e as? KilnError)?.message, "feed 's:0' is a string tensor: an artifact passes only dense numeric and bool tensors")
        }
    }

    /// The in-process C text is unchanged by the standalone dialect: it binds the runtime table,
    /// and the standalone file calls the runtime by name with nothing exported.
    func testStandaloneDialectCallsTheRuntimeByNameAndInProcessCStillBinds() throws {
        var f = try Parser.parse("""
        func @m(%0: f32[9,37] feed "x") {
          %1 = dot %0, %0 transpose_a=true transpose_b=false
          return %1
        }
        """)
        try PassManager.standard().run(&f)
        let plan = KernelPlan(f, fuse: true, target: CArtifact.description)
        let inProcess = CStyleRenderer(.c99, title: "@m")
        KernelWriter(renderer: inProcess, function: f, plan: plan, target: CArtifact.description).write(entryName: "kiln_m")
        XCTAssertTrue(inProcess.source.contains("kiln_rt->sgemm("))
        XCTAssertTrue(inProcess.source.contains("KILN_EXPORT void kiln_bind(const kiln_runtime_api *api)"))
        XCTAssertTrue(inProcess.source.contains("KILN_EXPORT void kiln_m(void *inputs"))
        let standalone = CStyleRenderer(.c99Standalone, title: "@m")
        KernelWriter(renderer: standalone, function: f, plan: plan, target: CArtifact.description).write(entryName: "net_entry")
        XCTAssertTrue(standalone.source.contains("    kiln_sgemm("), standalone.source)
        XCTAssertTrue(standalone.source.contains("static void net_entry(void *inputs"))
        for absent in ["kiln_rt", "kiln_bind", "KILN_EXPORT", "kiln_runtime_api"] {
            XCTAssertFalse(standalone.source.contains(absent), absent)
        }
    }
}
