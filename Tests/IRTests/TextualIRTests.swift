import XCTest
import KilnTestSupport
import KilnIR

/// One name per Op case. The switch is exhaustive on purpose: a new Op case stops this file from
/// compiling until the round-trip test below covers it.
private func kind(_ op: Op) -> String {
    switch op {
    case .constant: return "constant"
    case .unary: return "unary"
    case .binary: return "binary"
    case .compare: return "compare"
    case .select: return "select"
    case .cast: return "cast"
    case .broadcast: return "broadcast"
    case .reshape: return "reshape"
    case .transpose: return "transpose"
    case .reduce: return "reduce"
    case .dot: return "dot"
    case .iota: return "iota"
    case .slice: return "slice"
    case .pad: return "pad"
    case .concat: return "concat"
    case .gather: return "gather"
    case .argReduce: return "argReduce"
    case .reduceWindow: return "reduceWindow"
    case .patches: return "patches"
    case .unpatches: return "unpatches"
    case .random: return "random"
    case .varRead: return "var.read"
    case .varWrite: return "var.write"
    case .check: return "check"
    }
}

private let allKinds: Set<String> = ["constant", "unary", "binary", "compare", "select", "cast", "broadcast",
                                     "reshape", "transpose", "reduce", "dot", "iota", "slice", "pad", "concat",
                                     "gather", "argReduce", "reduceWindow", "patches", "unpatches", "random", "var.read", "var.write", "check"]

