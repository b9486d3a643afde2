import XCTest
import Foundation
import KilnIR
import KilnKernels
import KilnTestSupport
@testable import KilnC

/// The same kernels rendered in both dialects: each spells types, qualifiers, math, conversions
/// and loops its own way, and the OpenCL C output is accepted by an OpenCL C compiler.
final class CDialectSpellingTests: XCTestCase {
    /// A loop with an fma, an unsigned compare, a saturating cast, a bit cast, a while loop and a
    /// read-only array, as a kernel; `ranged` adds a split kernel.
    func render(_ dialect: CDialect) -> CStyleRenderer {
        let r = CStyleRenderer(dialect, title: "spellings")
        renderFunction(r, "sample", kernel: true, exported: false) { r in
            let x = r.buffer(.input(0)), ids = r.buffer(.input(1)), out = r.buffer(.output(0)), codes = r.buffer(.arena(offset: 256, name: "codes"))
            let bias = r.constantArray([0.5, -0.25, 1e-3].map { r.constant(float: $0, .f32) }, .f32, name: "bias")
            let scratch = r.stackArray(.f32, count: 16, name: "scratch")
            let limit = r.constant(int: 7, .i32)
            let total = r.slot(.f64, initial: r.constant(float: 0, .f64))
            r.loop(count: 48, hints: LoopHints(vectorize: true)) { i in
                let v = r.load(x, i, .f32), id = r.load(ids, i, .i32)
                let small = r.icmp(.ult, id, limit)
                let b = r.load(bias, r.int(.urem, r.convert(.zext, id, to: .i64), r.constant(int: 3, .i64)), .f32)
                let y = r.math(.fma, [v, r.constant(float: 2, .f32), b])
                r.store(r.select(small, y, r.constant(float: 0, .f32)), out, i)
                r.store(r.convert(.fptosiSat, y, to: .i64), codes, i)
                r.store(r.convert(.bitcast, y, to: .i32), scratch, r.int(.and, i, r.constant(int: 15, .i64)))
                r.store(r.float(.add, r.load(total), r.convert(.fpext, y, to: .f64)), total)
            }
            let n = r.slot(.i64, initial: r.constant(int: 1, .i64))
            r.whileLoop({ r.icmp(.slt, r.load(n), r.constant(int: 1000, .i64)) }) {
                r.store(r.callRuntime(.ipow, [r.load(n), r.constant(int: 2, .i64)])!, n)
                r.store(r.int(.add, r.load(n), r.constant(int: 1, .i64)), n)
            }
            r.store(r.convert(.trunc, r.load(n), to: .i32), ids, r.constant(int: 0, .i64))
            r.loop(count: 2, hints: LoopHints(keepRolled: true)) { i in
                r.ifThen(r.fcmp(.uno, r.load(scratch, i, .f32), r.load(scratch, i, .f32)), unlikely: true) { r.returnNow() }
            }
        }
        // Rows of a split loop: on the pool (C99), one per work item (OpenCL).
        let device = dialect == .openCL
        renderFunction(r, "rows", ranged: !device, kernel: true, exported: false) { r in
            let x = r.buffer(.input(0)), out = r.buffer(.output(0))
            let row = { (i: RValue) in r.store(r.math(.maxnum, [r.load(x, i, .f32), r.constant(float: 0, .f32)]), out, i) }
            if device { row(r.workItem(.global(0))) } else { r.loop(from: r.parameter(4), to: r.parameter(5), hints: LoopHints(), row) }
        }
        return r
    }

    func assertSpellings(_ source: String, _ spellings: [String], file: StaticString = #filePath, line: UInt = #line) {
        for s in spellings where !source.contains(s) {
            XCTFail("the source has no \(s):\n\(source)", file: file, line: line)
        }
    }

