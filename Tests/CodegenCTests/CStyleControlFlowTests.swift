import XCTest
import KilnIR
@testable import KilnKernels
@testable import KilnC

/// Loops, while loops, branches, slots, stack and constant arrays, early returns, an entry that
/// splits a ranged kernel over the worker pool, calls between functions and calls into the C
/// runtime through the table `kiln_bind` receives: rendered as C99, compiled and run.
final class CStyleControlFlowTests: XCTestCase {
    func collatzSteps(_ x: Int64) -> Int64 {
        var v = x.magnitude, steps: Int64 = 0
        while v != 1 { v = v % 2 == 1 ? 3 * v + 1 : v / 2; steps += 1 }
        return steps
    }

    func testLoopsWhileLoopsBranchesSlotsArraysAndEarlyReturn() throws {
        let xs: [Int64] = [1, 6, 27, 97, -3, 8, -5, 871]
        let n = xs.count
        let table: [Float] = (0..<10).map { Float($0) * 1.5 + 0.25 }
        let r = CStyleRenderer(.c99)
        renderFunction(r, "flow") { r in
            let bx = r.buffer(.input(0)), steps = r.buffer(.output(0)), negatives = r.buffer(.output(1))
            let reversed = r.buffer(.output(2)), looked = r.buffer(.output(3))
            let one = r.constant(int: 1, .i64), zero = r.constant(int: 0, .i64)
            let count = r.slot(.i64, initial: zero)
            let cur = r.slot(.i64, initial: nil), step = r.slot(.i64, initial: nil)
            let scratch = r.stackArray(.i64, count: n, name: "scratch")
            let lut = r.constantArray(table.map { r.constant(float: Double($0), .f32) }, .f32, name: "lut")
            r.loop(count: n, hints: LoopHints(keepRolled: true)) { i in
                let x = r.load(bx, i, .i64)
                r.ifThen(r.icmp(.slt, x, zero), unlikely: true) { r.store(r.int(.add, r.load(count), one), count) }
                let ax = r.select(r.icmp(.slt, x, zero), r.neg(x), x)
                r.store(ax, cur)
                r.store(zero, step)
                r.whileLoop({ r.icmp(.ne, r.load(cur), one) }) {
                    let v = r.load(cur)
                    let odd = r.icmp(.ne, r.int(.and, v, one), zero)
                    r.store(r.select(odd, r.int(.add, r.int(.mul, v, r.constant(int: 3, .i64)), one), r.int(.lshr, v, one)), cur)
                    r.store(r.int(.add, r.load(step), one), step)
                }
                r.store(r.load(step), steps, i)
                r.store(x, scratch, i)
                r.store(r.load(lut, r.int(.urem, ax, r.constant(int: 10, .i64)), .f32), looked, i)
            }
            r.loop(from: zero, to: r.constant(int: Int64(n), .i64), hints: LoopHints()) { i in
                r.store(r.load(scratch, r.int(.sub, r.constant(int: Int64(n - 1), .i64), i), .i64), reversed, i)
            }
            r.store(r.load(count), negatives, zero)
            // Returns before writing the sentinel when the first input is 1.
            r.ifThen(r.icmp(.eq, r.load(bx, zero, .i64), one), unlikely: false) { r.returnNow() }
            r.store(r.constant(int: -1, .i64), negatives, one)
        }
        let source = r.source
        for spelling in ["for (;;) {", "__builtin_expect(", "#pragma GCC unroll 1", "static const float lut[10] __attribute__((aligned(64)))",
                         "int64_t scratch[8] __attribute__((aligned(64)));", "return;"] {
            XCTAssertTrue(source.contains(spelling), "C99 source has \(spelling):\n\(source)")
        }
        let so = try load(r)
        for first in [Int64(1), 5] {
            let buffers = KernelBuffers()
            buffers.input([first] + xs.dropFirst())
            buffers.output(Int64.self, count: n)
            buffers.output(Int64.self, count: 2)
            buffers.output(Int64.self, count: n)
            buffers.output(Float.self, count: n)
            buffers.run(try kernel(so, "flow"))
            let inputs = [first] + xs.dropFirst()
            XCTAssertEqual(buffers.read(output: 0, Int64.self, count: n), inputs.map(collatzSteps))
            XCTAssertEqual(buffers.read(output: 1, Int64.self, count: 2), [2, first == 1 ? 0 : -1])
            XCTAssertEqual(buffers.read(output: 2, Int64.self, count: n), inputs.reversed())
            XCTAssertEqual(buffers.read(output: 3, Float.self, count: n), inputs.map { table[Int($0.magnitude % 10)] })
        }
    }

