import Foundation
import XCTest
@testable import KilnAOT
import KilnCPU
import KilnIR
import KilnKernels
import KilnPasses
import KilnTestSupport

/// An object artifact linked with a plain C compiler into a program that calls it through the
/// ABI: the outputs of `NAME_run` (and of `NAME_run_with_arena`, which must agree byte for byte)
/// against the in-process LLVM backend.
final class ObjectArtifactTests: XCTestCase {
    static let elementwise = """
    func @e(%0: f32[3,50] feed "x", %1: f32[50] feed "b", %2: i32[3,50] feed "k") {
      %3 = broadcast %1 shape=[3,50] dims=[1]
      %4 = add %0, %3
      %5 = tanh %4
      %6 = exp %0
      %7 = mul %5, %6
      %8 = reduce.sum %7 axes=[1]
      %9 = cast %2 to=f32
      %10 = add %7, %9
      %11 = constant f32[3] [0.5, -1.25, 3]
      %12 = mul %8, %11
      return %10, %12
    }
    """

    func testObjectLinkedWithCCMatchesTheInProcessBackend() throws {
        let program = try ObjectProgram(Self.elementwise, name: "elem")
        defer { program.remove() }
        XCTAssertFalse(program.callsRuntime, "elementwise code needs no runtime library")
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        XCTAssertEqual(result.lastError, 0)
        XCTAssertEqual(result.message, "")
        XCTAssertEqual(result.threads, 1, "code that never splits work runs on the caller alone")
        try assertClose(result.fetches, try program.expected(), tolerance: 1e-6)
    }

    func testTheSameLayoutGivesTheSameBytes() throws {
        let a = try ObjectProgram(Self.elementwise, name: "same", build: false)
        let b = try ObjectProgram(Self.elementwise, name: "same", build: false)
        defer { a.remove(); b.remove() }
        XCTAssertEqual(a.object, b.object)
        XCTAssertFalse(a.object.isEmpty)
        // The bytes name no file, directory or time: only the artifact's name.
        let text = String(decoding: a.object, as: UTF8.self)
        XCTAssertFalse(text.contains(FileManager.default.currentDirectoryPath))
        XCTAssertFalse(text.contains("/tmp"))
        let other = try ObjectProgram(Self.elementwise, name: "other", build: false)
        defer { other.remove() }
        XCTAssertNotEqual(a.object, other.object)
    }

    func testOnlyTheFourABIFunctionsAreGlobal() throws {
        let program = try ObjectProgram(Self.elementwise, name: "only4", build: false)
        defer { program.remove() }
        let defined = try ToolRunner.run(["nm", "-g", "--defined-only", program.objectPath]).output
        let names = defined.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }.sorted()
        XCTAssertEqual(names, ["only4_last_error", "only4_run", "only4_run_with_arena", "only4_set_threads"], defined)
        // Nothing but libc and libm is called: no runtime function, no symbol of Kiln.
        let undefined = try ToolRunner.run(["nm", "-u", program.objectPath]).output
        XCTAssertFalse(undefined.contains("kiln"), undefined)
        let elf = Array(program.object.prefix(4))
        XCTAssertEqual(elf, [0x7F, 0x45, 0x4C, 0x46], "an ELF object")
    }

    /// Constants too large to be immediates live in the object, in the table the entry reads.
    static let withConstants: String = {
        let w = (0..<40).map { "\(Double($0 % 7) * 0.375 - 1)" }
        let rows = stride(from: 0, to: 40, by: 20).map { "[" + w[$0..<$0 + 20].joined(separator: ", ") + "]" }
        let n = (0..<20).map { "\($0 * 3 - 17)" }.joined(separator: ", ")
        return """
        func @c(%0: f32[2,20] feed "x", %1: f64[20] feed "y") {
          %2 = constant f32[2,20] [\(rows.joined(separator: ", "))]
          %3 = mul %0, %2
          %4 = constant i64[20] [\(n)]
          %5 = cast %4 to=f64
          %6 = add %1, %5
          return %3, %6
        }
        """
    }()

    func testLargeConstantsAreInTheObject() throws {
        let program = try ObjectProgram(Self.withConstants, name: "consts")
        defer { program.remove() }
        XCTAssertEqual(program.layout.plan.constants.count, 2, "both constants go through the constant table")
        XCTAssertEqual(program.layout.constantBytes, 40 * 4 + 20 * 8)
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        try assertClose(result.fetches, try program.expected(), tolerance: 0)
    }

    func testScalarsAndAZeroArenaFunction() throws {
        // One element in, one out: nothing is kept in the arena.
        let program = try ObjectProgram("""
        func @s(%0: f64[] feed "x", %1: i64[] feed "n") {
          %2 = mul %0, %0
          %3 = cast %1 to=f64
          %4 = add %2, %3
          return %4
        }
        """, name: "scalar")
        defer { program.remove() }
        XCTAssertEqual(program.layout.arenaBytes, 0, "NAME_run_with_arena takes NULL")
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        try assertClose(result.fetches, try program.expected(), tolerance: 0)
    }
}

