import XCTest
import Foundation
import KilnIR
import KilnKernels
@testable import KilnC

/// The C99 rendering of every scalar operation computes what LLVM defines it to: each kernel
/// here is written through the KernelRenderer interface, compiled by the system C compiler and
/// run on edge values, and compared bit for bit with the same operation in Swift.
final class CStyleSemanticsTests: XCTestCase {
    /// Loads operands of type `t` from inputs, applies every integer operation (shifts by a third
    /// input), negation, complement and every predicate, and stores each to its own output.
    func checkIntegerOps<T: FixedWidthInteger & SignedInteger, U: FixedWidthInteger & UnsignedInteger>(
        _ dialect: CDialect, _ t: ScalarType, _ a: [T], _ b: [T], _ s: [T], _: U.Type, file: StaticString = #filePath, line: UInt = #line) throws {
        precondition(T.bitWidth == t.byteSize * 8 && U.bitWidth == T.bitWidth, "Swift types match \(t)")
        func u(_ x: T) -> U { U(truncatingIfNeeded: x) }
        func back(_ x: U) -> T { T(truncatingIfNeeded: x) }
        let ops: [(IntBinary, (T, T, T) -> T)] = [
            (.add, { a, b, _ in a &+ b }), (.sub, { a, b, _ in a &- b }), (.mul, { a, b, _ in a &* b }),
            (.sdiv, { a, b, _ in a / b }), (.srem, { a, b, _ in a % b }),
            (.udiv, { a, b, _ in back(u(a) / u(b)) }), (.urem, { a, b, _ in back(u(a) % u(b)) }),
            (.and, { a, b, _ in a & b }), (.or, { a, b, _ in a | b }), (.xor, { a, b, _ in a ^ b }),
            (.shl, { a, _, s in a &<< s }), (.lshr, { a, _, s in back(u(a) >> u(s)) }),
        ]
        let predicates: [(IntPredicate, (T, T) -> Bool)] = [
            (.eq, ==), (.ne, !=), (.slt, <), (.sle, <=), (.sgt, >), (.sge, >=),
            (.ult, { u($0) < u($1) }), (.ule, { u($0) <= u($1) }), (.ugt, { u($0) > u($1) }), (.uge, { u($0) >= u($1) }),
        ]
        let n = a.count
        let r = CStyleRenderer(dialect)
        renderTestFunction(r, "ints") { r in
            let ba = r.buffer(.input(0)), bb = r.buffer(.input(1)), bs = r.buffer(.input(2))
            r.loop(count: n, hints: LoopHints()) { i in
                let x = r.load(ba, i, t), y = r.load(bb, i, t), sh = r.load(bs, i, t)
                for (k, (op, _)) in ops.enumerated() {
                    r.store(r.int(op, x, op == .shl || op == .lshr ? sh : y), r.buffer(.output(k)), i)
                }
                r.store(r.neg(x), r.buffer(.output(ops.count)), i)
                r.store(r.not(x), r.buffer(.output(ops.count + 1)), i)
                for (k, (p, _)) in predicates.enumerated() {
                    r.store(r.convert(.zext, r.icmp(p, x, y), to: .i8), r.buffer(.output(ops.count + 2 + k)), i)
                }
            }
        }
        let buffers = KernelBuffers()
        buffers.input(a)
        buffers.input(b)
        buffers.input(s)
        for _ in 0..<(ops.count + 2) { buffers.output(T.self, count: n) }
        for _ in predicates { buffers.output(UInt8.self, count: n) }
        try execute(r, "ints", buffers)
        for (k, (op, f)) in ops.enumerated() {
            XCTAssertEqual(buffers.read(output: k, T.self, count: n), (0..<n).map { f(a[$0], b[$0], s[$0]) }, "\(t) \(op)", file: file, line: line)
        }
        XCTAssertEqual(buffers.read(output: ops.count, T.self, count: n), a.map { 0 &- $0 }, "\(t) neg", file: file, line: line)
        XCTAssertEqual(buffers.read(output: ops.count + 1, T.self, count: n), a.map { ~$0 }, "\(t) not", file: file, line: line)
        for (k, (p, f)) in predicates.enumerated() {
            XCTAssertEqual(buffers.read(output: ops.count + 2 + k, UInt8.self, count: n), (0..<n).map { f(a[$0], b[$0]) ? 1 : 0 },
                           "\(t) icmp \(p)", file: file, line: line)
        }
    }

