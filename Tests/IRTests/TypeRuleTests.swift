import XCTest
import KilnTestSupport
import KilnIR

final class TypeRuleTests: XCTestCase {
    // MARK: dot

    func testDotMultipliesMatrices() throws {
        XCTAssertEqual(try Op.dot(transposeA: false, transposeB: false).resultType(operands: [f32(2, 3), f32(3, 5)]), f32(2, 5))
    }

    func testDotTransposeFlagsSwapTheDimensionsUsed() throws {
        XCTAssertEqual(try Op.dot(transposeA: true, transposeB: false).resultType(operands: [f32(3, 2), f32(3, 5)]), f32(2, 5))
        XCTAssertEqual(try Op.dot(transposeA: false, transposeB: true).resultType(operands: [f32(2, 3), f32(5, 3)]), f32(2, 5))
        XCTAssertEqual(try Op.dot(transposeA: true, transposeB: true).resultType(operands: [f32(3, 2), f32(5, 3)]), f32(2, 5))
    }

    func testDotKeepsBatchDimensions() throws {
        XCTAssertEqual(try Op.dot(transposeA: false, transposeB: false).resultType(operands: [i32(4, 7, 2, 3), i32(4, 7, 3, 1)]), i32(4, 7, 2, 1))
    }

    func testDotInnerDimensionMismatchNamesBothSizesAndShapes() {
        assertKilnError(.invalidArgument, contains: ["dot", "inner dimensions 3 and 4 differ", "f32[2,3]", "f32[4,5]"]) {
            try Op.dot(transposeA: false, transposeB: false).resultType(operands: [f32(2, 3), f32(4, 5)])
        }
        // Without the transpose this pair would fit; with it the inner sizes are 2 and 3.
        assertKilnError(.invalidArgument, contains: ["inner dimensions 2 and 3 differ", "f32[2,3]", "f32[3,5]"]) {
            try Op.dot(transposeA: true, transposeB: false).resultType(operands: [f32(2, 3), f32(3, 5)])
        }
        assertKilnError(.invalidArgument, contains: ["inner dimensions 3 and 5 differ"]) {
            try Op.dot(transposeA: false, transposeB: true).resultType(operands: [f32(2, 3), f32(3, 5)])
        }
    }

    func testDotRejectsMismatchedBatchRankOrDtype() {
        assertKilnError(.invalidArgument, contains: ["batch", "f32[2,2,3]", "f32[3,3,4]"]) {
            try Op.dot(transposeA: false, transposeB: false).resultType(operands: [f32(2, 2, 3), f32(3, 3, 4)])
        }
        assertKilnError(.invalidArgument, contains: ["f32[3]"]) {
            try Op.dot(transposeA: false, transposeB: false).resultType(operands: [f32(3), f32(3)])
        }
        assertKilnError(.invalidArgument, contains: ["f32[2,3]", "f32[1,3,4]"]) {
            try Op.dot(transposeA: false, transposeB: false).resultType(operands: [f32(2, 3), f32(1, 3, 4)])
        }
        assertKilnError(.invalidArgument, contains: ["numeric", "i32[3,4]"]) {
            try Op.dot(transposeA: false, transposeB: false).resultType(operands: [f32(2, 3), i32(3, 4)])
        }
        assertKilnError(.invalidArgument, contains: ["numeric"]) {
            try Op.dot(transposeA: false, transposeB: false).resultType(operands: [TensorType(.bool, [2, 2]), TensorType(.bool, [2, 2])])
        }
    }

    // MARK: broadcast

    func testBroadcastReplicatesAlongNewAndSizeOneDimensions() throws {
        XCTAssertEqual(try Op.broadcast(shape: [2, 3], dims: [1]).resultType(operands: [f32(3)]), f32(2, 3))
        XCTAssertEqual(try Op.broadcast(shape: [4, 2, 3], dims: [1, 2]).resultType(operands: [f32(1, 3)]), f32(4, 2, 3))
        XCTAssertEqual(try Op.broadcast(shape: [5, 5], dims: []).resultType(operands: [i32()]), i32(5, 5))
    }

