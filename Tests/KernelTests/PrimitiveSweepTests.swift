import XCTest
import KilnIR
import KilnPasses

/// Every backend against the reference evaluator, for every primitive and every dtype it
/// accepts, on seeded random inputs. Each case is a one-instruction function over fed parameters,
/// so nothing folds away and the generated loop is what gets checked.
final class PrimitiveSweepTests: XCTestCase {
    struct RNG {
        var source: SplitMix64
        mutating func next() -> UInt64 { source.next() }
        mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
        mutating func double(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(next() >> 11) * 0x1p-53 }
    }

    var rng = RNG(source: SplitMix64(seed: 2024))
    var cases: [KernelCase] = []

    func random(_ t: TensorType, positive: Bool = false) throws -> Tensor {
        var out = try Tensor(zeros: t.dtype, shape: t.shape)
        for i in 0..<t.elementCount {
            switch t.dtype {
            case .float32, .float64, .float16, .bfloat16: try out.setElement(.f(positive ? rng.double(0.1, 4) : rng.double(-4, 4)), at: i)
            case .int32, .int64, .int16: try out.setElement(.i(Int64(positive ? rng.int(1...9) : rng.int(-9...9))), at: i)
            case .uint8: try out.setElement(.i(Int64(rng.int(0...255))), at: i)
            case .bool: try out.setElement(.b(rng.next() & 1 == 1), at: i)
            case .string: break
            }
        }
        return out
    }

    /// Adds the case `op` on parameters of `inputs` types (seeded random values unless given).
    func add(_ op: Op, _ inputs: [TensorType], values: [Tensor]? = nil, positive: Bool = false, agreement: Agreement = .relative(1e-5),
             deviceAgreement: Agreement? = nil) throws {
        var b = FunctionBuilder(name: "sweep")
        let params = inputs.enumerated().map { b.addParam("p\($0.offset)", kind: .feed, type: $0.element) }
        b.setResults([try b.emit(op, params)])
        let args = try values ?? inputs.map { try random($0, positive: positive) }
        let name = "\(op.mnemonic) " + inputs.map { "\($0.dtype.name)\($0.shape)" }.joined(separator: ", ")
        // Half operands compute in float32 (as the standard pipeline arranges); the float32
        // result may round to the other neighbouring half where the backends' float32 differs
        // from the reference's in the last bit (transcendentals).
        var f = b.function
        try HalfPrecisionPass().run(&f)
        let half = f.typeTable().values.map(\.dtype).filter(\.isHalf)
        let agreement: Agreement = half.isEmpty ? agreement : .relative(half.contains(.bfloat16) ? 8e-3 : 1e-3)
        cases.append(KernelCase(name, f, args, agreement: agreement, deviceAgreement: half.isEmpty ? deviceAgreement : agreement))
    }

    /// Runs the cases added so far on every backend, as batches of independent one-instruction
    /// functions (nothing fuses across them: each is its own kernel over its own parameters).
    func runCases(_ suite: String, file: StaticString = #filePath, line: UInt = #line) {
        BackendRunner.run("primitive sweep: \(suite)", cases, batch: 48, file: file, line: line)
    }

    let numeric: [DType] = [.float32, .float64, .int32, .int64, .int16, .uint8, .float16, .bfloat16]
    let floats: [DType] = [.float32, .float64, .float16, .bfloat16]

    func testUnaryPrimitivesOnEveryDType() throws {
        for u in UnaryOp.allCases {
            let dtypes: [DType]
            switch u {
            case .not: dtypes = [.bool]
            case .neg, .abs, .sign: dtypes = numeric
            default: dtypes = floats
            }
            let positive = [.log, .sqrt, .rsqrt, .log1p].contains(u)
            for d in dtypes { try add(.unary(u), [TensorType(d, [3, 17])], positive: positive) }
        }
        runCases("unary")
    }

    func testBinaryPrimitivesOnEveryDType() throws {
        for op in BinaryOp.allCases {
            let dtypes: [DType] = op == .and || op == .or ? [.bool] : numeric
            for d in dtypes {
                let t = TensorType(d, [5, 19])
                // Division-like ops also see zeros and negative divisors.
                try add(.binary(op), [t, t], positive: op == .pow && d.isFloatingPoint)
            }
        }
        // int16 arithmetic wraps at 16 bits.
        let a = try Tensor(shape: [4], scalars: [Int16.max, Int16.min, 300, -181]), b = try Tensor(shape: [4], scalars: [Int16(1), -1, 300, 181])
        for op in [BinaryOp.add, .sub, .mul] { try add(.binary(op), [TensorType(.int16, [4]), TensorType(.int16, [4])], values: [a, b]) }
        runCases("binary")
    }

    func testComparisonsSelectAndCasts() throws {
        for c in CompareOp.allCases { for d in numeric + [.bool] { try add(.compare(c), [TensorType(d, [4, 9]), TensorType(d, [4, 9])]) } }
        for d in numeric { try add(.select, [TensorType(.bool, [33]), TensorType(d, [33]), TensorType(d, [33])]) }
        for from in numeric + [.bool] { for to in numeric + [.bool] { try add(.cast(to), [TensorType(from, [2, 21])]) } }
        // Narrowing float64 flushes float32 subnormals to zero, as TensorFlow's Cast does.
        try add(.cast(.float32), [TensorType(.float64, [4])], values: [Tensor(shape: [4], scalars: [1e-40, -1e-40, 3e38, 0.1])])
        // Out-of-range floats saturate, NaN casts to 0.
        let wide = try Tensor(shape: [8], scalars: [1e10, -1e10, 300, -3, .nan, .infinity, -.infinity, 255.9] as [Double])
        for to in [DType.int32, .int64, .int16, .uint8] { try add(.cast(to), [TensorType(.float64, [8])], values: [wide]) }
        // Narrowing integers keeps the low bits; int16 sign-extends when widened.
        let int32s = try Tensor(shape: [6], scalars: [70000, -40000, 32768, -32769, 65535, -5] as [Int32])
        for to in [DType.int16, .uint8] { try add(.cast(to), [TensorType(.int32, [6])], values: [int32s]) }
        let int16s = try Tensor(shape: [4], scalars: [Int16.min, -1, 300, Int16.max])
        for to in [DType.int32, .int64, .uint8, .float32] { try add(.cast(to), [TensorType(.int16, [4])], values: [int16s]) }
        runCases("compare, select, cast")
    }