// MARK: building and running the C program

/// An artifact of one IR function: its object in a fresh directory, and a C program that feeds
/// it fixed pseudo-random inputs, runs it, and prints what came back.
struct ObjectProgram {
    let function: Function
    let layout: ArtifactLayout
    let object: [UInt8]
    let callsRuntime: Bool
    let directory: URL
    let inputs: [Tensor]
    var objectPath: String { directory.appendingPathComponent(layout.spec.name + ".o").path }
    var executable: String { directory.appendingPathComponent("main").path }

    /// Removes the directory (the object, main.c and the program).
    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// Compiles `ir` (after the standard passes) as artifact `name` for `target`, and links it
    /// with `compiler` plus `libraries` unless `build` is false.
    init(_ ir: String, name: String, target: CPUTarget? = nil, compiler: String = "cc", libraries: [String] = [], build: Bool = true,
         inputs: [Tensor]? = nil, threads: Int32 = 0, concurrentRuns: Int = 0) throws {
        var f = try Parser.parse(ir)
        try PassManager.standard().run(&f)
        function = f
        let types = f.typeTable()
        let feedNames = f.params.map { $0.name + ":0" }
        let fetchNames = f.results.indices.map { "out\($0):0" }
        let feedIds = ArtifactTensor.identifiers(for: feedNames), fetchIds = ArtifactTensor.identifiers(for: fetchNames)
        let spec = ArtifactSpec(name: name, function: f,
                                feeds: f.params.enumerated().map { ArtifactTensor(name: feedNames[$0], type: $1.type, identifier: feedIds[$0]) },
                                fetches: f.results.enumerated().map { ArtifactTensor(name: fetchNames[$0], type: types[$1]!, identifier: fetchIds[$0]) },
                                target: try target ?? CPUTarget.resolve(triple: nil, cpu: nil), origin: "test")
        layout = try ArtifactLayout(spec: spec, emit: .object, description: spec.target.artifactDescription)
        (object, callsRuntime) = try ObjectArtifact.write(layout)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-object-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(object).write(to: URL(fileURLWithPath: directory.appendingPathComponent(name + ".o").path))
        self.inputs = try inputs ?? f.params.enumerated().map { try Self.input($1.type, seed: $0) }
        guard build else { return }
        let source = directory.appendingPathComponent("main.c")
        try Self.program(layout, inputs: self.inputs, threads: threads, concurrentRuns: concurrentRuns).write(to: source, atomically: true, encoding: .utf8)
        var libraries = libraries
        if callsRuntime {
            // As `kiln compile` writes it: NAME_runtime.a beside the object, for the same target.
            let library = directory.appendingPathComponent(ArtifactRuntime.libraryName(name)).path
            try ArtifactRuntime.buildLibrary(prefix: layout.runtimePrefix, target: layout.spec.target, to: library,
                                             environment: ProcessInfo.processInfo.environment)
            libraries.insert(library, at: 0)
        }
        let linked = try ToolRunner.run([compiler, "-std=c11", "-O1", source.path, objectPath] + libraries + ["-lm", "-lpthread", "-o", executable])
        guard linked.status == 0 else { throw KilnError.internalError("\(compiler) failed:\n\(linked.output)") }
    }