    func testEntrySplitsARangedKernelOnThePoolAndCallsTheRuntimeThroughItsTable() throws {
        let rows = 64, cols = 33
        let r = CStyleRenderer(.c99)
        let part = RFunction(name: "scale_rows", ranged: true), tail = RFunction(name: "finish", ranged: false)
        renderFunction(r, part.name, ranged: true, kernel: true, exported: false) { r in
            let x = r.buffer(.input(0)), y = r.buffer(.arena(offset: 64, name: "scaled"))
            r.loop(from: r.parameter(4), to: r.parameter(5), hints: LoopHints()) { row in
                r.loop(count: cols, hints: LoopHints(vectorize: true)) { c in
                    let k = r.int(.add, r.int(.mul, row, r.constant(int: Int64(cols), .i64)), c)
                    r.store(r.math(.fma, [r.load(x, k, .f32), r.constant(float: 2, .f32), r.constant(float: 0.5, .f32)]), y, k)
                }
            }
        }
        renderFunction(r, tail.name, kernel: true, exported: false) { r in
            let y = r.buffer(.arena(offset: 64, name: "scaled")), out = r.tableEntry(r.parameter(1), 0)
            let power = r.callRuntime(.ipow, [r.constant(int: 3, .i64), r.constant(int: 5, .i64)])!
            let p = r.convert(.sitofp, power, to: .f32)
            let rest = r.offset(out, bytes: r.constant(int: 4, .i64))
            r.loop(count: rows * cols, hints: LoopHints()) { k in r.store(r.float(.add, r.load(y, k, .f32), p), rest, k) }
            r.store(p, out, r.constant(int: 0, .i64))
            let record = r.buffer(.arena(offset: 0, name: "fault"))
            _ = r.callRuntime(.faultRecord, [record, r.constant(int: 3, .i64), r.constant(int: 17, .i64), r.constant(int: -4, .i64)])
        }
        renderFunction(r, "entry") { r in
            let slots = r.tableEntry(r.parameter(3), 0)
            _ = r.callRuntime(.profileTick, [slots, r.constant(int: 0, .i64)])
            r.parallelFor(part, count: r.constant(int: Int64(rows), .i64))
            _ = r.callRuntime(.profileTick, [slots, r.constant(int: 1, .i64)])
            r.call(tail, rows: nil)
            _ = r.callRuntime(.profileTick, [slots, r.constant(int: 2, .i64)])
        }
        let source = r.source
        for spelling in ["kiln_rt->parallel_for(scale_rows, kiln_args, 64);", "kiln_rt->ipow_i64(3, 5)", "finish(inputs, outputs, arena, constants);",
                         "static __attribute__((noinline)) void scale_rows(void *inputs, void *outputs, void *arena, void *constants, int64_t begin, int64_t end)",
                         "float *restrict scaled = (float *)((char *)arena + 64);", "KILN_EXPORT void entry("] {
            XCTAssertTrue(source.contains(spelling), "C99 source has \(spelling):\n\(source)")
        }
        let so = try load(r)
        let x = (0..<(rows * cols)).map { Float($0) * 0.25 - 100 }
        let buffers = KernelBuffers(arenaBytes: 64 + rows * cols * 4)
        buffers.input(x)
        buffers.output(Float.self, count: rows * cols + 1)
        buffers.constant([UInt64](repeating: 0, count: 3))
        buffers.run(try kernel(so, "entry"))
        let got = buffers.read(output: 0, Float.self, count: rows * cols + 1), want = [243] + x.map { Float(0.5).addingProduct($0, 2) + 243 }
        XCTAssertEqual(got.indices.filter { got[$0] != want[$0] }, [], "elements that differ")
        let fault = buffers.arena.assumingMemoryBound(to: Int64.self)
        XCTAssertEqual([fault[0], fault[1], fault[2]], [3, 17, -4], "the fault record written through kiln_rt->fault_record")
        let ticks = UnsafeBufferPointer(start: buffers.constants[0]!.assumingMemoryBound(to: UInt64.self), count: 3)
        XCTAssertTrue(ticks[0] > 0 && ticks[0] <= ticks[1] && ticks[1] <= ticks[2], "profile ticks \(Array(ticks))")
    }