final class TextualIRRoundTripTests: XCTestCase {
    /// A function using every op and every attribute value, with constants chosen to be hard
    /// to print: non-finite and subnormal floats, the sign of zero, integer extremes, and strings
    /// with quotes, backslashes and bytes that are not printable.
    func everyOpFunction() throws -> Function {
        var b = FunctionBuilder(name: "every_op")
        let x = b.addParam("x:0", kind: .feed, type: f32(2, 3))
        let y = b.addParam("a \"quoted\" \\ name", kind: .feed, type: f32(2, 3))
        let flags = b.addParam("flags", kind: .feed, type: TensorType(.bool, [2, 3]))
        let ints = b.addParam("ints", kind: .feed, type: i32(2, 3))
        let counter = b.addParam("counter", kind: .variable, type: i32())
        let weights = b.addParam("weights/kernel", kind: .variable, type: f32(2, 3))
        let step = b.addParam("step", kind: .feed, type: TensorType(.int64, []))

        // Constants of every dtype.
        let floats: [Float] = [.nan, .infinity, -.infinity, -0.0, 0.0, .leastNonzeroMagnitude,
                               .leastNormalMagnitude / 3, .greatestFiniteMagnitude, 0.1, 1.0 / 3.0,
                               -Float.leastNormalMagnitude, 16_777_216]
        _ = b.constant(try Tensor(shape: [3, 4], scalars: floats))
        let doubles: [Double] = [.nan, -.infinity, .leastNonzeroMagnitude, 0.1, .pi, -0.0,
                                 .greatestFiniteMagnitude, 1e300]
        _ = b.constant(try Tensor(shape: [2, 2, 2], scalars: doubles))
        _ = b.constant(try Tensor(shape: [4], scalars: [Int32.min, Int32.max, 0, -1]))
        _ = b.constant(try Tensor(shape: [2, 2], scalars: [Int64.min, Int64.max, (1 << 53) + 1, -1]))
        _ = b.constant(try Tensor(shape: [3], scalars: [0, 255, 7] as [UInt8]))
        _ = b.constant(try Tensor(shape: [2, 2], scalars: [true, false, false, true]))
        _ = b.constant(try Tensor(shape: [2, 2], strings: [
            Array("say \"hi\"".utf8), Array("back\\slash\\x41".utf8),
            [0, 10, 9, 13, 0x7f, 0x80, 0xff, 0x1b], Array("héllo #, %1 = }".utf8),
        ]))
        _ = b.constant(Tensor(""))
        _ = b.constant(try Tensor(shape: [0], strings: []))
        _ = b.constant(try Tensor(zeros: .float32, shape: [2, 0]))
        _ = b.constant(try Tensor(zeros: .int64, shape: [0, 3]))
        _ = b.constant(Tensor(Float(-1.5e-7)))
        _ = b.constant(Tensor(Double(6.02214076e23)))

        // Every unary, binary and compare op.
        for u in UnaryOp.allCases where u != .not { try b.emit(.unary(u), [x]) }
        try b.emit(.unary(.not), [flags])
        for u in [UnaryOp.neg, .abs, .sign] { try b.emit(.unary(u), [ints]) }
        for op in BinaryOp.allCases {
            try b.emit(.binary(op), op == .and || op == .or ? [flags, flags] : [x, y])
        }
        for c in CompareOp.allCases { try b.emit(.compare(c), [x, y]) }

        let sel = try b.emit(.select, [flags, x, y])
        for d in DType.allCases where d != .string { try b.emit(.cast(d), [sel]) }

        let row = try b.emit(.reduce(.sum, axes: [0]), [x])
        let grown = try b.emit(.broadcast(shape: [4, 2, 3], dims: [2]), [row])
        let row1 = try b.emit(.reshape(shape: [1, 3]), [row])
        try b.emit(.broadcast(shape: [2, 3], dims: [0, 1]), [row1])
        let moved = try b.emit(.transpose(perm: [2, 0, 1]), [grown])
        for r in ReduceOp.allCases {
            try b.emit(.reduce(r, axes: [0, 2]), [moved])
            try b.emit(.reduce(r, axes: []), [x])
        }
        let all = try b.emit(.reduce(.max, axes: [0, 1]), [x])
        try b.emit(.reshape(shape: []), [all])

        // dot with every combination of transpose flags.
        let xt = try b.emit(.transpose(perm: [1, 0]), [x])
        let results0 = try b.emit(.dot(transposeA: false, transposeB: false), [x, xt])
        try b.emit(.dot(transposeA: true, transposeB: false), [xt, xt])
        try b.emit(.dot(transposeA: false, transposeB: true), [x, y])
        let batch = try b.emit(.reshape(shape: [1, 2, 3]), [x])
        let batchT = try b.emit(.reshape(shape: [1, 3, 2]), [xt])
        try b.emit(.dot(transposeA: true, transposeB: true), [batch, batchT])

        // Index maps, windows and generators.
        try b.emit(.iota(dtype: .int32, shape: [2, 3], axis: 1), [])
        try b.emit(.iota(dtype: .float64, shape: [4], axis: 0), [])
        try b.emit(.slice(start: [1, 2], strides: [1, -1], shape: [1, 3]), [x])
        try b.emit(.slice(start: [0, 0], strides: [2, 3], shape: [0, 1]), [x])
        let zero = b.constant(Tensor(Float(0)))
        try b.emit(.pad(low: [1, 0], high: [0, 2], mode: .constant), [x, zero])
        try b.emit(.pad(low: [1, 2], high: [1, 1], mode: .reflect), [x, zero])
        try b.emit(.pad(low: [0, 3], high: [2, 0], mode: .symmetric), [x, zero])
        try b.emit(.concat(axis: 0), [x, y])
        try b.emit(.concat(axis: 1), [x, y, x])
        try b.emit(.gather(axis: 0, batchDims: 0), [x, ints])
        try b.emit(.gather(axis: 1, batchDims: 1), [y, ints])
        let idx64 = b.constant(try Tensor(shape: [2], scalars: [2, -1] as [Int64]))
        try b.emit(.gather(axis: 1, batchDims: 0), [x, idx64])
        try b.emit(.argReduce(.argmax, axis: 1, outType: .int64), [x])
        try b.emit(.argReduce(.argmin, axis: 0, outType: .int32), [ints])
        for r in ReduceOp.allCases {
            try b.emit(.reduceWindow(r, window: [1, 2], strides: [1, 1], padLow: [0, 0], padHigh: [0, 1]), [x])
        }
        let image = try b.emit(.reshape(shape: [1, 2, 3, 1]), [x])
        let p = try b.emit(.patches(window: [2, 2], strides: [1, 2], dilations: [1, 1], padLow: [0, 1], padHigh: [1, 0]), [image])
        try b.emit(.unpatches(window: [2, 2], strides: [1, 2], dilations: [1, 1], padLow: [0, 1], padHigh: [1, 0], image: [2, 3]), [p])
        try b.emit(.random(.uniform, dtype: .float32, shape: [2, 3], seed: 0), [step])
        try b.emit(.random(.normal, dtype: .float64, shape: [4], seed: 42), [step])
        try b.emit(.random(.truncatedNormal, dtype: .float32, shape: [], seed: UInt64.max), [step])
        try b.emit(.random(.bits, dtype: .int64, shape: [3, 1], seed: 1 << 63), [step])
        // Checks of every kind, with node names and messages that are hard to print.
        try b.emit(.check(Check(.index(bounds: [5]), node: "scope/gather \"1\"", opType: "GatherV2",
                                message: "indices{index} = {value} is not in [0, 5)")), [ints])
        try b.emit(.check(Check(.index(bounds: [2, 4, 7]), node: "nd", opType: "GatherNd", message: "{index} \\ {value} héllo")), [ints])
        try b.emit(.check(Check(.below(3), node: "seg", opType: "UnsortedSegmentSum", message: "segment_ids{index} = {value}")), [idx64])
        try b.emit(.check(Check(.nonzero, node: "div", opType: "FloorDiv", message: "Integer division by zero")), [ints])
        try b.emit(.check(Check(.positive, node: "rand", opType: "RandomUniformInt", message: "Need minval < maxval: {value}")), [idx64])

        let c = try b.emit(.varRead, [counter])
        let one = b.constant(Tensor(Int32(1)))
        let next = try b.emit(.binary(.add), [c, one])
        try b.emit(.varWrite, [counter, next])
        let w = try b.emit(.varRead, [weights])
        let scaled = try b.emit(.binary(.mul), [w, x])
        try b.emit(.varWrite, [weights, scaled])

        b.setResults([results0, x, next, sel, results0])
        return b.function
    }