    func testBroadcastRejectsADimensionThatIsNeitherEqualNorOne() {
        assertKilnError(.invalidArgument, contains: ["broadcast", "dimension 0 of size 3 to 4", "f32[3]"]) {
            try Op.broadcast(shape: [2, 4], dims: [1]).resultType(operands: [f32(3)])
        }
        assertKilnError(.invalidArgument, contains: ["dimension 1 of size 2 to 3", "f32[1,2]"]) {
            try Op.broadcast(shape: [4, 3], dims: [0, 1]).resultType(operands: [f32(1, 2)])
        }
    }

    func testBroadcastRejectsBadDims() {
        // One entry per operand dimension.
        assertKilnError(.invalidArgument, contains: ["dims [0]", "f32[2,3]"]) {
            try Op.broadcast(shape: [2, 3], dims: [0]).resultType(operands: [f32(2, 3)])
        }
        // Increasing: a broadcast is not a transpose.
        assertKilnError(.invalidArgument, contains: ["dims [1, 0]", "increasing"]) {
            try Op.broadcast(shape: [3, 3], dims: [1, 0]).resultType(operands: [f32(3, 3)])
        }
        assertKilnError(.invalidArgument, contains: ["increasing"]) {
            try Op.broadcast(shape: [3, 3], dims: [0, 0]).resultType(operands: [f32(3, 3)])
        }
        assertKilnError(.invalidArgument, contains: ["within rank 2"]) {
            try Op.broadcast(shape: [3, 3], dims: [2]).resultType(operands: [f32(3)])
        }
        assertKilnError(.invalidArgument, contains: ["within rank 2"]) {
            try Op.broadcast(shape: [3, 3], dims: [-1]).resultType(operands: [f32(3)])
        }
    }

    // MARK: reshape

    func testReshapeKeepsDtypeAndTakesTheNewShape() throws {
        XCTAssertEqual(try Op.reshape(shape: [3, 2, 1]).resultType(operands: [i32(2, 3)]), i32(3, 2, 1))
        XCTAssertEqual(try Op.reshape(shape: []).resultType(operands: [f32(1, 1)]), f32())
    }

    func testReshapeElementCountMismatchNamesTheCounts() {
        assertKilnError(.invalidArgument, contains: ["reshape", "cannot reshape 6 elements to [4, 2]", "f32[2,3]"]) {
            try Op.reshape(shape: [4, 2]).resultType(operands: [f32(2, 3)])
        }
        // -1 is not inferred in the IR: the frontend resolves it.
        assertKilnError(.invalidArgument, contains: ["[-1, 6]"]) {
            try Op.reshape(shape: [-1, 6]).resultType(operands: [f32(2, 3)])
        }
        // Two negative dimensions multiply to the right count and must still be rejected.
        assertKilnError(.invalidArgument, contains: ["[-2, -3]"]) {
            try Op.reshape(shape: [-2, -3]).resultType(operands: [f32(2, 3)])
        }
    }

    // MARK: reduce

    func testReduceDropsTheReducedAxes() throws {
        XCTAssertEqual(try Op.reduce(.sum, axes: [0, 2]).resultType(operands: [f32(2, 3, 4)]), f32(3))
        XCTAssertEqual(try Op.reduce(.max, axes: []).resultType(operands: [i32(2, 3)]), i32(2, 3))
        XCTAssertEqual(try Op.reduce(.prod, axes: [0, 1]).resultType(operands: [f32(2, 3)]), f32())
    }

    func testReduceAxesOutOfRangeNameTheRankAndShape() {
        assertKilnError(.invalidArgument, contains: ["reduce.sum", "axes [2]", "within rank 2", "f32[2,3]"]) {
            try Op.reduce(.sum, axes: [2]).resultType(operands: [f32(2, 3)])
        }
        assertKilnError(.invalidArgument, contains: ["axes [-1]"]) {
            try Op.reduce(.min, axes: [-1]).resultType(operands: [f32(2, 3)])
        }
        assertKilnError(.invalidArgument, contains: ["axes [0]", "rank 0"]) {
            try Op.reduce(.min, axes: [0]).resultType(operands: [f32()])
        }
    }