    func testIndexMapPrimitives() throws {
        for d in numeric + [.bool] {
            try add(.broadcast(shape: [3, 4, 5], dims: [0, 2]), [TensorType(d, [3, 5])])
            try add(.broadcast(shape: [6, 4], dims: [0, 1]), [TensorType(d, [1, 4])])
            try add(.reshape(shape: [10, 3]), [TensorType(d, [5, 6])])
            try add(.transpose(perm: [2, 0, 1]), [TensorType(d, [2, 3, 4])])
            try add(.slice(start: [3, 1], strides: [-1, 2], shape: [3, 3]), [TensorType(d, [4, 7])])
            try add(.concat(axis: 1), [TensorType(d, [2, 3]), TensorType(d, [2, 1]), TensorType(d, [2, 4])])
            for mode in PadMode.allCases {
                try add(.pad(low: [1, 2], high: [2, 1], mode: mode), [TensorType(d, [3, 4]), TensorType(d, [])])
            }
        }
        for d in numeric { try add(.iota(dtype: d, shape: [3, 5], axis: 1), []) }
        runCases("index maps")
    }

    func testGatherIncludingOutOfRangeIndices() throws {
        for id in [DType.int32, .int64] {
            let idx = try Tensor(literal: [[0, 4], [2, 9], [-1, 3]] as [[Int64]], dtype: id)
            for d in numeric {
                let p = try random(TensorType(d, [5, 3]))
                try add(.gather(axis: 0, batchDims: 0), [TensorType(d, [5, 3]), TensorType(id, [3, 2])], values: [p, idx])
                let q = try random(TensorType(d, [3, 5]))
                try add(.gather(axis: 1, batchDims: 1), [TensorType(d, [3, 5]), TensorType(id, [3, 2])], values: [q, idx])
            }
        }
        runCases("gather")
    }

    func testReductionsArgReductionsAndWindows() throws {
        for r in ReduceOp.allCases {
            for d in numeric {
                for axes in [[0], [1], [0, 2], [0, 1, 2]] { try add(.reduce(r, axes: axes), [TensorType(d, [3, 4, 37])], agreement: .relative(1e-4)) }
            }
        }
        for r in [ReduceOp.max, .min] { try add(.reduce(r, axes: [1]), [TensorType(.bool, [3, 7])]) }
        for a in ArgReduceOp.allCases { for d in numeric {
            try add(.argReduce(a, axis: 1, outType: .int64), [TensorType(d, [4, 11])])
            try add(.argReduce(a, axis: 0, outType: .int32), [TensorType(d, [4, 11])])
        } }
        for r in [ReduceOp.max, .sum, .min] { for d in [DType.float32, .int32, .float16, .bfloat16] {
            try add(.reduceWindow(r, window: [1, 3, 3, 1], strides: [1, 2, 2, 1], padLow: [0, 1, 1, 0], padHigh: [0, 1, 1, 0]),
                    [TensorType(d, [2, 7, 7, 3])], agreement: .relative(1e-4))
        } }
        for d in [DType.float32, .float16, .bfloat16] {
            try add(.patches(window: [3, 2], strides: [2, 1], dilations: [1, 2], padLow: [1, 1], padHigh: [1, 0]), [TensorType(d, [2, 6, 5, 3])])
        }
        for d in [DType.float32, .float64, .int32, .float16, .bfloat16] {
            try add(.unpatches(window: [3, 2], strides: [2, 1], dilations: [1, 2], padLow: [1, 1], padHigh: [1, 0], image: [6, 5]),
                    [TensorType(d, [2, 3, 4, 18])])
        }
        runCases("reductions and windows")
    }

    func testDotThroughLibrariesAndLoops() throws {
        for d in [DType.float32, .float64, .int32, .int64, .float16, .bfloat16] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = ta ? [7, 5] : [5, 7], b = tb ? [3, 7] : [7, 3]
                try add(.dot(transposeA: ta, transposeB: tb), [TensorType(d, a), TensorType(d, b)], agreement: .relative(1e-4))
                try add(.dot(transposeA: ta, transposeB: tb), [TensorType(d, [2] + a), TensorType(d, [2] + b)], agreement: .relative(1e-4))
            }
        }
        runCases("dot")
    }

    func testRandomPrimitivesAreBitIdenticalToTheReference() throws {
        for counter: Int64 in [0, 7] {
            for (kind, d) in [(RandomKind.uniform, DType.float32), (.uniform, .float64), (.normal, .float32), (.normal, .float64),
                              (.truncatedNormal, .float32), (.truncatedNormal, .float64), (.bits, .int64), (.uniform, .float16), (.normal, .bfloat16)] {
                // Normals go through log and cos, which a device computes to a few ulp, not as glibc.
                let normal = kind == .normal || kind == .truncatedNormal
                try add(.random(kind, dtype: d, shape: [4, 33], seed: 99), [TensorType(.int64, [])], values: [Tensor(counter)], agreement: .exact,
                        deviceAgreement: normal ? .relative(1e-6) : nil)
            }
        }
        runCases("random")
    }
}
