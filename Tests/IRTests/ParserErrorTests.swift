import XCTest
import KilnTestSupport
import KilnIR

/// Parse errors must point at the place a person has to fix: "line:column" of the offending token.
final class ParserErrorTests: XCTestCase {
    func testUnknownOpNamesTheOpAndItsPosition() {
        assertKilnError(.invalidArgument, contains: ["2:8", "frobnicate"]) {
            try Parser.parse("""
            func @f(%0: f32[2] feed "x") {
              %1 = frobnicate %0
              return %1
            }
            """)
        }
    }

    func testUnknownOpWithoutOperandsIsReportedOnItsOwnLine() {
        assertKilnError(.invalidArgument, contains: ["3:8", "tanhh"]) {
            try Parser.parse("""
            func @f(%0: f32[2] feed "x") {
              %1 = neg %0
              %2 = tanhh %1 : f32[2]
              return %2
            }
            """)
        }
    }

    func testMissingAttributeIsReportedAtTheOp() {
        assertKilnError(.invalidArgument, contains: ["2:8", "perm"]) {
            try Parser.parse("func @f(%0: f32[2,2] feed \"x\") {\n  %1 = transpose %0\n  return %1\n}")
        }
        assertKilnError(.invalidArgument, contains: ["2:8", "to="]) {
            try Parser.parse("func @f(%0: f32[2] feed \"x\") {\n  %1 = cast %0 to=f17\n  return %1\n}")
        }
    }

    func testBadParameterTypeNamesTheTypeAndItsPosition() {
        assertKilnError(.invalidArgument, contains: ["1:13", "f33"]) {
            try Parser.parse("func @f(%0: f33[2] feed \"x\") {\n  return\n}")
        }
    }

    func testBadInstructionTypeNamesTheTypeAndItsPosition() {
        assertKilnError(.invalidArgument, contains: ["2:17", "q8"]) {
            try Parser.parse("func @f(%0: f32[2] feed \"x\") {\n  %1 = neg %0 : q8[2]\n  return %1\n}")
        }
        assertKilnError(.invalidArgument, contains: ["2:17", "float32"]) {
            try Parser.parse("func @f() {\n  %0 = constant float32[] 1.0\n  return %0\n}")
        }
    }

    func testTooFewConstantElementsIsReportedAtTheList() {
        assertKilnError(.invalidArgument, contains: ["2:24", "2 elements", "says 3"]) {
            try Parser.parse("""
            func @f() {
              %0 = constant f32[3] [1.0, 2.0]
              return %0
            }
            """)
        }
    }

    func testTooManyConstantElementsInAnInnerDimensionIsReportedAtThatList() {
        assertKilnError(.invalidArgument, contains: ["2:35", "3 elements in dimension 1"]) {
            try Parser.parse("""
            func @f() {
              %0 = constant i32[2,2] [[1, 2], [3, 4, 5]]
              return %0
            }
            """)
        }
    }

    func testConstantWithTooFewNestingLevelsIsAnError() {
        assertKilnError(.invalidArgument, contains: ["2:"]) {
            try Parser.parse("func @f() {\n  %0 = constant f32[2,1] [1.0, 2.0]\n  return %0\n}")
        }
    }

    func testUnterminatedStringIsReportedAtItsOpeningQuote() {
        assertKilnError(.invalidArgument, contains: ["1:24", "unterminated string"]) {
            try Parser.parse("func @f(%0: f32[] feed \"x) {\n  return\n}\n")
        }
        assertKilnError(.invalidArgument, contains: ["2:23", "unterminated string"]) {
            try Parser.parse("func @f() {\n  %0 = constant str[] \"abc\\\"\n  return %0\n}\n")
        }
    }

    func testLinesAreCountedInsideStrings() {
        // A raw newline in a hand-written string must still advance the line count.
        assertKilnError(.invalidArgument, contains: ["3:8"]) {
            try Parser.parse("func @f(%0: f32[] feed \"two\nlines\") {\n  %1 = bogus %0\n  return %1\n}")
        }
    }

    func testBadLiteralsAreInvalidArguments() {
        assertKilnError(.invalidArgument, contains: ["2:"]) {
            try Parser.parse("func @f() {\n  %0 = constant i32[] 1.5\n  return %0\n}")
        }
        assertKilnError(.invalidArgument, contains: ["2:"]) {
            try Parser.parse("func @f() {\n  %0 = constant bool[] yes\n  return %0\n}")
        }
        assertKilnError(.invalidArgument, contains: ["2:"]) {
            try Parser.parse("func @f() {\n  %0 = constant str[] 7\n  return %0\n}")
        }
        assertKilnError(.invalidArgument, contains: ["2:"]) {
            try Parser.parse("func @f() {\n  %0 = constant i64[] 9223372036854775808\n  return %0\n}")
        }
    }

    func testStructuralMistakesAreInvalidArguments() {
        // Parameters out of order.
        assertKilnError(.invalidArgument, contains: ["1:9"]) {
            try Parser.parse("func @f(%1: f32[] feed \"x\") {\n  return\n}")
        }
        // Unknown parameter kind.
        assertKilnError(.invalidArgument, contains: ["1:19", "feed or var"]) {
            try Parser.parse("func @f(%0: f32[] const \"x\") {\n  return\n}")
        }
        assertKilnError(.invalidArgument, contains: ["4:1", "after the end"]) {
            try Parser.parse("func @f() {\n  return\n}\nfunc @g() {\n  return\n}")
        }
        assertKilnError(.invalidArgument, contains: ["1:1", "func"]) { try Parser.parse("") }
        assertKilnError(.invalidArgument, contains: ["1:11", "unexpected character"]) { try Parser.parse("func @f() ; {\n  return\n}") }
        assertKilnError(.invalidArgument, contains: ["bad value name"]) { try Parser.parse("func @f() {\n  %x = neg %0\n  return\n}") }
    }

    func testTruncatedTextIsAnErrorNotACrash() {
        // Each prefix of a valid function must be rejected cleanly.
        let full = """
        func @f(%0: f32[2] feed "x", %1: f32[2] var "v") {
          %2 = constant f32[2] [1.0, -2.5]
          %3 = add %0, %2 : f32[2]
          %4 = reduce.sum %3 axes=[0]
          %5 = dot %3, %3 transpose_a=true transpose_b=false
          %6 = constant str[] "s"
          %7 = var.write %1, %3
          return %4
        }
        """
        XCTAssertNoThrow(try Parser.parse(full))
        var cut = full
        while !cut.isEmpty {
            cut.removeLast()
            assertKilnError(.invalidArgument, contains: [":"]) { try Parser.parse(cut) }
        }
    }
}