    /// A loop hinted `vectorize` that only sums floats into slots declares them a reduction, so
    /// the sum runs in vector accumulators as LLVM's does (more accurate than one running sum);
    /// hinted loops doing anything else keep their order.
    func testVectorizedFloatSumsAreDeclaredReductions() throws {
        let n = 1 << 20
        let r = CStyleRenderer(.c99)
        renderFunction(r, "sums") { r in
            let x = r.buffer(.input(0)), out = r.buffer(.output(0))
            let sum = r.slot(.f32, initial: r.constant(float: 0, .f32)), biggest = r.slot(.f32, initial: r.constant(float: -.infinity, .f32))
            r.loop(count: n, hints: LoopHints(vectorize: true)) { i in
                r.store(r.float(.add, r.load(sum), r.load(x, i, .f32)), sum)
            }
            r.loop(count: n, hints: LoopHints(vectorize: true)) { i in
                let v = r.load(x, i, .f32), b = r.load(biggest)
                r.store(r.select(r.fcmp(.ogt, v, b), v, b), biggest)
            }
            let copy = r.slot(.f32, initial: r.constant(float: 0, .f32))
            r.loop(count: 4, hints: LoopHints(vectorize: true)) { i in
                r.store(r.float(.add, r.load(copy), r.load(x, i, .f32)), copy)
                r.store(r.load(copy), out, r.int(.add, i, r.constant(int: 2, .i64)))
            }
            r.store(r.load(sum), out, r.constant(int: 0, .i64))
            r.store(r.load(biggest), out, r.constant(int: 1, .i64))
        }
        let source = r.source
        XCTAssertEqual(source.components(separatedBy: "#pragma omp simd").count - 1, 1, source)
        XCTAssertTrue(source.contains("#pragma omp simd reduction(+: s1)\n    for (int64_t i1 = 0; i1 < 1048576; i1++) {"), source)
        let so = try load(r)
        let x = (0..<n).map { Float(0.1) + Float($0 % 7) * 1e-3 }
        let buffers = KernelBuffers()
        buffers.input(x)
        buffers.output(Float.self, count: 6)
        buffers.run(try kernel(so, "sums"))
        let got = buffers.read(output: 0, Float.self, count: 6)
        let exact = x.reduce(0.0) { $0 + Double($1) }
        let sequential = x.reduce(Float(0), +)
        XCTAssertLessThan(abs(Double(got[0]) - exact) / exact, 3e-4, "vector accumulators (one running float sum is off by \(abs(Double(sequential) - exact) / exact))")
        XCTAssertEqual(got[1], x.max())
        XCTAssertEqual(Array(got[2...]), [x[0], x[0] + x[1], x[0] + x[1] + x[2], x[0] + x[1] + x[2] + x[3]])
    }

    /// The runtime table the C prelude declares has CKilnRT.h's layout, member for member.
    func testRenderedRuntimeTableMatchesTheHeader() throws {
        let include = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/CKilnRT/include").standardized.path
        let rendered = CPrelude.runtimeTable.joined(separator: "\n")
            .replacing("kiln_runtime_api", with: "rendered_api").replacing("kiln_range_kernel", with: "rendered_kernel")
            .replacing("kiln_rt", with: "rendered_rt")
        let members = ["parallel_for", "sgemm", "blas_sgemm", "blas_dgemm", "fault_record", "ipow_i64", "profile_tick"]
        let checks = members.map {
            "_Static_assert(offsetof(rendered_api, \($0)) == offsetof(kiln_runtime_api, \($0)), \"\($0)\");"
        }
        let source = (["#include <stddef.h>", "#include \"\(include)/CKilnRT.h\""] + [rendered]
                      + ["_Static_assert(sizeof(rendered_api) == sizeof(kiln_runtime_api), \"size\");"] + checks
                      + ["int rendered_unbound(void) { return rendered_rt == 0; }"]).joined(separator: "\n")
        XCTAssertNoThrow(try CCompiler().load(source: "#include <stdint.h>\n" + source))
        // Every runtime function the renderer can call is a member of the table.
        for f in [RuntimeFunction.sgemm, .blasSgemm, .blasDgemm, .faultRecord, .ipow, .profileTick, .parallelFor] {
            XCTAssertTrue(members.contains(String(f.rawValue.dropFirst("kiln_".count))), "\(f)")
        }
    }
}
