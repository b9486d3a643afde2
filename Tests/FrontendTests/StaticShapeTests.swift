import XCTest
import KilnIR
@testable import KilnFrontend

/// Shapes are known right after construction, unknown batch dimensions included.
final class StaticShapeTests: XCTestCase {
    let g = Graph()

    func batch(_ dims: Int?...) throws -> Output { try g.placeholder(.float32, shape: Shape(dims: dims)) }

    func testPadConcatReduceAndExpandDimsKeepUnknownBatch() throws {
        let x = try batch(nil, 3, 4)
        XCTAssertEqual(try g.pad(x, paddings: [[0, 0], [1, 2], [0, 1]]).shape, Shape(dims: [nil, 6, 5]))
        XCTAssertEqual(try g.pad(x, paddings: [[1, 1], [0, 0], [0, 0]], mode: .reflect).shape, Shape(dims: [nil, 3, 4]))
        XCTAssertEqual(try g.concat([x, x], axis: -1).shape, Shape(dims: [nil, 3, 8]))
        XCTAssertEqual(try g.concat([x, x], axis: 0).shape, Shape(dims: [nil, 3, 4]))
        XCTAssertEqual(try g.reduceSum(x, axes: [0]).shape, Shape([3, 4]))
        XCTAssertEqual(try g.reduceMax(x, axes: [-1], keepDims: true).shape, Shape(dims: [nil, 3, 1]))
        XCTAssertEqual(try g.expandDims(x, axis: -1).shape, Shape(dims: [nil, 3, 4, 1]))
        XCTAssertEqual(try g.expandDims(x, axis: 0).shape, Shape(dims: [1, nil, 3, 4]))
    }

    func testReshapeWithMinusOneAndAPartlyUnknownInput() throws {
        let x = try batch(nil, 3, 4)
        XCTAssertEqual(try g.reshape(x, [-1, 12]).shape, Shape(dims: [nil, 12]))
        let known = try batch(2, 3, 4)
        XCTAssertEqual(try g.reshape(known, [4, -1]).shape, Shape([4, 6]))
        XCTAssertThrowsError(try g.reshape(known, [5, -1])) { error in
            XCTAssertTrue((error as! KilnError).message.contains("24"))
        }
    }

    func testNNOpsInferShapesWithUnknownBatch() throws {
        let images = try batch(nil, 28, 28, 1)
        let filter = try g.constant(0 as Float, shape: [5, 5, 1, 32])
        let conv = try g.conv2d(images, filter, strides: [1, 1, 1, 1], padding: "SAME")
        XCTAssertEqual(conv.shape, Shape(dims: [nil, 28, 28, 32]))
        let pooled = try g.maxPool(conv, ksize: [1, 2, 2, 1], strides: [1, 2, 2, 1], padding: "SAME")
        XCTAssertEqual(pooled.shape, Shape(dims: [nil, 14, 14, 32]))
        let valid = try g.conv2d(images, filter, strides: [1, 2, 2, 1], padding: "VALID")
        XCTAssertEqual(valid.shape, Shape(dims: [nil, 12, 12, 32]))
        let logits = try batch(nil, 10)
        XCTAssertEqual(try g.softmax(logits).shape, Shape(dims: [nil, 10]))
        XCTAssertEqual(try g.softmaxCrossEntropyWithLogits(labels: logits, logits: logits).shape, Shape(dims: [nil]))
        XCTAssertEqual(try g.argmax(logits, axis: 1).shape, Shape(dims: [nil]))
        XCTAssertEqual(try g.oneHot(try g.placeholder(.int32, shape: [nil]), depth: 10).shape, Shape(dims: [nil, 10]))
    }

    func testSliceGatherTileTransposeAndStridedSliceShapes() throws {
        let x = try batch(4, 5)
        XCTAssertEqual(try g.slice(x, begin: [1, 2], size: [2, -1]).shape, Shape([2, 3]))
        XCTAssertEqual(try g.tile(x, multiples: [2, 3]).shape, Shape([8, 15]))
        XCTAssertEqual(try g.transpose(x).shape, Shape([5, 4]))
        XCTAssertEqual(try g.gather(x, try g.placeholder(.int32, shape: [nil, 2]), axis: 1).shape, Shape(dims: [4, nil, 2]))
        XCTAssertEqual(try g.stridedSlice(x, begin: [0], end: [0], strides: [-1], beginMask: 1, endMask: 1).shape, Shape([4, 5]))
        XCTAssertEqual(try g.stridedSlice(x, begin: [0, 1], end: [0, 2], ellipsisMask: 1, shrinkAxisMask: 2).shape, Shape([4]))
    }

    func testBadArgumentsFailAtConstructionNamingTheProblem() throws {
        let x = try batch(2, 3)
        XCTAssertThrowsError(try g.pad(x, paddings: [[1, 2], [2, 3]], mode: .reflect)) { error in
            XCTAssertTrue((error as! KilnError).message.contains("paddings must be less than the dimension size"))
        }
        XCTAssertThrowsError(try g.squeeze(x, axes: [0])) { XCTAssertTrue(($0 as! KilnError).message.contains("squeeze")) }
        XCTAssertThrowsError(try g.concat([x, try batch(2, 4)], axis: 0)) { XCTAssertTrue(($0 as! KilnError).message.contains("Dimension 1")) }
        XCTAssertThrowsError(try g.transpose(x, perm: [0, 0]))
        XCTAssertThrowsError(try g.conv2d(try batch(1, 5, 5, 2), try g.constant(0 as Float, shape: [3, 3, 3, 1]), strides: [1, 1, 1, 1], padding: "SAME"))
        XCTAssertThrowsError(try g.randomUniform([3], minval: 4, maxval: 2, dtype: .int32))
    }
}
