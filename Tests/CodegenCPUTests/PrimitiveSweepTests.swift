import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// The JIT against the reference evaluator, for every primitive and every dtype it accepts, on
/// seeded random inputs. Each case is a one-instruction function over fed parameters, so nothing
/// folds away and the generated loop is what gets checked.
final class PrimitiveSweepTests: XCTestCase {
    struct RNG {
        var source: SplitMix64
        mutating func next() -> UInt64 { source.next() }
        mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
        mutating func double(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(next() >> 11) * 0x1p-53 }
    }

    var rng = RNG(source: SplitMix64(seed: 2024))

    func random(_ t: TensorType, positive: Bool = false) throws -> Tensor {
        var out = try Tensor(zeros: t.dtype, shape: t.shape)
        for i in 0..<t.elementCount {
            switch t.dtype {
            case .float32, .float64: try out.setElement(.f(positive ? rng.double(0.1, 4) : rng.double(-4, 4)), at: i)
            case .int32, .int64: try out.setElement(.i(Int64(positive ? rng.int(1...9) : rng.int(-9...9))), at: i)
            case .uint8: try out.setElement(.i(Int64(rng.int(0...255))), at: i)
            case .bool: try out.setElement(.b(rng.next() & 1 == 1), at: i)
            case .string: break
            }
        }
        return out
    }

    /// Runs `op` on parameters of `inputs` types through both engines and compares.
    func check(_ op: Op, _ inputs: [TensorType], values: [Tensor]? = nil, positive: Bool = false, rtol: Double = 1e-5,
               file: StaticString = #filePath, line: UInt = #line) throws {
        var b = FunctionBuilder(name: "sweep")
        let params = inputs.enumerated().map { b.addParam("p\($0.offset)", kind: .feed, type: $0.element) }
        let r = try b.emit(op, params)
        b.setResults([r])
        let f = b.function
        let args = try values ?? inputs.map { try random($0, positive: positive) }
        let exe = try LLVMBackend().compile(f)
        var jitArgs = args
        let got = try exe.run(&jitArgs)[0]
        let want = try ReferenceEvaluator.run(f, parameters: args).results[0]
        XCTAssertEqual(got.shape, want.shape, "\(op.mnemonic) \(inputs)", file: file, line: line)
        XCTAssertEqual(got.dtype, want.dtype, "\(op.mnemonic) \(inputs)", file: file, line: line)
        for i in 0..<want.elementCount {
            let (x, y) = (got.element(at: i), want.element(at: i))
            if want.dtype.isFloatingPoint {
                let (a, c) = (x.asDouble, y.asDouble)
                if a.isNaN && c.isNaN || a == c { continue }
                if Swift.abs(a - c) > rtol * Swift.max(1, Swift.abs(c)) {
                    return XCTFail("\(op.mnemonic) \(inputs) element \(i): JIT \(a), reference \(c); inputs \(args)", file: file, line: line)
                }
            } else if x != y {
                return XCTFail("\(op.mnemonic) \(inputs) element \(i): JIT \(x), reference \(y); inputs \(args)", file: file, line: line)
            }
        }
    }

    let numeric: [DType] = [.float32, .float64, .int32, .int64, .uint8]

    func testUnaryPrimitivesOnEveryDType() throws {
        for u in UnaryOp.allCases {
            let dtypes: [DType]
            switch u {
            case .not: dtypes = [.bool]
            case .neg, .abs, .sign: dtypes = numeric
            default: dtypes = [.float32, .float64]
            }
            let positive = [.log, .sqrt, .rsqrt, .log1p].contains(u)
            for d in dtypes { try check(.unary(u), [TensorType(d, [3, 17])], positive: positive) }
        }
    }

    func testBinaryPrimitivesOnEveryDType() throws {
        for op in BinaryOp.allCases {
            let dtypes: [DType] = op == .and || op == .or ? [.bool] : numeric
            for d in dtypes {
                let t = TensorType(d, [5, 19])
                // Division-like ops also see zeros and negative divisors.
                try check(.binary(op), [t, t], positive: op == .pow && d.isFloatingPoint)
            }
        }
    }

    func testComparisonsSelectAndCasts() throws {
        for c in CompareOp.allCases { for d in numeric + [.bool] { try check(.compare(c), [TensorType(d, [4, 9]), TensorType(d, [4, 9])]) } }
        for d in numeric { try check(.select, [TensorType(.bool, [33]), TensorType(d, [33]), TensorType(d, [33])]) }
        for from in numeric + [.bool] { for to in numeric + [.bool] { try check(.cast(to), [TensorType(from, [2, 21])]) } }
        // Narrowing float64 flushes float32 subnormals to zero, as TensorFlow's Cast does.
        try check(.cast(.float32), [TensorType(.float64, [4])], values: [Tensor(shape: [4], scalars: [1e-40, -1e-40, 3e38, 0.1])])
    }