    func testC99Spellings() throws {
        let r = render(.c99)
        assertSpellings(r.source, [
            "static __attribute__((noinline)) void sample(void *inputs, void *outputs, void *arena, void *constants) {",
            "const float *restrict in0 = (const float *)(((void **)inputs)[0]);",
            "int32_t *restrict in1 = (int32_t *)(((void **)inputs)[1]);",
            "int64_t *restrict codes = (int64_t *)((char *)arena + 256);",
            "static const float bias[3] __attribute__((aligned(64))) = {", "0.5f, (-0.25f), 0.001f,",
            "float scratch[16] __attribute__((aligned(64)));", "double s1 = 0.0;",
            "for (int64_t i1 = 0; i1 < 48; i1++) {", "fmaf(", "const bool v", " = (uint32_t)v", "kiln_fptosi_sat_f32_i64(",
            "static inline int64_t kiln_fptosi_sat_f32_i64(float x)", "kiln_bits_f32(", "for (;;) {", "if (!v",
            "kiln_rt->ipow_i64(", "#pragma GCC unroll 1", "if (__builtin_expect(", "kiln_maxnumf(",
            "void rows(void *inputs, void *outputs, void *arena, void *constants, int64_t begin, int64_t end)",
            "for (int64_t i3 = begin; i3 < end; i3++) {", "KILN_EXPORT void kiln_bind(",
        ])
        XCTAssertEqual(r.refusals, [])
        // It compiles (kernels are static, so nothing but kiln_bind is exported).
        let so = try CCompiler().load(source: r.source)
        XCTAssertNoThrow(try so.symbol("kiln_bind"))
        XCTAssertThrowsError(try so.symbol("sample"))
    }

    func testOpenCLSpellingsAndAnOpenCLCompilerAcceptsThem() throws {
        let r = render(.openCL)
        let source = r.source
        assertSpellings(source, [
            // Buffers are parameters; the arena is one, its buffers typed pointers at their offsets.
            "__kernel void sample(__global const float *restrict in0, __global int *restrict in1, __global float *restrict out0, __global char *arena) {",
            "__global long *restrict codes = (__global long *)(arena + 256);",
            "__constant float bias[3] __attribute__((aligned(64))) = {",
            "__private float scratch[16] __attribute__((aligned(64)));", "double s1 = 0.0;",
            "#pragma OPENCL EXTENSION cl_khr_fp64 : enable",
            "for (long i1 = 0; i1 < 48; i1++) {", "fma(", " = (uint)v", "convert_long_sat_rtz(", "as_int(",
            "kiln_ipow_i64(", "long kiln_ipow_i64(long base, long exp)", "#pragma unroll 1", "fmax(",
            "__kernel void rows(__global const float *restrict in0, __global float *restrict out0) {",
            "= (long)get_global_id(0);",
        ])
        for absent in ["kiln_rt", "int64_t", "uint8_t", "fmaf", "__builtin_expect", "kiln_bind", "void *inputs"] {
            XCTAssertFalse(source.contains(absent), "OpenCL C has no \(absent):\n\(source)")
        }
        XCTAssertEqual(r.refusals, [])
        XCTAssertEqual(r.lastFunctionParameters, [.input(0), .output(0)], "the last function's parameters, for its launch")
        guard let clang = ToolRunner.find("clang-15") ?? ToolRunner.find("clang", path: "/usr/lib/llvm-15/bin") else {
            throw XCTSkip("no clang to check the OpenCL C with")
        }
        let file = NSTemporaryDirectory() + "/kiln-opencl-\(getpid()).cl"
        try source.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (status, output) = try ToolRunner.run([clang, "-x", "cl", "-cl-std=CL1.2", "-fsyntax-only", "-Werror=implicit-function-declaration", file])
        XCTAssertEqual(status, 0, "clang rejects the OpenCL C:\n\(output)\n\(source)")
    }

    /// What a device cannot do (the pool, runtime calls, calls through the pointer tables) is
    /// refused in words, and the source carries an #error so no compiler accepts it.
    func testOpenCLRefusesTheRuntimeAndThePool() {
        let r = CStyleRenderer(.openCL)
        let part = RFunction(name: "part", ranged: true)
        renderFunction(r, "entry") { r in
            r.parallelFor(part, count: r.constant(int: 8, .i64))
            _ = r.callRuntime(.sgemm, [])
            r.call(RFunction(name: "other", ranged: false), rows: nil)
        }
        renderFunction(r, "part", ranged: true, kernel: true, exported: false) { _ in }
        XCTAssertEqual(r.refusals.count, 4)
        XCTAssertTrue(r.refusals[3].contains("work items"), r.refusals[3])
        XCTAssertTrue(r.refusals[0].contains("kiln_parallel_for"), r.refusals[0])
        XCTAssertTrue(r.refusals[1].contains("kiln_sgemm"), r.refusals[1])
        XCTAssertTrue(r.source.hasPrefix("/* Kiln: kernels, rendered as OpenCL C. */\n#error \"OpenCL C cannot express kiln_parallel_for"), r.source)
    }
}
