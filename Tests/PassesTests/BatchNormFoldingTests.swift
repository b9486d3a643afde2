import XCTest
import KilnTestSupport
import KilnIR
@testable import KilnPasses

final class BatchNormFoldingPassTests: XCTestCase {
    /// IR text of a float32 constant of `shape` (rank 1 or 2) with values from `rng`.
    private func constant(_ shape: [Int], _ rng: inout SplitMix64, positive: Bool = false) -> String {
        func value() -> String { String(positive ? Float.random(in: 0.25...2, using: &rng) : Float.random(in: -2...2, using: &rng)) }
        func row(_ n: Int) -> String { "[" + (0..<n).map { _ in value() }.joined(separator: ", ") + "]" }
        let body = shape.count == 1 ? row(shape[0]) : "[" + (0..<shape[0]).map { _ in row(shape[1]) }.joined(separator: ", ") + "]"
        return "constant f32[\(shape.map(String.init).joined(separator: ","))] \(body)"
    }

    /// `text` before and after the pass (with the standard cleanup), and the two compared by the
    /// reference evaluator on random feeds within float32 rounding.
    private func folded(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> Function {
        var original = try Parser.parse(text)
        try ShapeInferencePass().run(&original)
        var f = original
        try BatchNormFoldingPass().run(&f)
        try DeadCodeEliminationPass().run(&f)
        try Verifier.verify(f)
        var rng = SplitMix64(seed: 7)
        let feeds = try original.params.map { try randomTensor($0.type, &rng) }
        let want = try ReferenceEvaluator.run(original, parameters: feeds).results
        let got = try ReferenceEvaluator.run(f, parameters: feeds).results
        XCTAssertEqual(want.count, got.count, file: file, line: line)
        for (w, g) in zip(want, got) {
            let a = try w.scalars(as: Float.self), b = try g.scalars(as: Float.self)
            XCTAssertEqual(w.shape, g.shape, file: file, line: line)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(x)), file: file, line: line) }
        }
        return f
    }

    func testConvolutionScaleFoldsIntoItsWeights() throws {
        var rng = SplitMix64(seed: 1)
        let f = try folded("""
        func @f(%0: f32[2,4,4,1] feed "x") {
          %1 = \(constant([9, 4], &rng))
          %2 = patches %0 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %3 = reshape %2 shape=[32,9]
          %4 = dot %3, %1 transpose_a=false transpose_b=false
          %5 = reshape %4 shape=[2,4,4,4]
          %6 = \(constant([4], &rng, positive: true))
          %7 = broadcast %6 shape=[2,4,4,4] dims=[3]
          %8 = mul %5, %7
          %9 = \(constant([4], &rng))
          %10 = broadcast %9 shape=[2,4,4,4] dims=[3]
          %11 = add %8, %10
          %12 = constant f32[] 0.0
          %13 = broadcast %12 shape=[2,4,4,4] dims=[]
          %14 = max %11, %13
          return %14
        }
        """)
        XCTAssertFalse(f.body.contains { $0.op == .binary(.mul) }, Printer.print(f))
        let dot = try XCTUnwrap(f.body.first { if case .dot = $0.op { return true }; return false })
        let weights = try XCTUnwrap(f.body.first { $0.id == dot.operands[1] })
        guard case .constant = weights.op else { return XCTFail("the product's weights are not one constant: \(Printer.print(f))") }
        XCTAssertNotEqual(dot.operands[1], 1, "the weights are a new constant, the old ones dead")
    }

    func testMatmulScaleFoldsWithTransposedWeightsAndScalarScale() throws {
        var rng = SplitMix64(seed: 2)
        // Columns of dot(x, w, transpose_b) are rows of w; then a scalar scale folds too.
        let f = try folded("""
        func @f(%0: f32[3,5] feed "x") {
          %1 = \(constant([4, 5], &rng))
          %2 = dot %0, %1 transpose_a=false transpose_b=true
          %3 = \(constant([4], &rng))
          %4 = broadcast %3 shape=[3,4] dims=[1]
          %5 = mul %4, %2
          %6 = constant f32[] 0.5
          %7 = broadcast %6 shape=[3,4] dims=[]
          %8 = mul %5, %7
          return %8
        }
        """)
        XCTAssertEqual(f.body.filter { $0.op == .binary(.mul) }.count, 0, Printer.print(f))
        XCTAssertEqual(f.results.count, 1)
    }

    func testScalesThatAreNotPerColumnConstantsStay() throws {
        var rng = SplitMix64(seed: 3)
        let f = try folded("""
        func @f(%0: f32[3,5] feed "x", %1: f32[5,4] feed "w", %2: f32[4] feed "s") {
          %3 = \(constant([5, 4], &rng))
          %4 = dot %0, %1 transpose_a=false transpose_b=false
          %5 = \(constant([4], &rng))
          %6 = broadcast %5 shape=[3,4] dims=[1]
          %7 = mul %4, %6
          %8 = dot %0, %3 transpose_a=false transpose_b=false
          %9 = broadcast %2 shape=[3,4] dims=[1]
          %10 = mul %8, %9
          %11 = dot %0, %3 transpose_a=false transpose_b=false
          %12 = \(constant([3], &rng))
          %13 = broadcast %12 shape=[3,4] dims=[0]
          %14 = mul %11, %13
          %15 = dot %0, %3 transpose_a=false transpose_b=false
          %16 = mul %15, %6
          return %7, %10, %14, %16, %15
        }
        """)
        // Fed weights, a fed scale, a per-row scale, a product with another user: none folds.
        XCTAssertEqual(f.body.filter { $0.op == .binary(.mul) }.map(\.id), [7, 10, 14, 16], Printer.print(f))
    }

    func testStandardPipelineFoldsAFrozenBatchNorm() throws {
        var rng = SplitMix64(seed: 4)
        // What lowering makes of slim's batch_norm(is_training: false) once its variables are
        // constants: scale = rsqrt(variance + eps), shift = beta - mean * scale.
        let text = """
        func @f(%0: f32[8,6] feed "x") {
          %1 = \(constant([6, 3], &rng))
          %2 = dot %0, %1 transpose_a=false transpose_b=false
          %3 = \(constant([3], &rng, positive: true))
          %4 = constant f32[3] [0.001, 0.001, 0.001]
          %5 = add %3, %4
          %6 = rsqrt %5
          %7 = \(constant([3], &rng))
          %8 = mul %7, %6
          %9 = \(constant([3], &rng))
          %10 = sub %9, %8
          %11 = broadcast %6 shape=[8,3] dims=[1]
          %12 = mul %2, %11
          %13 = broadcast %10 shape=[8,3] dims=[1]
          %14 = add %12, %13
          return %14
        }
        """
        let original = try Parser.parse(text)
        var f = original
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.map(\.op.mnemonic).filter { $0 != "constant" }, ["dot", "broadcast", "add"], Printer.print(f))
        var r = SplitMix64(seed: 5)
        let x = try randomTensor(f32(8, 6), &r)
        let want = try ReferenceEvaluator.run(original, parameters: [x]).results[0].scalars(as: Float.self)
        let got = try ReferenceEvaluator.run(f, parameters: [x]).results[0].scalars(as: Float.self)
        for (a, b) in zip(want, got) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(a))) }
    }

    func testScaleThatConstantFoldingLeavesAsAnExpressionFoldsToo() throws {
        var rng = SplitMix64(seed: 6)
        // 20 channels: the epsilon's broadcast grows a scalar past the immediate limit, so
        // constant folding leaves rsqrt(variance + broadcast(epsilon)) for the pass to evaluate.
        let text = """
        func @f(%0: f32[4,6] feed "x") {
          %1 = \(constant([6, 20], &rng))
          %2 = dot %0, %1 transpose_a=false transpose_b=false
          %3 = \(constant([20], &rng, positive: true))
          %4 = constant f32[] 0.001
          %5 = broadcast %4 shape=[20] dims=[]
          %6 = add %3, %5
          %7 = rsqrt %6
          %8 = broadcast %7 shape=[4,20] dims=[1]
          %9 = mul %2, %8
          return %9
        }
        """
        var f = try Parser.parse(text)
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.map(\.op.mnemonic).filter { $0 != "constant" }, ["dot"], Printer.print(f))
        _ = try folded(text)
    }
}
