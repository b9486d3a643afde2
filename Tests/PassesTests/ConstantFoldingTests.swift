import XCTest
import KilnTestSupport
import KilnIR
@testable import KilnPasses

func randomTensor(_ t: TensorType, _ rng: inout SplitMix64) throws -> Tensor {
    let n = t.elementCount
    switch t.dtype {
    case .float32: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Float.random(in: -4...4, using: &rng) })
    case .float64: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Double.random(in: -4...4, using: &rng) })
    case .int32: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Int32.random(in: -50...50, using: &rng) })
    case .int64: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Int64.random(in: -50...50, using: &rng) })
    case .uint8: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
    case .int16: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Int16.random(in: -50...50, using: &rng) })
    case .float16: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Float16(Float.random(in: -4...4, using: &rng)) })
    case .bfloat16: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in BFloat16(Float.random(in: -4...4, using: &rng)) })
    case .bool: return try Tensor(shape: t.shape, scalars: (0..<n).map { _ in Bool.random(using: &rng) })
    case .string: return try Tensor(zeros: .string, shape: t.shape)
    }
}

final class ConstantFoldingPassTests: XCTestCase {
    func testConstantOnlySubgraphBecomesOneConstant() throws {
        let text = """
        func @f() {
          %0 = constant f32[2,3] [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
          %1 = constant f32[2,3] [[0.5, 0.25, -1.0], [2.0, -3.0, 0.125]]
          %2 = constant f32[2,3] [[3.0, -1.0, 0.5], [1.5, 2.0, 4.0]]
          %3 = add %0, %1
          %4 = mul %3, %2
          %5 = reduce.sum %4 axes=[0, 1]
          return %5
        }
        """
        let original = try Parser.parse(text)
        // Worked by hand: (1.5*3) + (2.25*-1) + (2*0.5) + (6*1.5) + (2*2) + (6.125*4)
        let want: Float = 4.5 - 2.25 + 1 + 9 + 4 + 24.5
        var f = original
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.count, 1, Printer.print(f))
        XCTAssertEqual(f.body.first?.op, .constant(Tensor(want)))
        XCTAssertEqual(f.body.first?.id, 5)
        XCTAssertEqual(f.body.first?.type, f32())
        XCTAssertEqual(f.results, [5])
        XCTAssertEqual(try ReferenceEvaluator.run(original, parameters: []).results, [Tensor(want)])
    }

    func testFoldingPreservesResultsOnRandomInputs() throws {
        let original = try Parser.parse("""
        func @mixed(%0: f32[3,4] feed "x", %1: f32[4] feed "y", %2: i32[3] feed "k") {
          %3 = constant f32[4] [0.5, -1.25, 2.0, 3.0]
          %4 = constant f32[4] [1.5, 0.75, -2.0, 0.1]
          %5 = mul %3, %4
          %6 = exp %4
          %7 = add %5, %6
          %8 = broadcast %7 shape=[3,4] dims=[1]
          %9 = mul %0, %8
          %10 = broadcast %1 shape=[3,4] dims=[1]
          %11 = add %9, %10
          %12 = constant f32[4,2] [[1.0, -2.0], [0.5, 0.25], [3.0, 1.0], [-1.0, 2.0]]
          %13 = transpose %12 perm=[1,0]
          %14 = dot %11, %13 transpose_b=true
          %15 = constant f32[] 2.0
          %16 = sqrt %15
          %17 = broadcast %16 shape=[3,2] dims=[]
          %18 = floordiv %14, %17
          %19 = reduce.max %11 axes=[1]
          %20 = constant i32[3] [7, -3, 0]
          %21 = constant i32[3] [2, 2, -5]
          %22 = floormod %20, %21
          %23 = mul %2, %22
          %24 = cast %22 to=f32
          %25 = add %19, %24
          %26 = lt %25, %19
          %27 = select %26, %25, %19
          return %18, %27, %23, %22
        }
        """)
        var folded = original
        try PassManager.standard().run(&folded)

        // The constant-only values are now constants, and their inputs are gone.
        let byID = Dictionary(uniqueKeysWithValues: folded.body.map { ($0.id, $0) })
        // Small broadcasts (%8, %17) fold too: their results fit the immediate-constant limit.
        for id in [8, 13, 17, 22, 24] {
            guard case .constant? = byID[id]?.op else { return XCTFail("%\(id) was not folded:\n\(Printer.print(folded))") }
        }
        for id in [3, 4, 5, 6, 7, 12, 15, 16, 20, 21] { XCTAssertNil(byID[id], "%\(id) should be dead after folding") }
        XCTAssertLessThan(folded.body.count, original.body.count)

        var rng = SplitMix64(seed: 42)  // deterministic inputs, so a failure reproduces
        for _ in 0..<25 {
            let params = try original.params.map { try randomTensor($0.type, &rng) }
            let want = try ReferenceEvaluator.run(original, parameters: params)
            let got = try ReferenceEvaluator.run(folded, parameters: params)
            XCTAssertEqual(got.results, want.results)
        }
    }

    func testBroadcastThatGrowsDataIsNotFolded() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[8,8] feed "x") {
          %1 = constant f32[] 2.0
          %2 = broadcast %1 shape=[8,8] dims=[]
          %3 = mul %0, %2
          %4 = constant f32[8] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
          %5 = broadcast %4 shape=[8,8] dims=[0]
          return %3, %5
        }
        """)
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.map(\.op.mnemonic), ["constant", "broadcast", "mul", "constant", "broadcast"])
    }

    func testBroadcastThatOnlyAddsUnitDimensionsIsFolded() throws {
        var f = try Parser.parse("""
        func @f() {
          %0 = constant f32[3] [1.0, 2.0, 3.0]
          %1 = broadcast %0 shape=[1,3] dims=[1]
          return %1
        }
        """)
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.map(\.op), [.constant(try Tensor(shape: [1, 3], scalars: [1, 2, 3] as [Float]))])
    }

    func testVariableReadsAndWritesAreNeverFolded() throws {
        let original = try Parser.parse("""
        func @f(%0: i32[2] var "v") {
          %1 = constant i32[2] [1, 2]
          %2 = constant i32[2] [10, 20]
          %3 = add %1, %2
          %4 = var.read %0
          %5 = var.write %0, %3
          %6 = var.read %0
          %7 = add %4, %6
          return %7
        }
        """)
        var f = original
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.map(\.op.mnemonic), ["constant", "var.read", "var.write", "var.read", "add"])
        XCTAssertEqual(f.body[0].op, .constant(try Tensor(shape: [2], scalars: [11, 22] as [Int32])))
        let v = try Tensor(shape: [2], scalars: [5, 6] as [Int32])
        let want = try ReferenceEvaluator.run(original, parameters: [v])
        let got = try ReferenceEvaluator.run(f, parameters: [v])
        XCTAssertEqual(got.results, [try Tensor(shape: [2], scalars: [16, 28] as [Int32])])
        XCTAssertEqual(got.results, want.results)
        XCTAssertEqual(got.parameters, want.parameters)
    }

    func testVariableOpsStayUnfoldedEvenWithConstantOperands() throws {
        // Only the operands' values decide folding elsewhere; state must never be folded away,
        // whatever the operands look like.
        let c = try Tensor(shape: [2], scalars: [1, 2] as [Float])
        let read = Instruction(id: 3, op: .varRead, operands: [1], type: f32(2))
        let write = Instruction(id: 4, op: .varWrite, operands: [1, 2], type: nil)
        XCTAssertFalse(ConstantFoldingPass.shouldFold(read, operands: [c]))
        XCTAssertFalse(ConstantFoldingPass.shouldFold(write, operands: [c, c]))
        XCTAssertTrue(ConstantFoldingPass.shouldFold(Instruction(id: 5, op: .unary(.neg), operands: [2], type: f32(2)), operands: [c]))
    }

    func testFoldingKeepsNaNBitsAndIntegerWrapAround() throws {
        var f = try Parser.parse("""
        func @f() {
          %0 = constant f32[2] [nan, 1.0]
          %1 = constant f32[2] [2.0, inf]
          %2 = mul %0, %1
          %3 = constant i32[] 2147483647
          %4 = constant i32[] 1
          %5 = add %3, %4
          return %2, %5
        }
        """)
        let want = try ReferenceEvaluator.run(f, parameters: []).results
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.count, 2)
        XCTAssertEqual(f.body.map(\.op), want.map { .constant($0) })
        XCTAssertEqual(want[1], Tensor(Int32.min))
    }
}