    func testIndexMapPrimitives() throws {
        for d in numeric + [.bool] {
            try check(.broadcast(shape: [3, 4, 5], dims: [0, 2]), [TensorType(d, [3, 5])])
            try check(.broadcast(shape: [6, 4], dims: [0, 1]), [TensorType(d, [1, 4])])
            try check(.reshape(shape: [10, 3]), [TensorType(d, [5, 6])])
            try check(.transpose(perm: [2, 0, 1]), [TensorType(d, [2, 3, 4])])
            try check(.slice(start: [3, 1], strides: [-1, 2], shape: [3, 3]), [TensorType(d, [4, 7])])
            try check(.concat(axis: 1), [TensorType(d, [2, 3]), TensorType(d, [2, 1]), TensorType(d, [2, 4])])
            for mode in PadMode.allCases {
                try check(.pad(low: [1, 2], high: [2, 1], mode: mode), [TensorType(d, [3, 4]), TensorType(d, [])])
            }
        }
        for d in numeric { try check(.iota(dtype: d, shape: [3, 5], axis: 1), []) }
    }

    func testGatherIncludingOutOfRangeIndices() throws {
        for id in [DType.int32, .int64] {
            let idx = try Tensor(literal: [[0, 4], [2, 9], [-1, 3]] as [[Int64]], dtype: id)
            for d in numeric {
                let p = try random(TensorType(d, [5, 3]))
                try check(.gather(axis: 0, batchDims: 0), [TensorType(d, [5, 3]), TensorType(id, [3, 2])], values: [p, idx])
                let q = try random(TensorType(d, [3, 5]))
                try check(.gather(axis: 1, batchDims: 1), [TensorType(d, [3, 5]), TensorType(id, [3, 2])], values: [q, idx])
            }
        }
    }

    func testReductionsArgReductionsAndWindows() throws {
        for r in ReduceOp.allCases {
            for d in numeric {
                for axes in [[0], [1], [0, 2], [0, 1, 2]] { try check(.reduce(r, axes: axes), [TensorType(d, [3, 4, 37])], rtol: 1e-4) }
            }
        }
        for r in [ReduceOp.max, .min] { try check(.reduce(r, axes: [1]), [TensorType(.bool, [3, 7])]) }
        for a in ArgReduceOp.allCases { for d in numeric {
            try check(.argReduce(a, axis: 1, outType: .int64), [TensorType(d, [4, 11])])
            try check(.argReduce(a, axis: 0, outType: .int32), [TensorType(d, [4, 11])])
        } }
        for r in [ReduceOp.max, .sum, .min] { for d in [DType.float32, .int32] {
            try check(.reduceWindow(r, window: [1, 3, 3, 1], strides: [1, 2, 2, 1], padLow: [0, 1, 1, 0], padHigh: [0, 1, 1, 0]),
                      [TensorType(d, [2, 7, 7, 3])], rtol: 1e-4)
        } }
        try check(.patches(window: [3, 2], strides: [2, 1], dilations: [1, 2], padLow: [1, 1], padHigh: [1, 0]), [TensorType(.float32, [2, 6, 5, 3])])
        for d in [DType.float32, .float64, .int32] {
            try check(.unpatches(window: [3, 2], strides: [2, 1], dilations: [1, 2], padLow: [1, 1], padHigh: [1, 0], image: [6, 5]),
                      [TensorType(d, [2, 3, 4, 18])], rtol: 1e-5)
        }
    }

    func testDotThroughBLASAndLoops() throws {
        for d in [DType.float32, .float64, .int32, .int64] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = ta ? [7, 5] : [5, 7], b = tb ? [3, 7] : [7, 3]
                try check(.dot(transposeA: ta, transposeB: tb), [TensorType(d, a), TensorType(d, b)], rtol: 1e-4)
                try check(.dot(transposeA: ta, transposeB: tb), [TensorType(d, [2] + a), TensorType(d, [2] + b)], rtol: 1e-4)
            }
        }
    }

    func testRandomPrimitivesAreBitIdenticalToTheReference() throws {
        for counter: Int64 in [0, 7] {
            let c = Tensor(counter)
            for (kind, d) in [(RandomKind.uniform, DType.float32), (.uniform, .float64), (.normal, .float32), (.normal, .float64),
                              (.truncatedNormal, .float32), (.bits, .int64)] {
                try check(.random(kind, dtype: d, shape: [4, 33], seed: 99), [TensorType(.int64, [])], values: [c], rtol: 1e-12)
            }
        }
    }
}