    func testEveryOpKindIsCovered() throws {
        let f = try everyOpFunction()
        XCTAssertEqual(Set(f.body.map { kind($0.op) }), allKinds)
    }

    func testPrinterOutputParsesBackToTheSameFunction() throws {
        let f = try everyOpFunction()
        try Verifier.verify(f)
        let text = Printer.print(f)
        let g = try Parser.parse(text)
        XCTAssertEqual(g.name, f.name)
        XCTAssertEqual(g.params, f.params)
        XCTAssertEqual(g.results, f.results)
        XCTAssertEqual(g.body.count, f.body.count)
        // Per instruction, so a failure names the one that did not survive.
        for (a, e) in zip(g.body, f.body) {
            XCTAssertEqual(a, e, "after printing: \(Printer.print(e))")
        }
        XCTAssertEqual(g, f)
    }

    func testPrintingTheParsedFunctionGivesIdenticalText() throws {
        let text = Printer.print(try everyOpFunction())
        XCTAssertEqual(Printer.print(try Parser.parse(text)), text)
    }

    func testFloatConstantsRoundTripBitExactly() throws {
        // NaNs with a payload or the sign bit set arise from arithmetic on NaNs and from bit
        // casts; constant folding must not change them by printing.
        let f32Bits: [UInt32] = [0x7fc0_0000, 0xffc0_0000, 0x7fc0_0001, 0xffc0_1234, 0x7fa0_0000, 0x7f80_0001,
                                 0x0000_0001, 0x8000_0001, 0x007f_ffff, 0x8000_0000, 0x3dcc_cccd]
        let f64Bits: [UInt64] = [0x7ff8_0000_0000_0000, 0xfff8_0000_0000_0000, 0x7ff8_0000_0000_0001,
                                 0x7ff4_0000_0000_0000, 0x0000_0000_0000_0001, 0x8000_0000_0000_0000]
        var b = FunctionBuilder(name: "bits")
        let a = b.constant(try Tensor(shape: [f32Bits.count], scalars: f32Bits.map(Float.init(bitPattern:))))
        let d = b.constant(try Tensor(shape: [f64Bits.count], scalars: f64Bits.map(Double.init(bitPattern:))))
        b.setResults([a, d])
        let g = try Parser.parse(Printer.print(b.function))
        guard case .constant(let ga) = g.body[0].op, case .constant(let gd) = g.body[1].op else {
            return XCTFail("constants did not parse as constants")
        }
        XCTAssertEqual(bits(ga).map { String($0, radix: 16) }, f32Bits.map { String($0, radix: 16) })
        XCTAssertEqual(bits(gd).map { String($0, radix: 16) }, f64Bits.map { String($0, radix: 16) })
    }