    func testIntegerArithmeticWrapsAndComparesWithLLVMSignedness() throws { try checkIntegerOps(.c99) }
    func testIntegerArithmeticOnOpenCL() throws { try checkIntegerOps(.openCL) }

    func checkIntegerOps(_ dialect: CDialect) throws {
        // Divisors are never 0 and never -1 with MIN (the kernel writer guards those).
        try checkIntegerOps(dialect, .i32, [Int32.max, Int32.min, -7, 7, -1, 0, 123456789, -2, Int32.min],
                            [1, 2, 2, -2, Int32.max, -5, 65536, Int32.min, 3], [1, 31, 0, 3, 31, 5, 16, 1, 30], UInt32.self)
        try checkIntegerOps(dialect, .i64, [Int64.max, Int64.min, -7, 7, -1, 0, 1 << 40, -2, Int64.min],
                            [1, 2, 2, -2, Int64.max, -5, 3, Int64.min, 7], [1, 63, 0, 3, 63, 5, 40, 1, 62], UInt64.self)
        try checkIntegerOps(dialect, .i8, [127, -128, -7, 7, -1, 0, 100, -2, -128] as [Int8], [1, 2, 2, -2, 127, -5, 3, -128, 7], [1, 7, 0, 3, 7, 5, 2, 1, 6],
                            UInt8.self)
    }

    func testFloatPredicatesTreatNaNAsLLVMOrderedAndUnorderedOnesDo() throws { try checkFloatPredicates(.c99) }
    func testFloatPredicatesOnOpenCL() throws { try checkFloatPredicates(.openCL) }

    func checkFloatPredicates(_ dialect: CDialect) throws {
        let nan = Float.nan
        let a: [Float] = [1, 1, 2, nan, 1, nan, -0.0, .infinity, -.infinity]
        let b: [Float] = [1, 2, 1, 1, nan, nan, 0, .infinity, 1]
        let predicates: [(FloatPredicate, (Float, Float) -> Bool)] = [
            (.oeq, ==), (.olt, <), (.ole, <=), (.ogt, >), (.oge, >=), (.une, { !($0 == $1) }), (.ult, { !($0 >= $1) }),
            (.uno, { $0.isNaN || $1.isNaN }),
        ]
        let r = CStyleRenderer(dialect)
        renderTestFunction(r, "fcmps") { r in
            let ba = r.buffer(.input(0)), bb = r.buffer(.input(1))
            r.loop(count: a.count, hints: LoopHints()) { i in
                let x = r.load(ba, i, .f32), y = r.load(bb, i, .f32)
                for (k, (p, _)) in predicates.enumerated() {
                    r.store(r.convert(.zext, r.fcmp(p, x, y), to: .i8), r.buffer(.output(k)), i)
                }
            }
        }
        let buffers = KernelBuffers()
        buffers.input(a)
        buffers.input(b)
        for _ in predicates { buffers.output(UInt8.self, count: a.count) }
        try execute(r, "fcmps", buffers)
        for (k, (p, f)) in predicates.enumerated() {
            XCTAssertEqual(buffers.read(output: k, UInt8.self, count: a.count), a.indices.map { f(a[$0], b[$0]) ? 1 : 0 }, "fcmp \(p)")
        }
    }