    /// Inputs with a spread of values (for integer feeds, small and non-negative: indices).
    static func input(_ t: TensorType, seed: Int) throws -> Tensor {
        let n = t.elementCount
        var state = UInt64(seed + 1) &* 0x9E3779B97F4A7C15
        func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        switch t.dtype {
        case .float32: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Float(next() * 4 - 2) })
        case .float64: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in next() * 4 - 2 })
        case .int32: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Int32(next() * 5) })
        case .int64: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Int64(next() * 5) })
        default: throw KilnError.unimplemented("test inputs of \(t.dtype)")
        }
    }

    /// main.c: the prototypes (as the header will declare them), the inputs as bytes, a run
    /// through NAME_run and one through NAME_run_with_arena, and each fetch's bytes in hex.
    /// With `concurrentRuns`, four threads then call NAME_run that many times each at once (one
    /// owns the artifact's arena, the others get temporary ones) and compare with the first run.
    /// With `header`, the program includes `NAME.h` instead of declaring the functions itself.
    static func program(_ layout: ArtifactLayout, inputs: [Tensor], threads: Int32, concurrentRuns: Int = 0, header: Bool = false) -> String {
        let n = layout.spec.name
        var c = """
        #include <pthread.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>

        """
        c += header ? "#include \"\(n).h\"\n" : """
        int \(n)_run(const void *const feeds[], void *const fetches[]);
        int \(n)_run_with_arena(const void *const feeds[], void *const fetches[], void *arena);
        int \(n)_set_threads(int threads);
        int \(n)_last_error(char *message, size_t size);

        """
        for (k, t) in inputs.enumerated() {
            let bytes = t.withUnsafeBytes { Array($0.prefix(t.byteCount)) }
            c += "static _Alignas(64) const unsigned char feed\(k)[\(max(bytes.count, 1))] = {\(bytes.isEmpty ? "0" : bytes.map { "\($0)" }.joined(separator: ","))};\n"
        }
        for (k, f) in layout.spec.fetches.enumerated() {
            let bytes = max(f.type.elementCount * f.type.dtype.byteSize, 1)
            c += "static _Alignas(64) unsigned char fetch\(k)[\(bytes)], again\(k)[\(bytes)];\n"
        }
        let feedList = inputs.isEmpty ? "0" : inputs.indices.map { "feed\($0)" }.joined(separator: ", ")
        let fetchBytes = layout.spec.fetches.map { max($0.type.elementCount * $0.type.dtype.byteSize, 1) }
        c += """
        static const void *const all_feeds[] = {\(feedList)};
        // One thread's runs: each must give what the first run gave.
        static void *runs(void *unused) {
            (void)unused;
            int bad = 0;
        \(fetchBytes.enumerated().map { "    unsigned char *mine\($0) = malloc(\($1));" }.joined(separator: "\n"))
            void *const mine[] = {\(fetchBytes.indices.map { "mine\($0)" }.joined(separator: ", "))};
            for (int r = 0; r < \(concurrentRuns); r++) {
                if (\(n)_run(all_feeds, mine) != 0) bad++;
        \(fetchBytes.enumerated().map { "        if (memcmp(mine\($0), fetch\($0), \($1)) != 0) bad++;" }.joined(separator: "\n"))
            }
        \(fetchBytes.indices.map { "    free(mine\($0));" }.joined(separator: "\n"))
            return (void *)(intptr_t)bad;
        }

        """
        c += """
        static void print_fetch(int k, const unsigned char *p, size_t size) {
            printf("fetch %d ", k);
            for (size_t i = 0; i < size; i++) printf("%02x", p[i]);
            printf("\\n");
        }

        int main(void) {
            const void *const feeds[] = {\(feedList)};
            void *const fetches[] = {\(layout.spec.fetches.indices.map { "fetch\($0)" }.joined(separator: ", "))};
            void *const again[] = {\(layout.spec.fetches.indices.map { "again\($0)" }.joined(separator: ", "))};
            printf("threads %d\\n", \(n)_set_threads(\(threads)));
            int code = \(n)_run(feeds, fetches);
            char message[1024];
            int last = \(n)_last_error(message, sizeof message);
            printf("code %d\\nlast %d\\nmessage %s\\n", code, last, message);
            char tiny[8];
            \(n)_last_error(tiny, sizeof tiny);
            printf("truncated %s\\n", tiny);
            printf("no buffer %d\\n", \(n)_last_error(NULL, 0));
            void *arena = \(layout.arenaBytes) ? aligned_alloc(64, (\(layout.arenaBytes) + 63) / 64 * 64) : NULL;
            int code2 = \(n)_run_with_arena(feeds, again, arena);
            free(arena);
            printf("arena code %d\\n", code2);

        """
        for (k, f) in layout.spec.fetches.enumerated() {
            let bytes = f.type.elementCount * f.type.dtype.byteSize
            c += "    printf(\"same %d %d\\n\", \(k), memcmp(fetch\(k), again\(k), \(bytes)) == 0);\n"
            c += "    print_fetch(\(k), fetch\(k), \(bytes));\n"
        }
        if concurrentRuns > 0 {
            c += """
                pthread_t threads[4];
                for (int t = 0; t < 4; t++) pthread_create(&threads[t], NULL, runs, NULL);
                long bad = 0;
                for (int t = 0; t < 4; t++) { void *r; pthread_join(threads[t], &r); bad += (long)(intptr_t)r; }
                printf("concurrent failures %ld\\n", bad);

            """
        }
        c += "    return 0;\n}\n"
        return c
    }

    struct Result {
        var output: String
        var threads = -1, code = -1, lastError = -1, arenaCode = -1
        var message = "", truncated = ""
        var noBuffer = -1, concurrentFailures = -1
        var fetches: [Tensor] = []
    }

    /// Runs the program (through `runner`, e.g. qemu) and reads back what it printed.
    func run(runner: [String] = []) throws -> Result {
        let ran = try ToolRunner.run(runner + [executable])
        guard ran.status == 0 else { throw KilnError.internalError("the program failed (\(ran.status)):\n\(ran.output)") }
        var r = Result(output: ran.output)
        var hex: [Int: String] = [:]
        for line in ran.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            func value(_ prefix: String) -> String? { line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)) : nil }
            if let v = value("threads ") { r.threads = Int(v) ?? -1 }
            if let v = value("code ") { r.code = Int(v) ?? -1 }
            if let v = value("last ") { r.lastError = Int(v) ?? -1 }
            if let v = value("message ") { r.message = v }
            if let v = value("truncated ") { r.truncated = v }
            if let v = value("arena code ") { r.arenaCode = Int(v) ?? -1 }
            if let v = value("no buffer ") { r.noBuffer = Int(v) ?? -1 }
            if let v = value("concurrent failures ") { r.concurrentFailures = Int(v) ?? -1 }
            if let v = value("same "), r.code == 0, !v.hasSuffix(" 1") { throw KilnError.internalError("NAME_run_with_arena disagrees with NAME_run: \(line)") }
            if let v = value("fetch ") {
                let parts = v.split(separator: " ", omittingEmptySubsequences: false)
                hex[Int(parts[0])!] = parts.count > 1 ? String(parts[1]) : ""
            }
        }
        let types = function.typeTable()
        r.fetches = try function.results.indices.map { k in
            let t = types[function.results[k]]!
            let digits = Array(hex[k] ?? "")
            let buffer = try TensorBuffer(byteCount: t.elementCount * t.dtype.byteSize)
            guard digits.count == buffer.byteCount * 2 else { throw KilnError.internalError("fetch \(k): \(digits.count / 2) bytes, want \(buffer.byteCount)") }
            for i in 0..<buffer.byteCount {
                buffer.pointer.storeBytes(of: UInt8(String(digits[2 * i ..< 2 * i + 2]), radix: 16)!, toByteOffset: i, as: UInt8.self)
            }
            return try Tensor(dtype: t.dtype, shape: t.shape, buffer: buffer)
        }
        return r
    }

    /// The same function through the in-process LLVM backend.
    func expected() throws -> [Tensor] {
        var params = inputs
        return try LLVMBackend().compile(function).run(&params)
    }
}

func assertClose(_ got: [Tensor], _ want: [Tensor], tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertEqual(got.count, want.count, file: file, line: line)
    for (k, (g, w)) in zip(got, want).enumerated() {
        XCTAssertEqual(g.shape, w.shape, file: file, line: line)
        XCTAssertEqual(g.dtype, w.dtype, file: file, line: line)
        for (i, (a, b)) in zip(g.doubles, w.doubles).enumerated() where !(abs(a - b) <= tolerance * max(1, abs(b))) && !(a.isNaN && b.isNaN) {
            return XCTFail("fetch \(k) element \(i): \(a), want \(b)", file: file, line: line)
        }
    }
}