    func testReduceAxesMustBeSortedAndUnique() {
        assertKilnError(.invalidArgument, contains: ["sorted"]) {
            try Op.reduce(.sum, axes: [1, 0]).resultType(operands: [f32(2, 3)])
        }
        assertKilnError(.invalidArgument, contains: ["unique"]) {
            try Op.reduce(.sum, axes: [1, 1]).resultType(operands: [f32(2, 3)])
        }
    }

    func testReduceNeedsNumbers() {
        assertKilnError(.invalidArgument, contains: ["numeric", "bool[2]"]) {
            try Op.reduce(.sum, axes: [0]).resultType(operands: [TensorType(.bool, [2])])
        }
    }

    // MARK: elementwise and the rest

    func testUnaryOpsCheckTheirDtype() throws {
        XCTAssertEqual(try Op.unary(.neg).resultType(operands: [i32(2)]), i32(2))
        XCTAssertEqual(try Op.unary(.abs).resultType(operands: [TensorType(.uint8, [2])]), TensorType(.uint8, [2]))
        XCTAssertEqual(try Op.unary(.not).resultType(operands: [TensorType(.bool, [])]), TensorType(.bool, []))
        for u in UnaryOp.allCases where ![.neg, .abs, .sign, .not].contains(u) {
            XCTAssertEqual(try Op.unary(u).resultType(operands: [TensorType(.float64, [3])]), TensorType(.float64, [3]))
            assertKilnError(.invalidArgument, contains: ["floating-point", "i32[3]"]) { try Op.unary(u).resultType(operands: [i32(3)]) }
        }
        assertKilnError(.invalidArgument, contains: ["bool"]) { try Op.unary(.not).resultType(operands: [i32(3)]) }
        assertKilnError(.invalidArgument, contains: ["numeric"]) { try Op.unary(.neg).resultType(operands: [TensorType(.bool, [3])]) }
        assertKilnError(.invalidArgument, contains: ["expects 1 operand(s), got 2"]) { try Op.unary(.neg).resultType(operands: [i32(), i32()]) }
    }

    func testBinaryOperandsMustHaveOneType() throws {
        XCTAssertEqual(try Op.binary(.pow).resultType(operands: [i32(2), i32(2)]), i32(2))
        XCTAssertEqual(try Op.binary(.and).resultType(operands: [TensorType(.bool, [2]), TensorType(.bool, [2])]), TensorType(.bool, [2]))
        assertKilnError(.invalidArgument, contains: ["same type", "f32[2]", "f32[3]"]) {
            try Op.binary(.add).resultType(operands: [f32(2), f32(3)])
        }
        assertKilnError(.invalidArgument, contains: ["same type", "i32[2]"]) {
            try Op.binary(.mul).resultType(operands: [f32(2), i32(2)])
        }
        assertKilnError(.invalidArgument, contains: ["bool"]) { try Op.binary(.or).resultType(operands: [i32(2), i32(2)]) }
        assertKilnError(.invalidArgument, contains: ["numeric"]) {
            try Op.binary(.add).resultType(operands: [TensorType(.bool, [2]), TensorType(.bool, [2])])
        }
    }

    func testCompareGivesBoolOfTheOperandShape() throws {
        XCTAssertEqual(try Op.compare(.lt).resultType(operands: [f32(2, 3), f32(2, 3)]), TensorType(.bool, [2, 3]))
        assertKilnError(.invalidArgument, contains: ["same type"]) { try Op.compare(.eq).resultType(operands: [f32(2), i32(2)]) }
    }

    func testSelectNeedsABoolConditionAndMatchingValues() throws {
        let cond = TensorType(.bool, [2])
        XCTAssertEqual(try Op.select.resultType(operands: [cond, i32(2), i32(2)]), i32(2))
        assertKilnError(.invalidArgument, contains: ["bool condition"]) { try Op.select.resultType(operands: [i32(2), i32(2), i32(2)]) }
        assertKilnError(.invalidArgument, contains: ["one shape"]) { try Op.select.resultType(operands: [TensorType(.bool, [3]), i32(2), i32(2)]) }
        assertKilnError(.invalidArgument, contains: ["one shape"]) { try Op.select.resultType(operands: [cond, i32(2), f32(2)]) }
    }