    /// A select on `p | q` or `p & q` is rendered as two selects (so GCC vectorises
    /// NaN-propagating max); it still picks what the combined condition says.
    func testSelectsOnCombinedConditionsPickWhatTheConditionSays() throws {
        let nan = Float.nan
        let a: [Float] = [1, 2, nan, 1, nan, -0.0, 3]
        let b: [Float] = [2, 1, 1, nan, nan, 0, 3]
        let r = CStyleRenderer(.c99)
        renderTestFunction(r, "selects") { r in
            let ba = r.buffer(.input(0)), bb = r.buffer(.input(1))
            r.loop(count: a.count, hints: LoopHints()) { i in
                let x = r.load(ba, i, .f32), y = r.load(bb, i, .f32)
                let max = r.select(r.int(.or, r.fcmp(.ogt, x, y), r.fcmp(.uno, x, x)), x, y)
                let min = r.select(r.int(.and, r.fcmp(.olt, x, y), r.fcmp(.oeq, y, y)), x, y)
                r.store(max, r.buffer(.output(0)), i)
                r.store(min, r.buffer(.output(1)), i)
            }
        }
        XCTAssertTrue(r.source.contains(" ? v"), r.source)
        let buffers = KernelBuffers()
        buffers.input(a)
        buffers.input(b)
        buffers.output(Float.self, count: a.count)
        buffers.output(Float.self, count: a.count)
        try execute(r, "selects", buffers)
        XCTAssertEqual(buffers.read(output: 0, Float.self, count: a.count).map(\.bitPattern),
                       a.indices.map { (a[$0] > b[$0] || a[$0].isNaN ? a[$0] : b[$0]).bitPattern })
        XCTAssertEqual(buffers.read(output: 1, Float.self, count: a.count).map(\.bitPattern),
                       a.indices.map { (a[$0] < b[$0] && b[$0] == b[$0] ? a[$0] : b[$0]).bitPattern })
    }

    /// llvm.fptosi.sat: NaN is 0, out-of-range values clamp.
    func saturated<I: FixedWidthInteger & SignedInteger, F: BinaryFloatingPoint>(_ x: F, _: I.Type) -> I {
        if x.isNaN { return 0 }
        if x >= F(sign: .plus, exponent: F.Exponent(I.bitWidth - 1), significand: 1) { return .max }
        if x < -F(sign: .plus, exponent: F.Exponent(I.bitWidth - 1), significand: 1) { return .min }
        return I(x)
    }

    func testConversionsSaturateTruncateAndExtendLikeLLVM() throws { try checkConversions(.c99) }
    func testConversionsOnOpenCL() throws { try checkConversions(.openCL) }

