import XCTest
import KilnIR

final class ShapeTests: XCTestCase {
    func testUnknownDimensionIsCompatibleWithAnySize() {
        let s: Shape = [2, nil, 3]
        XCTAssertTrue(s.isCompatible(with: [2, 5, 3]))
        XCTAssertTrue(s.isCompatible(with: [nil, nil, 3]))
        XCTAssertFalse(s.isCompatible(with: [2, 5, 4]))
    }

    func testDifferentRanksAreIncompatible() {
        XCTAssertFalse(Shape([2, 3]).isCompatible(with: Shape([2, 3, 1])))
        XCTAssertFalse(Shape.scalar.isCompatible(with: [nil]))
    }

    func testUnknownRankIsCompatibleWithEverything() {
        XCTAssertTrue(Shape.unknown.isCompatible(with: [2, 3]))
        XCTAssertTrue(Shape([7]).isCompatible(with: .unknown))
        XCTAssertTrue(Shape.unknown.isCompatible(with: .scalar))
    }

    func testMergeTakesTheKnownDimensionFromEitherSide() {
        let a: Shape = [2, nil, nil]
        let b: Shape = [nil, 5, nil]
        XCTAssertEqual(a.merged(with: b), [2, 5, nil])
        XCTAssertEqual(b.merged(with: a), [2, 5, nil])
    }

    func testMergeWithUnknownRankGivesTheOtherShape() {
        XCTAssertEqual(Shape.unknown.merged(with: [nil, 4]), [nil, 4])
        XCTAssertEqual(Shape(dims: [nil, 4]).merged(with: .unknown), [nil, 4])
        XCTAssertEqual(Shape.unknown.merged(with: .unknown), .unknown)
    }

    func testMergeOfConflictingShapesIsNil() {
        XCTAssertNil(Shape([2, 3]).merged(with: [2, 4]))
        XCTAssertNil(Shape([2, 3]).merged(with: [2, 3, 1]))
        XCTAssertNil(Shape(dims: [nil, 3]).merged(with: [1, 2]))
    }

    func testDescriptionUsesTensorFlowSpelling() {
        XCTAssertEqual(Shape(dims: [2, nil, 3]).description, "[2,?,3]")
        XCTAssertEqual(Shape.unknown.description, "<unknown>")
        XCTAssertEqual(Shape.scalar.description, "[]")
        XCTAssertEqual(Shape([0, 1]).description, "[0,1]")
    }

    func testConcreteDimensionsOnlyWhenFullyDefined() {
        XCTAssertEqual(Shape([2, 3]).concrete, [2, 3])
        XCTAssertEqual(Shape([2, 3]).elementCount, 6)
        XCTAssertEqual(Shape.scalar.elementCount, 1)
        XCTAssertTrue(Shape.scalar.isFullyDefined)
        XCTAssertNil(Shape(dims: [2, nil]).concrete)
        XCTAssertNil(Shape(dims: [2, nil]).elementCount)
        XCTAssertFalse(Shape.unknown.isFullyDefined)
        XCTAssertNil(Shape.unknown.rank)
        XCTAssertEqual(Shape(dims: [nil, nil]).rank, 2)
    }
}

final class TensorTypeAndDTypeTests: XCTestCase {
    func testTensorTypeDescriptionUsesShortDtypeNames() {
        XCTAssertEqual(TensorType(.float32, [2, 3]).description, "f32[2,3]")
        XCTAssertEqual(TensorType(.int32, []).description, "i32[]")
        XCTAssertEqual(TensorType(.string, [1]).description, "str[1]")
        XCTAssertEqual(TensorType(.float64, [2, 3]).byteCount, 48)
    }

    func testDTypeAcceptsBothTensorFlowAndShortNames() {
        for d in DType.allCases {
            XCTAssertEqual(DType(name: d.name), d)
            XCTAssertEqual(DType(name: d.rawValue), d)
        }
        XCTAssertEqual(DType(name: "half"), .float16, "tf.half")
        XCTAssertNil(DType(name: "complex64"))
    }
}