    func testPrinterMatchesTheDocumentedForm() throws {
        var b = FunctionBuilder(name: "main")
        let x = b.addParam("x", kind: .feed, type: f32(1, 2))
        let counter = b.addParam("counter", kind: .variable, type: i32())
        let one = b.constant(Tensor(Int32(1)))
        let r = try b.emit(.varRead, [counter])
        let s = try b.emit(.binary(.add), [r, one])
        try b.emit(.varWrite, [counter, s])
        _ = x
        b.setResults([s])
        XCTAssertEqual(Printer.print(b.function), """
        func @main(%0: f32[1,2] feed "x", %1: i32[] var "counter") {
          %2 = constant i32[] 1
          %3 = var.read %1 : i32[]
          %4 = add %3, %2 : i32[]
          %5 = var.write %1, %4
          return %4
        }

        """)
    }

    func testLoggedIRShowsLargeConstantsAsTheirTypeAndCount() throws {
        var b = FunctionBuilder(name: "big")
        let small = b.constant(try Tensor(shape: [2], scalars: [1, 2] as [Float]))
        let large = b.constant(try Tensor(shape: [3, 100], scalars: [Float](repeating: 0.5, count: 300)))
        b.setResults([small, large])
        XCTAssertEqual(Printer.print(b.function, elidingConstantsOver: 64), """
        func @big() {
          %0 = constant f32[2] [1.0, 2.0]
          %1 = constant f32[3,100] <300 elements>
          return %0, %1
        }

        """)
        // The full form is untouched: it still parses back.
        XCTAssertEqual(try Parser.parse(Printer.print(b.function)), b.function)
    }

    func testEmptyFunctionRoundTrips() throws {
        let f = Function(name: "nothing")
        let text = Printer.print(f)
        XCTAssertEqual(text, "func @nothing() {\n  return\n}\n")
        XCTAssertEqual(try Parser.parse(text), f)
    }

    func testInstructionsWithoutTypesRoundTrip() throws {
        // Shape inference has not run on hand-written IR; printing must not invent types.
        let f = Function(name: "untyped", params: [Param(name: "x", kind: .feed, type: f32(2))],
                         body: [Instruction(id: 1, op: .unary(.neg), operands: [0], type: nil),
                                Instruction(id: 2, op: .dot(transposeA: true, transposeB: false), operands: [1, 1], type: nil)],
                         results: [2])
        XCTAssertEqual(try Parser.parse(Printer.print(f)), f)
    }
}