    func checkConversions(_ dialect: CDialect) throws {
        let xs: [Float] = [.nan, .infinity, -.infinity, 1e20, -1e20, 3.7, -3.7, 2147483520, -2147483648, 127.9, -128.9, 200, -0.0, 1e-40]
        let ds: [Double] = [.nan, .infinity, -.infinity, 9.3e18, -9.3e18, 2.5e-300, 1e300, 123456789.987, -0.5, 3.4028235677973366e38,
                            1.0000000596046448, 1e-310, -1.5, 42]
        let bytes: [UInt8] = [0, 1, 127, 128, 255, 200, 7, 64, 129, 254, 3, 100, 250, 90]
        let longs: [Int64] = [0, -1, 255, 256, Int64.max, Int64.min, 1 << 40 | 0x1234_5678, -129, 1 << 53 + 1, -(1 << 60), 3, 9, 77, 1]
        let n = xs.count
        let r = CStyleRenderer(dialect)
        renderTestFunction(r, "casts") { r in
            let bx = r.buffer(.input(0)), bd = r.buffer(.input(1)), bb = r.buffer(.input(2)), bl = r.buffer(.input(3))
            r.loop(count: n, hints: LoopHints()) { i in
                let x = r.load(bx, i, .f32), d = r.load(bd, i, .f64), b = r.load(bb, i, .i8), l = r.load(bl, i, .i64)
                let results: [RValue] = [
                    r.convert(.fptosiSat, x, to: .i64), r.convert(.fptosiSat, x, to: .i32), r.convert(.fptosiSat, x, to: .i8),
                    r.convert(.fpext, x, to: .f64), r.convert(.bitcast, x, to: .i32),
                    r.convert(.fptosiSat, d, to: .i64), r.convert(.fptosiSat, d, to: .i32), r.convert(.fptrunc, d, to: .f32),
                    r.convert(.bitcast, d, to: .i64),
                    r.convert(.zext, b, to: .i32), r.convert(.sext, b, to: .i64), r.convert(.uitofp, b, to: .f32), r.convert(.sitofp, b, to: .f32),
                    r.convert(.trunc, l, to: .i8), r.convert(.trunc, l, to: .i32), r.convert(.sitofp, l, to: .f64), r.convert(.uitofp, l, to: .f32),
                    r.convert(.sitofp, l, to: .f32), r.convert(.zext, r.convert(.trunc, l, to: .i1), to: .i8),
                    r.convert(.bitcast, r.convert(.bitcast, x, to: .i32), to: .f32),
                ]
                for (k, v) in results.enumerated() { r.store(v, r.buffer(.output(k)), i) }
            }
        }
        let buffers = KernelBuffers()
        buffers.input(xs)
        buffers.input(ds)
        buffers.input(bytes)
        buffers.input(longs)
        let sizes = [8, 4, 1, 8, 4, 8, 4, 4, 8, 4, 8, 4, 4, 1, 4, 8, 4, 4, 1, 4]
        for s in sizes { buffers.output(UInt8.self, count: n * s) }
        try execute(r, "casts", buffers)
        func got<T>(_ k: Int, _ t: T.Type) -> [T] { buffers.read(output: k, t, count: n) }
        XCTAssertEqual(got(0, Int64.self), xs.map { saturated($0, Int64.self) })
        XCTAssertEqual(got(1, Int32.self), xs.map { saturated($0, Int32.self) })
        XCTAssertEqual(got(2, Int8.self), xs.map { saturated($0, Int8.self) })
        XCTAssertEqual(got(3, UInt64.self), xs.map { Double($0).bitPattern })
        XCTAssertEqual(got(4, UInt32.self), xs.map { $0.bitPattern })
        XCTAssertEqual(got(5, Int64.self), ds.map { saturated($0, Int64.self) })
        XCTAssertEqual(got(6, Int32.self), ds.map { saturated($0, Int32.self) })
        XCTAssertEqual(got(7, UInt32.self), ds.map { Float($0).bitPattern })
        XCTAssertEqual(got(8, UInt64.self), ds.map { $0.bitPattern })
        XCTAssertEqual(got(9, Int32.self), bytes.map { Int32($0) })
        XCTAssertEqual(got(10, Int64.self), bytes.map { Int64(Int8(bitPattern: $0)) })
        XCTAssertEqual(got(11, Float.self), bytes.map { Float($0) })
        XCTAssertEqual(got(12, Float.self), bytes.map { Float(Int8(bitPattern: $0)) })
        XCTAssertEqual(got(13, UInt8.self), longs.map { UInt8(truncatingIfNeeded: $0) })
        XCTAssertEqual(got(14, Int32.self), longs.map { Int32(truncatingIfNeeded: $0) })
        XCTAssertEqual(got(15, Double.self), longs.map { Double($0) })
        XCTAssertEqual(got(16, Float.self), longs.map { Float(UInt64(bitPattern: $0)) })
        XCTAssertEqual(got(17, Float.self), longs.map { Float($0) })
        XCTAssertEqual(got(18, UInt8.self), longs.map { UInt8($0 & 1) })
        XCTAssertEqual(got(19, UInt32.self), xs.map { $0.bitPattern })
    }

