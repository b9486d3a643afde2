import XCTest
import KilnTestSupport
import KilnIR
import KilnPasses

final class ShapeInferencePassTests: XCTestCase {
    func testFillsOmittedTypes() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2,3] feed "x", %1: i32[] var "n") {
          %2 = reduce.sum %0 axes=[1]
          %3 = broadcast %2 shape=[4,2] dims=[1]
          %4 = transpose %3 perm=[1,0]
          %5 = dot %0, %0 transpose_b=true
          %6 = lt %5, %5
          %7 = cast %6 to=u8
          %8 = var.read %1
          %9 = var.write %1, %8
          %10 = reshape %4 shape=[8]
          return %10, %7
        }
        """)
        XCTAssertTrue(f.body.allSatisfy { $0.type == nil || $0.op.mnemonic == "constant" })
        try ShapeInferencePass().run(&f)
        XCTAssertEqual(f.body.map(\.type), [f32(2), f32(4, 2), f32(2, 4), f32(2, 2), TensorType(.bool, [2, 2]),
                                           TensorType(.uint8, [2, 2]), i32(), nil, f32(8)])
        XCTAssertNoThrow(try Verifier.verify(f))
    }

    func testKeepsDeclaredTypesThatAgree() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x") {
          %1 = neg %0 : f32[2]
          %2 = exp %1
          return %2
        }
        """)
        let before = f.body[0]
        try ShapeInferencePass().run(&f)
        XCTAssertEqual(f.body[0], before)
        XCTAssertEqual(f.body[1].type, f32(2))
    }

    func testRejectsADeclaredTypeThatDisagrees() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x", %1: f32[2] feed "y") {
          %2 = add %0, %1 : f32[3]
          return %2
        }
        """)
        assertKilnError(.invalidArgument, contains: ["%2", "declared f32[3]", "computes f32[2]"]) { try ShapeInferencePass().run(&f) }
    }

    func testRejectsADeclaredDtypeThatDisagrees() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x") {
          %1 = lt %0, %0 : f32[2]
          return %1
        }
        """)
        assertKilnError(.invalidArgument, contains: ["%1", "f32[2]", "bool[2]"]) { try ShapeInferencePass().run(&f) }
    }

    func testRejectsATypeOnAVarWrite() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] var "v", %1: f32[2] feed "x") {
          %2 = var.write %0, %1 : f32[2]
          return
        }
        """)
        assertKilnError(.invalidArgument, contains: ["%2", "no value"]) { try ShapeInferencePass().run(&f) }
    }

    func testTypeRuleViolationNamesTheInstruction() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x", %1: f32[3] feed "y") {
          %2 = neg %0
          %3 = add %2, %1
          return %3
        }
        """)
        assertKilnError(.invalidArgument, contains: ["%3", "same type", "f32[2]", "f32[3]"]) { try ShapeInferencePass().run(&f) }
    }

    func testUseOfAnUndefinedValueIsAnError() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x") {
          %1 = neg %5
          return %1
        }
        """)
        assertKilnError(.invalidArgument, contains: ["%1", "%5"]) { try ShapeInferencePass().run(&f) }
    }

    func testStandardPipelineAcceptsUntypedParsedIR() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x") {
          %1 = neg %0
          return %1
        }
        """)
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body[0].type, f32(2))
    }

    func testAfterEachSeesEveryPassInOrder() throws {
        var f = try Parser.parse("func @f(%0: f32[2] feed \"x\") {\n  %1 = neg %0\n  return %1\n}")
        var names: [String] = []
        try PassManager.standard(afterEach: { name, _ in names.append(name) }).run(&f)
        XCTAssertEqual(names, ["shape-inference", "verify", "half-precision", "constant-folding", "batch-norm-folding", "simplify", "sink-broadcasts", "cse", "dce", "verify"])
    }
}

final class DeadCodeEliminationPassTests: XCTestCase {
    func testRemovesUnusedPureInstructions() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x") {
          %1 = neg %0 : f32[2]
          %2 = exp %1 : f32[2]
          %3 = abs %0 : f32[2]
          %4 = constant f32[] 1.0
          %5 = sqrt %0 : f32[2]
          return %3
        }
        """)
        try DeadCodeEliminationPass().run(&f)
        XCTAssertEqual(f.body.map(\.id), [3])
        XCTAssertNoThrow(try Verifier.verify(f))
    }

    func testKeepsResultsAndEverythingTheyNeedInOrder() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] feed "x") {
          %1 = neg %0 : f32[2]
          %2 = cos %0 : f32[2]
          %3 = exp %1 : f32[2]
          %4 = sin %2 : f32[2]
          %5 = add %3, %1 : f32[2]
          return %5, %1
        }
        """)
        try DeadCodeEliminationPass().run(&f)
        XCTAssertEqual(f.body.map(\.id), [1, 3, 5])
        XCTAssertEqual(f.results, [5, 1])
    }

    func testKeepsVarWritesAndTheirInputsWithoutResults() throws {
        var f = try Parser.parse("""
        func @f(%0: i32[] var "n", %1: i32[] feed "step") {
          %2 = var.read %0 : i32[]
          %3 = constant i32[] 2
          %4 = mul %1, %3 : i32[]
          %5 = add %2, %4 : i32[]
          %6 = var.write %0, %5
          %7 = var.read %0 : i32[]
          %8 = neg %7 : i32[]
          return
        }
        """)
        try DeadCodeEliminationPass().run(&f)
        // The second read is unused and reading has no effect, so it goes.
        XCTAssertEqual(f.body.map(\.id), [2, 3, 4, 5, 6])
        XCTAssertNoThrow(try Verifier.verify(f))
    }

    func testKeepsEveryWriteToTheSameVariable() throws {
        var f = try Parser.parse("""
        func @f(%0: f32[2] var "v", %1: f32[2] feed "x") {
          %2 = var.write %0, %1
          %3 = neg %1 : f32[2]
          %4 = var.write %0, %3
          return
        }
        """)
        let before = f
        try DeadCodeEliminationPass().run(&f)
        XCTAssertEqual(f, before)
    }

    func testRemovingDeadCodeKeepsTheResults() throws {
        let f = try Parser.parse("""
        func @f(%0: f32[3] feed "x", %1: f32[3] var "v") {
          %2 = var.read %1 : f32[3]
          %3 = mul %0, %2 : f32[3]
          %4 = exp %3 : f32[3]
          %5 = tanh %0 : f32[3]
          %6 = var.write %1, %3
          return %2
        }
        """)
        var g = f
        try DeadCodeEliminationPass().run(&g)
        XCTAssertEqual(g.body.map(\.id), [2, 3, 6])
        let params = [try Tensor(shape: [3], scalars: [1, 2, 3] as [Float]), try Tensor(shape: [3], scalars: [4, 5, 6] as [Float])]
        let a = try ReferenceEvaluator.run(f, parameters: params)
        let b = try ReferenceEvaluator.run(g, parameters: params)
        XCTAssertEqual(a.results, b.results)
        XCTAssertEqual(a.parameters, b.parameters)
    }
}
