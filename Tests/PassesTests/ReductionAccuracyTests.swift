import XCTest
import KilnIR
@testable import KilnPasses

/// The reference evaluator's sums (constant folding and lowering's shape folding use them) are
/// exact enough for any length: a float32 running sum of 2^26 copies of 1.5 stops at 2^25.
final class ReductionAccuracyTests: XCTestCase {
    /// `reduce.sum` over all of `x` followed by the division Mean lowers to, folded.
    func foldedSumAndMean(_ x: Tensor) throws -> (sum: Tensor, mean: Tensor) {
        var b = FunctionBuilder(name: "f")
        let c = b.constant(x)
        let sum = try b.emit(.reduce(.sum, axes: Array(0..<x.rank)), [c])
        let n = b.scalar(Double(x.elementCount), x.dtype)
        let mean = try b.emit(.binary(.div), [sum, n])
        b.setResults([sum, mean])
        var f = b.function
        try ConstantFoldingPass().run(&f)
        func folded(_ id: Int) throws -> Tensor {
            guard case .constant(let t) = f.body.first(where: { $0.id == id })?.op else {
                XCTFail("%\(id) was not folded")
                throw KilnError.internalError("not folded")
            }
            return t
        }
        return (try folded(sum), try folded(mean))
    }

    func testFoldedFloat32SumAndMeanOfTwoToThe26EqualValuesAreExact() throws {
        let (sum, mean) = try foldedSumAndMean(Tensor(shape: [1 << 26], scalars: [Float](repeating: 1.5, count: 1 << 26)))
        XCTAssertEqual(try sum.scalar(as: Float.self), 100_663_296)
        XCTAssertEqual(try mean.scalar(as: Float.self), 1.5)
    }

    func testFloat32SumsOfRandomValuesAreCorrectlyRoundedDoubleSums() throws {
        var rng = SplitMix64(seed: 7)
        let values = (0..<(1 << 20)).map { _ in Float.random(in: 0..<1, using: &rng) }
        let exact = values.reduce(0.0) { $0 + Double($1) }  // 2^20 float32s in Double: exact to ~1e-10
        let (sum, _) = try foldedSumAndMean(Tensor(shape: [values.count], scalars: values))
        XCTAssertEqual(try Double(sum.scalar(as: Float.self)), exact, accuracy: Double(Float(exact).ulp))
    }

    func testFloat64SumsArePairwise() throws {
        // 1 + 2^20 copies of 2^-53: a running Double sum never moves off 1 (each term is half an
        // ulp and rounds to even); pairwise sums lose at most the first block's terms.
        let values = [1.0] + [Double](repeating: 0x1p-53, count: 1 << 20)
        let sum = try ReferenceEvaluator.evaluate(.reduce(.sum, axes: [0]), [Tensor(shape: [values.count], scalars: values)])
        XCTAssertEqual(try sum.scalar(as: Double.self), 1 + 0x1p-33, accuracy: 0x1p-44)
    }

    func testRowColumnAndMiddleAxisSumsMatchDoubleSums() throws {
        var rng = SplitMix64(seed: 3)
        let shape = [33, 700, 5]
        let values = (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1..<1, using: &rng) }
        let x = try Tensor(shape: shape, scalars: values)
        for axes in [[0], [1], [2], [0, 1], [1, 2], [0, 2], [0, 1, 2]] {
            let got = try ReferenceEvaluator.evaluate(.reduce(.sum, axes: axes), [x])
            let kept = (0..<3).filter { !axes.contains($0) }
            var want = [Double](repeating: 0, count: got.elementCount)
            for i in 0..<values.count {
                let idx = [i / (700 * 5), i / 5 % 700, i % 5]
                want[kept.reduce(0) { $0 * shape[$1] + idx[$1] }] += Double(values[i])
            }
            for (k, w) in want.enumerated() {
                XCTAssertEqual(try Double(got.scalars(as: Float.self)[k]), w, accuracy: Double(Float(w).ulp), "axes \(axes) element \(k)")
            }
        }
    }

    func testIntegerSumsWrapAndOtherReductionsKeepTheirSemantics() throws {
        let ints = try Tensor(shape: [4], scalars: [Int32.max, 1, 2, -5])
        XCTAssertEqual(try ReferenceEvaluator.evaluate(.reduce(.sum, axes: [0]), [ints]).scalar(as: Int32.self), Int32.max &+ 1 &+ 2 &- 5)
        let bytes = try Tensor(shape: [3], scalars: [200, 100, 7] as [UInt8])
        XCTAssertEqual(try ReferenceEvaluator.evaluate(.reduce(.sum, axes: [0]), [bytes]).scalar(as: UInt8.self), 51)
        let f = try Tensor(shape: [2, 3], scalars: [1, .nan, 3, 4, 5, -6] as [Float])
        let maxes = try ReferenceEvaluator.evaluate(.reduce(.max, axes: [1]), [f]).scalars(as: Float.self)
        XCTAssertTrue(maxes[0].isNaN)
        XCTAssertEqual(maxes[1], 5)
        XCTAssertEqual(try ReferenceEvaluator.evaluate(.reduce(.prod, axes: [0]), [f]).scalars(as: Float.self)[2], -18)
        let empty = try Tensor(shape: [0, 2], scalars: [] as [Float])
        XCTAssertEqual(try ReferenceEvaluator.evaluate(.reduce(.sum, axes: [0]), [empty]).scalars(as: Float.self), [0, 0])
        XCTAssertEqual(try ReferenceEvaluator.evaluate(.reduce(.min, axes: [0]), [empty]).scalars(as: Float.self), [.infinity, .infinity])
    }
}