    func testMathFunctionsMatchLibmAndLLVMIntrinsics() throws {
        let nan = Float.nan
        let a: [Float] = [2.5, -2.5, 3.5, -0.5, nan, 1, 0.3, -7.25, .infinity, 1e-3, 0.5]
        let b: [Float] = [1, nan, -3, 0.25, 2, nan, 0.7, 2, 1, -4, 1.5]
        let c: [Float] = [0.1, 3, 1e-8, -1, 0, 2, 1e7, 0.5, 1, 3, -0.75]
        let unary: [(MathFunction, (Float) -> Float)] = [
            (.fabs, { abs($0) }), (.floor, { $0.rounded(.down) }), (.ceil, { $0.rounded(.up) }), (.rint, { $0.rounded(.toNearestOrEven) }),
            (.roundeven, { $0.rounded(.toNearestOrEven) }), (.sqrt, { $0.squareRoot() }), (.sin, { Foundation.sin($0) }),
            (.cos, { Foundation.cos($0) }), (.exp, { Foundation.exp($0) }), (.log, { Foundation.log($0) }),
            (.log1p, { Foundation.log1p($0) }), (.tanh, { Foundation.tanh($0) }),
        ]
        func minnum(_ x: Float, _ y: Float) -> Float { x.isNaN ? y : y.isNaN ? x : Swift.min(x, y) }
        func maxnum(_ x: Float, _ y: Float) -> Float { x.isNaN ? y : y.isNaN ? x : Swift.max(x, y) }
        let binary: [(MathFunction, (Float, Float) -> Float)] = [
            (.pow, { Foundation.pow($0, $1) }), (.minnum, minnum), (.maxnum, maxnum), (.copysign, { Float(sign: $1.sign, exponentBitPattern: $0.exponentBitPattern, significandBitPattern: $0.significandBitPattern) }),
        ]
        let r = CStyleRenderer(.c99)
        renderFunction(r, "maths") { r in
            let ba = r.buffer(.input(0)), bb = r.buffer(.input(1)), bc = r.buffer(.input(2))
            r.loop(count: a.count, hints: LoopHints(vectorize: true)) { i in
                let x = r.load(ba, i, .f32), y = r.load(bb, i, .f32), z = r.load(bc, i, .f32)
                var k = 0
                for (f, _) in unary { r.store(r.math(f, [x]), r.buffer(.output(k)), i); k += 1 }
                for (f, _) in binary { r.store(r.math(f, [x, y]), r.buffer(.output(k)), i); k += 1 }
                r.store(r.math(.fma, [x, y, z]), r.buffer(.output(k)), i)
                r.store(r.float(.rem, x, y), r.buffer(.output(k + 1)), i)
                r.store(r.fneg(x), r.buffer(.output(k + 2)), i)
                // The same in double.
                let wx = r.convert(.fpext, x, to: .f64), wy = r.convert(.fpext, y, to: .f64), wz = r.convert(.fpext, z, to: .f64)
                r.store(r.math(.minnum, [wx, wy]), r.buffer(.output(k + 3)), i)
                r.store(r.math(.fma, [wx, wy, wz]), r.buffer(.output(k + 4)), i)
                r.store(r.math(.roundeven, [wx]), r.buffer(.output(k + 5)), i)
                r.store(r.math(.exp, [wx]), r.buffer(.output(k + 6)), i)
            }
        }
        let so = try load(r)
        let buffers = KernelBuffers()
        buffers.input(a)
        buffers.input(b)
        buffers.input(c)
        for _ in 0..<(unary.count + binary.count + 3) { buffers.output(Float.self, count: a.count) }
        for _ in 0..<4 { buffers.output(Double.self, count: a.count) }
        buffers.run(try kernel(so, "maths"))
        func bitsF(_ k: Int) -> [UInt32] { buffers.read(output: k, Float.self, count: a.count).map(\.bitPattern) }
        func bitsD(_ k: Int) -> [UInt64] { buffers.read(output: k, Double.self, count: a.count).map(\.bitPattern) }
        var k = 0
        for (f, g) in unary { XCTAssertEqual(bitsF(k), a.map { g($0).bitPattern }, "\(f)"); k += 1 }
        for (f, g) in binary { XCTAssertEqual(bitsF(k), a.indices.map { g(a[$0], b[$0]).bitPattern }, "\(f)"); k += 1 }
        XCTAssertEqual(bitsF(k), a.indices.map { c[$0].addingProduct(a[$0], b[$0]).bitPattern }, "fma")
        XCTAssertEqual(bitsF(k + 1), a.indices.map { Foundation.fmod(a[$0], b[$0]).bitPattern }, "frem")
        XCTAssertEqual(bitsF(k + 2), a.map { (-$0).bitPattern }, "fneg")
        let w = { (v: [Float]) in v.map(Double.init) }
        let (wa, wb, wc) = (w(a), w(b), w(c))
        XCTAssertEqual(bitsD(k + 3), wa.indices.map { (wa[$0].isNaN ? wb[$0] : wb[$0].isNaN ? wa[$0] : Swift.min(wa[$0], wb[$0])).bitPattern }, "minnum f64")
        XCTAssertEqual(bitsD(k + 4), wa.indices.map { wc[$0].addingProduct(wa[$0], wb[$0]).bitPattern }, "fma f64")
        XCTAssertEqual(bitsD(k + 5), wa.map { $0.rounded(.toNearestOrEven).bitPattern }, "roundeven f64")
        XCTAssertEqual(bitsD(k + 6), wa.map { Foundation.exp($0).bitPattern }, "exp f64")
    }
}
