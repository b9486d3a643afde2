import XCTest
import KilnIR
@testable import KilnFrontend

final class GraphConstructionTests: XCTestCase {
    func testRepeatedNamesGetTensorFlowSuffixes() throws {
        let g = Graph()
        let a = try g.constant([[1, 2]] as [[Float]])
        let b = try g.constant([[3], [4]] as [[Float]])
        XCTAssertEqual(try g.matmul(a, b).op.name, "MatMul")
        XCTAssertEqual(try g.matmul(a, b).op.name, "MatMul_1")
        XCTAssertEqual(try g.matmul(a, b, name: "MatMul_1").op.name, "MatMul_1_1")
        XCTAssertEqual(a.op.name, "Const")
        XCTAssertEqual(b.op.name, "Const_1")
        XCTAssertEqual(a.name, "Const:0")
    }

    func testNameScopesNestAndAreMadeUnique() throws {
        let g = Graph()
        let inner = try g.nameScope("a") { try g.nameScope("b") { try g.constant(1 as Float) } }
        XCTAssertEqual(inner.op.name, "a/b/Const")
        let again = try g.nameScope("a") { try g.constant(1 as Float) }
        XCTAssertEqual(again.op.name, "a_1/Const")
        let reentered = try g.nameScope("a/") { try g.constant(1 as Float) }
        XCTAssertEqual(reentered.op.name, "a/Const")
    }

    func testConstantsFromScalarsNestedArraysAndExplicitDTypeAndShape() throws {
        let g = Graph()
        XCTAssertEqual(try g.constant(3 as Int32).shape, Shape([]))
        let m = try g.constant([[1, 2, 3], [4, 5, 6]] as [[Double]])
        XCTAssertEqual(m.shape, Shape([2, 3]))
        XCTAssertEqual(m.dtype, .float64)
        let cast = try g.constant([1, 2] as [Float], dtype: .int64)
        XCTAssertEqual(cast.dtype, .int64)
        let filled = try g.constant(0.5 as Float, shape: [3, 3])
        XCTAssertEqual(filled.shape, Shape([3, 3]))
        XCTAssertEqual(try filled.op.attrs["value"]?.tensor?.scalars(as: Float.self), Array(repeating: 0.5, count: 9))
        XCTAssertThrowsError(try g.constant([1, 2, 3] as [Float], shape: [2, 2]))
        XCTAssertThrowsError(try g.constant([[1, 2], [3]] as [[Float]])) { error in
            XCTAssertEqual((error as? KilnError)?.code, .invalidArgument)
        }
    }

