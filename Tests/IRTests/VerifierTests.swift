import XCTest
import KilnTestSupport
import KilnIR

final class VerifierTests: XCTestCase {
    /// x (feed f32[2]) and v (var f32[2]); reads v, adds x, writes v back and returns the sum.
    func valid() -> Function {
        Function(name: "ok",
                 params: [Param(name: "x", kind: .feed, type: f32(2)), Param(name: "v", kind: .variable, type: f32(2))],
                 body: [Instruction(id: 2, op: .varRead, operands: [1], type: f32(2)),
                        Instruction(id: 3, op: .binary(.add), operands: [2, 0], type: f32(2)),
                        Instruction(id: 4, op: .varWrite, operands: [1, 3], type: nil)],
                 results: [3, 0])
    }

    func testAcceptsAValidFunction() throws {
        XCTAssertNoThrow(try Verifier.verify(valid()))
    }

    func testAcceptsWhatTheBuilderBuilds() throws {
        var b = FunctionBuilder(name: "built")
        let x = b.addParam("x", kind: .feed, type: f32(2, 3))
        let w = b.addParam("w", kind: .variable, type: f32(3, 4))
        let r = try b.emit(.varRead, [w])
        let y = try b.emit(.dot(transposeA: false, transposeB: false), [x, r])
        let c = b.scalar(0.5, .float32)
        let cb = try b.broadcast(c, to: [2, 4])
        let relu = try b.emit(.binary(.max), [y, cb])
        b.setResults([relu])
        XCTAssertNoThrow(try Verifier.verify(b.function))
    }

    func testRejectsUseBeforeDefinition() {
        var f = valid()
        f.body[1].operands = [5, 0]
        assertKilnError(.internal, contains: ["%3 uses %5 before it is defined"]) { try Verifier.verify(f) }
        // Defined later in the body still counts as before.
        f = valid()
        f.body.swapAt(0, 1)
        assertKilnError(.internal, contains: ["%3 uses %2 before it is defined"]) { try Verifier.verify(f) }
    }

    func testRejectsDuplicateIDs() {
        var f = valid()
        f.body.insert(Instruction(id: 2, op: .unary(.neg), operands: [0], type: f32(2)), at: 1)
        assertKilnError(.internal, contains: ["%2 is defined twice"]) { try Verifier.verify(f) }
    }

    func testRejectsAnInstructionReusingAParameterID() {
        var f = valid()
        f.body[1].id = 0
        f.results = [0]
        assertKilnError(.internal, contains: ["%0 is defined twice"]) { try Verifier.verify(f) }
    }

    func testRejectsDirectUseOfAVariableByAnOrdinaryOp() {
        var f = valid()
        f.body[1].operands = [1, 0]
        assertKilnError(.internal, contains: ["uses variable %1 directly"]) { try Verifier.verify(f) }
    }

    func testRejectsVariableOpsOnAFeed() {
        var f = valid()
        f.body[0].operands = [0]
        assertKilnError(.internal, contains: ["var.read needs a variable parameter, got %0"]) { try Verifier.verify(f) }
        f = valid()
        f.body[2].operands = [0, 3]
        assertKilnError(.internal, contains: ["var.write needs a variable parameter"]) { try Verifier.verify(f) }
    }

    func testRejectsAVariableAsTheWrittenValue() {
        var f = valid()
        f.body[2].operands = [1, 1]
        assertKilnError(.internal, contains: ["directly"]) { try Verifier.verify(f) }
    }

    func testRejectsAWrongRecordedType() {
        var f = valid()
        f.body[1].type = f32(3)
        assertKilnError(.internal, contains: ["%3 add has type f32[3], expected f32[2]"]) { try Verifier.verify(f) }
        f = valid()
        f.body[1].type = TensorType(.float64, [2])
        assertKilnError(.internal, contains: ["f64[2]"]) { try Verifier.verify(f) }
    }

    func testRejectsAMissingType() {
        var f = valid()
        f.body[1].type = nil
        assertKilnError(.internal, contains: ["has type none, expected f32[2]"]) { try Verifier.verify(f) }
    }

    func testRejectsATypeOnAVarWrite() {
        var f = valid()
        f.body[2].type = f32(2)
        assertKilnError(.internal, contains: ["expected none"]) { try Verifier.verify(f) }
    }

    func testRejectsAVariableParameterAsAResult() {
        var f = valid()
        f.results = [3, 1]
        assertKilnError(.internal, contains: ["result %1 is a variable"]) { try Verifier.verify(f) }
    }

    func testRejectsUndefinedOrValuelessResults() {
        var f = valid()
        f.results = [9]
        assertKilnError(.internal, contains: ["result %9"]) { try Verifier.verify(f) }
        f.results = [4]  // the var.write
        assertKilnError(.internal, contains: ["result %4"]) { try Verifier.verify(f) }
    }

    func testRejectsUsingTheValueOfAVarWrite() {
        var f = valid()
        f.body.append(Instruction(id: 5, op: .unary(.neg), operands: [4], type: f32(2)))
        assertKilnError(.internal, contains: ["%5 uses %4, which has no value"]) { try Verifier.verify(f) }
    }

    func testRejectsTypeRuleViolationsAndNamesTheInstruction() {
        var f = valid()
        f.body.insert(Instruction(id: 5, op: .unary(.exp), operands: [0], type: f32(2)), at: 1)
        f.body.insert(Instruction(id: 6, op: .cast(.int32), operands: [5], type: i32(2)), at: 2)
        f.body.insert(Instruction(id: 7, op: .unary(.exp), operands: [6], type: i32(2)), at: 3)
        assertKilnError(.internal, contains: ["%7", "floating-point"]) { try Verifier.verify(f) }
    }

    func testErrorNamesTheFunction() {
        var f = valid()
        f.results = [1]
        assertKilnError(.internal, contains: ["@ok"]) { try Verifier.verify(f) }
    }
}