    func testCastKeepsTheShapeAndRefusesStrings() throws {
        XCTAssertEqual(try Op.cast(.uint8).resultType(operands: [f32(4, 1)]), TensorType(.uint8, [4, 1]))
        assertKilnError(.invalidArgument, contains: ["strings"]) { try Op.cast(.string).resultType(operands: [f32(1)]) }
        assertKilnError(.invalidArgument, contains: ["strings"]) { try Op.cast(.int32).resultType(operands: [TensorType(.string, [1])]) }
    }

    func testTransposePermutesTheShape() throws {
        XCTAssertEqual(try Op.transpose(perm: [2, 0, 1]).resultType(operands: [f32(2, 3, 4)]), f32(4, 2, 3))
        assertKilnError(.invalidArgument, contains: ["perm [0, 0]", "rank 2"]) { try Op.transpose(perm: [0, 0]).resultType(operands: [f32(2, 3)]) }
        assertKilnError(.invalidArgument, contains: ["perm [1, 0]", "rank 3"]) { try Op.transpose(perm: [1, 0]).resultType(operands: [f32(2, 3, 4)]) }
    }

    func testVariableOpsAndConstants() throws {
        XCTAssertEqual(try Op.varRead.resultType(operands: [f32(2)]), f32(2))
        XCTAssertNil(try Op.varWrite.resultType(operands: [f32(2), f32(2)]))
        assertKilnError(.invalidArgument, contains: ["variable's type", "f32[3]"]) { try Op.varWrite.resultType(operands: [f32(2), f32(3)]) }
        XCTAssertEqual(try Op.constant(Tensor(shape: [2], scalars: [1, 2] as [Int64])).resultType(operands: []), TensorType(.int64, [2]))
        assertKilnError(.invalidArgument, contains: ["expects 0 operand(s)"]) { try Op.constant(Tensor(Float(1))).resultType(operands: [f32()]) }
    }

    func testOpPropertiesUsedByPasses() {
        XCTAssertFalse(Op.varWrite.producesValue)
        XCTAssertTrue(Op.varRead.producesValue)
        XCTAssertTrue(Op.varWrite.hasSideEffects)
        XCTAssertFalse(Op.varRead.hasSideEffects)
        XCTAssertTrue(Op.select.isElementwise)
        XCTAssertTrue(Op.cast(.int32).isElementwise)
        XCTAssertFalse(Op.transpose(perm: [0]).isElementwise)
        XCTAssertFalse(Op.dot(transposeA: false, transposeB: false).isElementwise)
        XCTAssertEqual(Op.reduce(.prod, axes: [0]).mnemonic, "reduce.prod")
        XCTAssertEqual(Op.varRead.mnemonic, "var.read")
    }

    func testBuilderRecordsTheTypeAndRejectsAnOpAtTheFaultyInstruction() throws {
        var b = FunctionBuilder(name: "f")
        let x = b.addParam("x", kind: .feed, type: f32(2, 3))
        let row = try b.emit(.reduce(.sum, axes: [1]), [x])
        XCTAssertEqual(b.type(of: row), f32(2))
        XCTAssertEqual(b.function.body.last?.type, f32(2))
        XCTAssertThrowsError(try b.emit(.binary(.add), [x, row]))
        XCTAssertEqual(b.function.body.count, 1, "a rejected instruction must not be appended")
        // numpy's rule: trailing dimensions line up.
        let bc = try b.broadcast(row, to: [4, 2])
        XCTAssertEqual(b.function.body.last?.op, .broadcast(shape: [4, 2], dims: [1]))
        XCTAssertEqual(try b.broadcast(bc, to: [4, 2]), bc)
        assertKilnError(.invalidArgument, contains: ["f32[2,3]", "[3]"]) { try b.broadcast(x, to: [3]) }
    }
}