    func testPlaceholderKeepsUnknownDimensionsThroughOps() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 784], name: "x")
        let w = try g.constant(0 as Float, shape: [784, 10])
        let y = try g.matmul(x, w)
        XCTAssertEqual(y.shape, Shape(dims: [nil, 10]))
        XCTAssertEqual(try g.reduceSum(y, axes: [1], keepDims: true).shape, Shape(dims: [nil, 1]))
        XCTAssertEqual(try g.reduceMean(y, axes: [0]).shape, Shape([10]))
        XCTAssertEqual(try g.reshape(y, [-1, 5]).shape, Shape(dims: [nil, 5]))
        XCTAssertEqual(try g.placeholder(.float32).shape, Shape.unknown)
        let b = try g.constant([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as [Float])
        XCTAssertEqual(try (y + b).shape, Shape(dims: [nil, 10]))
    }

    func testMismatchedMatmulShapesThrowAtConstructionNamingNodeOpAndShapes() throws {
        let g = Graph()
        let a = try g.constant([[1, 2]] as [[Float]])
        let b = try g.constant([[1], [2], [3]] as [[Float]])
        XCTAssertThrowsError(try g.matmul(a, b)) { error in
            let e = error as! KilnError
            XCTAssertEqual(e.code, .invalidArgument)
            XCTAssertTrue(e.message.contains("'MatMul'"), e.message)
            XCTAssertTrue(e.message.contains("op: 'MatMul'"), e.message)
            XCTAssertTrue(e.message.contains("[1,2], [3,1]"), e.message)
            XCTAssertTrue(e.message.contains("2 and 3"), e.message)
        }
    }

    func testMismatchedBroadcastShapesThrowAtConstructionNamingNodeOpAndShapes() throws {
        let g = Graph()
        let a = try g.constant(0 as Float, shape: [2, 3])
        let b = try g.constant(0 as Float, shape: [4])
        XCTAssertThrowsError(try g.add(a, b)) { error in
            let e = error as! KilnError
            XCTAssertTrue(e.message.contains("'add'"), e.message)
            XCTAssertTrue(e.message.contains("op: 'AddV2'"), e.message)
            XCTAssertTrue(e.message.contains("[2,3], [4]"), e.message)
        }
    }

    func testMixedDTypesAreRejectedNamingBothInputs() throws {
        let g = Graph()
        let a = try g.constant(1 as Float)
        let b = try g.constant(1 as Int32)
        XCTAssertThrowsError(try g.add(a, b)) { error in
            let m = (error as! KilnError).message
            XCTAssertTrue(m.contains("float32") && m.contains("int32"), m)
        }
    }

    func testFinalizedGraphRejectsNewOperations() throws {
        let g = Graph()
        _ = try g.constant(1 as Float)
        g.finalize()
        XCTAssertThrowsError(try g.constant(2 as Float)) { error in
            XCTAssertEqual((error as? KilnError)?.code, .failedPrecondition)
        }
    }

    func testControlDependenciesAndDevicesAreRecordedOnNewOps() throws {
        let g = Graph()
        let v = try g.variable(0 as Float, name: "v")
        let bump = try g.assignAdd(v, try g.constant(1 as Float))
        let after = try g.controlDependencies([bump.op]) { try g.device("/cpu:0") { try g.identity(v) } }
        XCTAssertEqual(after.op.controlInputs, [bump.op])
        XCTAssertEqual(after.op.device, "/cpu:0")
        let outside = try g.identity(v)
        XCTAssertTrue(outside.op.controlInputs.isEmpty)
        XCTAssertEqual(outside.op.device, "")
    }

    func testVariableBuildsTensorFlowNodesAndCollections() throws {
        let g = Graph()
        let counter = try g.variable(0 as Int32, name: "counter")
        XCTAssertEqual(counter.name, "counter")
        XCTAssertEqual(counter.value.op.name, "counter/read")
        XCTAssertEqual(counter.initializer.name, "counter/Assign")
        XCTAssertEqual(counter.initialValue.op.name, "counter/initial_value")
        XCTAssertEqual(counter.ref.op.type, "VariableV2")
        XCTAssertTrue(counter.ref.isRef)
        let frozen = try g.variable(1 as Float, name: "counter", trainable: false)
        XCTAssertEqual(frozen.name, "counter_1")
        XCTAssertEqual(g.globalVariables, [counter, frozen])
        XCTAssertEqual(g.trainableVariables, [counter])
        let initOp = try g.globalVariablesInitializer()
        XCTAssertEqual(initOp.name, "init")
        XCTAssertEqual(initOp.type, "NoOp")
        XCTAssertEqual(Set(initOp.controlInputs), Set([counter.initializer, frozen.initializer]))
    }

    func testScalarOperandsBecomeConstantsOfTheTensorDType() throws {
        let g = Graph()
        let s = try g.variable(0 as Int32, name: "counter")
        let next = try s + 1
        XCTAssertEqual(next.op.name, "add")
        XCTAssertEqual(next.op.inputs[1].op.name, "add/y")
        XCTAssertEqual(next.op.inputs[1].dtype, .int32)
        XCTAssertEqual(try (2 * s).op.inputs[0].op.name, "mul/x")
    }

    func testAssignRejectsNonVariablesAndShapeMismatch() throws {
        let g = Graph()
        let v = try g.variable([1, 2] as [Float], name: "v")
        XCTAssertThrowsError(try g.assign(v, try g.constant([1, 2, 3] as [Float]))) { error in
            XCTAssertTrue((error as! KilnError).message.contains("v/Assign") || (error as! KilnError).message.contains("Assign"))
        }
        let c = try g.constant([1, 2] as [Float])
        XCTAssertThrowsError(try g.addOperation("Assign", inputs: [c, c]))
    }

    func testTensorLookupByNameAndMissingNames() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        XCTAssertEqual(try g.tensor(named: "x:0"), x)
        XCTAssertEqual(try g.tensor(named: "x"), x)
        XCTAssertThrowsError(try g.tensor(named: "y:0")) { XCTAssertEqual(($0 as? KilnError)?.code, .notFound) }
        XCTAssertThrowsError(try g.tensor(named: "x:3")) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }

    func testPruningKeepsOnlyWhatFetchesAndTargetsNeed() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let y = try g.exp(x)
        _ = try g.log(x)
        let c = try g.constant([1, 2] as [Float])
        let z = try y + c
        let ops = Lowering.prune(fetches: [z], feeds: [x], targets: [])
        XCTAssertEqual(ops.map(\.name), ["Exp", "Const", "add"], "a fed placeholder is not an op to run")
        XCTAssertFalse(ops.contains { $0.type == "Log" })
        let fedY = Lowering.prune(fetches: [z], feeds: [y], targets: [])
        XCTAssertFalse(fedY.contains(x.op), "a fed tensor's producer is not needed")
    }
}