final class HandWrittenIRTests: XCTestCase {
    let text = """
    # A counter step written by hand: types after `:` are left out where shape inference can
    # fill them in.
    func @handwritten(%0: f32[2,2] feed "x", %1: i64[] var "step") {   # parameters
      %2 = constant f32[] 1.5
      %3 = broadcast %2 shape=[2,2] dims=[]
      %4 = add %0, %3        # no type here
      %5 = var.read %1 : i64[]
      %6 = constant i64[] -9223372036854775808
      %7 = add %5, %6
      %8 = var.write %1, %7
      %9 = dot %4, %4 transpose_a=true
      %10 = constant str[2] ["a#b", "\\\\x41\\\\"]
      %11 = reduce.min %9 axes=[0, 1]
      return %9, %7,%11
    }
    # trailing comment
    """

    func testOmittedTypesAndCommentsParse() throws {
        let f = try Parser.parse(text)
        XCTAssertEqual(f.name, "handwritten")
        XCTAssertEqual(f.params, [Param(name: "x", kind: .feed, type: f32(2, 2)),
                                  Param(name: "step", kind: .variable, type: TensorType(.int64, []))])
        XCTAssertEqual(f.body.map(\.id), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        XCTAssertEqual(f.results, [9, 7, 11])
        let byID = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        XCTAssertEqual(byID[2]?.op, .constant(Tensor(Float(1.5))))
        XCTAssertEqual(byID[2]?.type, f32())
        XCTAssertEqual(byID[3]?.op, .broadcast(shape: [2, 2], dims: []))
        XCTAssertEqual(byID[3]?.operands, [2])
        XCTAssertNil(byID[4]?.type)
        XCTAssertEqual(byID[5]?.type, TensorType(.int64, []))
        XCTAssertEqual(byID[6]?.op, .constant(Tensor(Int64.min)))
        XCTAssertEqual(byID[8]?.op, .varWrite)
        XCTAssertEqual(byID[8]?.operands, [1, 7])
        // An omitted flag means false.
        XCTAssertEqual(byID[9]?.op, .dot(transposeA: true, transposeB: false))
        // `#` inside a string is not a comment; `\\x41` is an escaped backslash followed by x41.
        XCTAssertEqual(byID[10]?.op, .constant(try Tensor(shape: [2], strings: [Array("a#b".utf8), Array("\\x41\\".utf8)])))
        XCTAssertEqual(byID[11]?.op, .reduce(.min, axes: [0, 1]))
    }

    func testHandWrittenTextSurvivesAPrintAndParse() throws {
        let f = try Parser.parse(text)
        XCTAssertEqual(try Parser.parse(Printer.print(f)), f)
    }

    func testHexEscapesAndCarriageReturnsParse() throws {
        let f = try Parser.parse("func @e() {\r\n  %0 = constant str[] \"\\x00\\xFf\\x7f\"\r\n  return %0\r\n}")
        XCTAssertEqual(f.body[0].op, .constant(try Tensor(shape: [], strings: [[0, 0xff, 0x7f]])))
    }

    func testNumericConstantsAcceptExponentsAndSigns() throws {
        let f = try Parser.parse("""
        func @n() {
          %0 = constant f32[4] [1e3, -2.5E-2, +7, inf]
          %1 = constant f64[2] [-inf, 1.0e+300]
          %2 = constant u8[2] [255, 0]
          %3 = constant bool[] false
          return %0, %1, %2, %3
        }
        """)
        XCTAssertEqual(f.body[0].op, .constant(try Tensor(shape: [4], scalars: [1000, -0.025, 7, .infinity] as [Float])))
        XCTAssertEqual(f.body[1].op, .constant(try Tensor(shape: [2], scalars: [-.infinity, 1e300] as [Double])))
        XCTAssertEqual(f.body[2].op, .constant(try Tensor(shape: [2], scalars: [255, 0] as [UInt8])))
        XCTAssertEqual(f.body[3].op, .constant(Tensor(false)))
    }
}
