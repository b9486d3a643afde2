import XCTest
import Kiln

final class SessionTests: XCTestCase {
    func testConstantMatmulRunsInsideACPUDeviceBlock() throws {
        let g = Graph()
        let product = try g.device("/cpu:0") {
            try g.matmul(try g.constant([[3, 3]] as [[Float]]), try g.constant([[2], [2]] as [[Float]]))
        }
        let sess = try Session(graph: g)
        let r = try sess.run(product)
        XCTAssertEqual(r.shape, [1, 1])
        XCTAssertEqual(try r.scalars(as: Float.self), [12])
        XCTAssertEqual(r.description, "[[12.0]]")
    }

    func testCounterCountsOneTwoThree() throws {
        let g = Graph()
        let (state, update) = try g.device("/cpu:0") { () throws -> (Variable, Output) in
            let state = try g.variable(0 as Int32, name: "counter")
            return (state, try g.assign(state, try state + 1))
        }
        let sess = try Session(graph: g)
        try sess.run(try g.globalVariablesInitializer())
        var seen: [Int32] = []
        for _ in 0..<3 {
            _ = try sess.run(update)
            seen.append(try sess.run(state).scalar(as: Int32.self))
        }
        XCTAssertEqual(seen, [1, 2, 3])
    }

    func testRepeatedRunCompilesNothingASmallerBatchRunsOnItAndALargerOneCompilesOnce() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 2], name: "x")
        let y = try g.reduceSum(try g.tanh(x), axes: [1])
        let sess = try Session(graph: g)
        let a = try Tensor(shape: [3, 2], scalars: [0, 1, 2, 3, 4, 5] as [Float])
        for _ in 0..<5 { _ = try sess.run(y, feeds: [x: a]) }
        XCTAssertEqual(sess.compileCount, 1)
        let b = try Tensor(shape: [1, 2], scalars: [0.5, -0.5] as [Float])
        XCTAssertEqual(try sess.run(y, feeds: [x: b]).scalars(as: Float.self), [0])
        XCTAssertEqual(sess.compileCount, 1)
        XCTAssertEqual(sess.executableCache.batchReuses, 1)
        let c = try Tensor(shape: [4, 2], scalars: [0, 1, 2, 3, 4, 5, 6, 7] as [Float])
        for _ in 0..<2 { _ = try sess.run(y, feeds: [x: c]) }
        XCTAssertEqual(sess.compileCount, 2)
        let got = try sess.run(y, feeds: [x: a]).scalars(as: Float.self)
        let want = [Float(tanh(0.0) + tanh(1.0)), Float(tanh(2.0) + tanh(3.0)), Float(tanh(4.0) + tanh(5.0))]
        for (p, q) in zip(got, want) { XCTAssertEqual(p, q, accuracy: 1e-6) }
        XCTAssertEqual(sess.compileCount, 2)
    }

    func testUnfedPlaceholderIsInvalidArgumentNamingItAndSessionStaysUsable() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "images")
        let y = try g.exp(x)
        let sess = try Session(graph: g)
        XCTAssertThrowsError(try sess.run(y)) { error in
            let e = error as! KilnError
            XCTAssertEqual(e.code, .invalidArgument)
            XCTAssertTrue(e.message.contains("'images'") && e.message.contains("[?,3]") && e.message.contains("float32"), e.message)
        }
        XCTAssertEqual(try sess.run(y, feeds: [x: Tensor(shape: [1, 3], scalars: [0, 0, 0] as [Float])]).scalars(as: Float.self), [1, 1, 1])
    }

    func testFeedingWrongDTypeOrShapeIsInvalidArgumentNamingThePlaceholder() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let y = try g.relu(x)
        let sess = try Session(graph: g)
        XCTAssertThrowsError(try sess.run(y, feeds: [x: Tensor(shape: [1, 3], scalars: [1, 2, 3] as [Int32])])) { error in
            let e = error as! KilnError
            XCTAssertEqual(e.code, .invalidArgument)
            XCTAssertTrue(e.message.contains("'x:0'") && e.message.contains("int32") && e.message.contains("float32"), e.message)
        }
        XCTAssertThrowsError(try sess.run(y, feeds: [x: Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float])])) { error in
            let e = error as! KilnError
            XCTAssertEqual(e.code, .invalidArgument)
            XCTAssertTrue(e.message.contains("'x:0'") && e.message.contains("[2,2]") && e.message.contains("[?,3]"), e.message)
        }
        XCTAssertEqual(try sess.run(y, feeds: [x: Tensor(shape: [1, 3], scalars: [-1, 0, 2] as [Float])]).scalars(as: Float.self), [0, 0, 2])
    }

    func testReadingAnUninitialisedVariableIsFailedPreconditionNamingIt() throws {
        let g = Graph()
        let w = try g.variable([1, 2] as [Float], name: "weights")
        let doubled = try w * 2
        let sess = try Session(graph: g)
        XCTAssertThrowsError(try sess.run(doubled)) { error in
            let e = error as! KilnError
            XCTAssertEqual(e.code, .failedPrecondition)
            XCTAssertTrue(e.message.contains("weights"), e.message)
        }
        try sess.run(w.initializer)
        XCTAssertEqual(try sess.run(doubled).scalars(as: Float.self), [2, 4])
    }

    func testAssignAddAndAssignSubUpdateInPlaceAndReturnTheNewValue() throws {
        let g = Graph()
        let v = try g.variable([1, 2, 3] as [Double], name: "v")
        let up = try g.assignAdd(v, try g.constant([10, 10, 10] as [Double]))
        let down = try g.assignSub(v, try g.constant([1, 1, 1] as [Double]))
        let sess = try Session(graph: g)
        try sess.run(try g.globalVariablesInitializer())
        XCTAssertEqual(try sess.run(up).scalars(as: Double.self), [11, 12, 13])
        XCTAssertEqual(try sess.run(down).scalars(as: Double.self), [10, 11, 12])
        XCTAssertEqual(try sess.run(v).scalars(as: Double.self), [10, 11, 12])
    }

    func testControlDependenciesRunTheirOpsFirst() throws {
        let g = Graph()
        let v = try g.variable(0 as Float, name: "v")
        let bump = try g.assignAdd(v, try g.constant(1 as Float))
        let readAfter = try g.controlDependencies([bump.op]) { try g.identity(bump) }
        let grouped = try g.group([bump.op])
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        XCTAssertEqual(try sess.run(readAfter).scalar(as: Float.self), 1)
        try sess.run(grouped)
        XCTAssertEqual(try sess.run(v).scalar(as: Float.self), 2)
    }

    func testReductionsWithAxesKeepDimsAndMeans() throws {
        let g = Graph()
        let x = try g.constant([[1, 2, 3], [4, 5, 6]] as [[Float]])
        let sess = try Session(graph: g)
        XCTAssertEqual(try sess.run(try g.reduceSum(x)).scalars(as: Float.self), [21])
        XCTAssertEqual(try sess.run(try g.reduceSum(x, axes: [0])).scalars(as: Float.self), [5, 7, 9])
        let kept = try sess.run(try g.reduceSum(x, axes: [-1], keepDims: true))
        XCTAssertEqual(kept.shape, [2, 1])
        XCTAssertEqual(try kept.scalars(as: Float.self), [6, 15])
        XCTAssertEqual(try sess.run(try g.reduceMean(x, axes: [1])).scalars(as: Float.self), [2, 5])
        let ints = try g.constant([[1, 2], [3, 4]] as [[Int32]])
        XCTAssertEqual(try sess.run(try g.reduceMean(ints)).scalars(as: Int32.self), [2], "integer mean truncates, as TensorFlow's does")
    }

    func testFedInputsThroughTheJITMatchSwiftArithmetic() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [4], name: "x")
        let y = try (g.sigmoid(x) - g.log(g.exp(x) + 1)) / 2
        let sess = try Session(graph: g)
        let values: [Float] = [-2, -0.5, 0.25, 3]
        let got = try sess.run(y, feeds: [x: Tensor(shape: [4], scalars: values)]).scalars(as: Float.self)
        for (v, r) in zip(values, got) {
            let want = (1 / (1 + Foundation.exp(-v)) - Foundation.log(Foundation.exp(v) + 1)) / 2
            XCTAssertEqual(r, want, accuracy: 1e-6)
        }
    }

    func testMatmulOfFed64BitAndIntegerMatricesMatchesNaiveProduct() throws {
        let g = Graph()
        let a = try g.placeholder(.float64, shape: [nil, 5], name: "a")
        let b = try g.placeholder(.float64, shape: [5, 3], name: "b")
        let ab = try g.matmul(a, b)
        let abT = try g.matmul(b, a, transposeA: true, transposeB: true)
        let ai = try g.constant([[1, 2], [3, 4]] as [[Int32]])
        let product = try g.matmul(ai, ai)
        let sess = try Session(graph: g)
        let av = (0..<20).map { Double($0) * 0.5 - 3 }, bv = (0..<15).map { Double($0 % 7) - 2 }
        let r = try sess.run([ab, abT], feeds: [a: Tensor(shape: [4, 5], scalars: av), b: Tensor(shape: [5, 3], scalars: bv)])
        for i in 0..<4 { for j in 0..<3 {
            let want = (0..<5).reduce(0.0) { $0 + av[i * 5 + $1] * bv[$1 * 3 + j] }
            XCTAssertEqual(try r[0].scalars(as: Double.self)[i * 3 + j], want, accuracy: 1e-12)
            XCTAssertEqual(try r[1].scalars(as: Double.self)[j * 4 + i], want, accuracy: 1e-12)
        } }
        XCTAssertEqual(try sess.run(product).scalars(as: Int32.self), [7, 10, 15, 22])
    }

    func testClosedSessionRefusesToRun() throws {
        let g = Graph()
        let c = try g.constant(1 as Float)
        let sess = try Session(graph: g)
        sess.close()
        XCTAssertThrowsError(try sess.run(c))
    }

    func testOpsOnAnUnavailableDeviceFailUnlessSoftPlacementIsOn() throws {
        let g = Graph()
        let y = try g.device("/gpu:7") { try g.exp(try g.constant([0, 1] as [Float])) }
        XCTAssertThrowsError(try Session(graph: g, config: SessionConfig(openCLAllowCPU: false)).run(y)) { error in
            XCTAssertTrue((error as! KilnError).message.contains("'/device:GPU:7' because no devices matching"), "\(error)")
        }
        let soft = try Session(graph: g, config: SessionConfig(allowSoftPlacement: true, openCLAllowCPU: false))
        XCTAssertEqual(try soft.run(y).scalars(as: Float.self)[0], 1)
    }

    func testFetchingAFedTensorReturnsTheFedValue() throws {
        let g = Graph()
        let x = try g.placeholder(.int64, shape: [2], name: "x")
        let y = try x + 1
        let sess = try Session(graph: g)
        let r = try sess.run([x, y], feeds: [x: Tensor(shape: [2], scalars: [5, 6] as [Int64])])
        XCTAssertEqual(try r[0].scalars(as: Int64.self), [5, 6])
        XCTAssertEqual(try r[1].scalars(as: Int64.self), [6, 7])
    }

    func testTargetsOnlyRunReturnsNothingAndStillUpdatesState() throws {
        let g = Graph()
        let v = try g.variable(1 as Float, name: "v")
        let double = try g.assign(v, try v * 2)
        let sess = try Session(graph: g)
        try sess.run(targets: [v.initializer])
        try sess.run(targets: [double.op])
        try sess.run(targets: [double.op])
        XCTAssertEqual(try sess.run(v).scalar(as: Float.self), 4)
    }

    func testLargeMatmulThroughBLASMatchesNaiveProduct() throws {
        let g = Graph()
        let (m, k, n) = (67, 129, 33)
        let av = (0..<(m * k)).map { Float(($0 * 7) % 13) / 13 - 0.5 }
        let bv = (0..<(k * n)).map { Float(($0 * 5) % 11) / 11 - 0.5 }
        let a = try g.variable(Tensor(shape: [m, k], scalars: av), name: "a")
        let b = try g.variable(Tensor(shape: [k, n], scalars: bv), name: "b")
        let p = try g.matmul(a, b)
        let sess = try Session(graph: g)
        try sess.run(try g.globalVariablesInitializer())
        let r = try sess.run(p).scalars(as: Float.self)
        for i in stride(from: 0, to: m, by: 7) { for j in 0..<n {
            let want = (0..<k).reduce(Float(0)) { $0 + av[i * k + $1] * bv[$1 * n + j] }
            XCTAssertEqual(r[i * n + j], want, accuracy: 1e-4)
        } }
    }
}

import Foundation
