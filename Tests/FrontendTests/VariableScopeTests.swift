import XCTest
import Foundation
import KilnIR
@testable import KilnFrontend

/// Variables, collections, name and variable scopes, get_variable and its errors, and the
/// graph that layers and optimizers build: names as TensorFlow 1 makes them.
final class VariableScopeTests: XCTestCase {
    func message(_ body: () throws -> Any) -> String {
        do { _ = try body() } catch { return (error as? KilnError)?.message ?? "\(error)" }
        return "(no error)"
    }

    func testGetVariableInsideVariableScopeIsNamedScopeSlashName() throws {
        let g = Graph()
        let w = try g.variableScope("conv1") { try g.getVariable("weights", shape: [3, 3]) }
        XCTAssertEqual(w.name, "conv1/weights")
        XCTAssertEqual(w.value.name, "conv1/weights/read:0")
        XCTAssertEqual(w.ref.name, "conv1/weights:0")
        XCTAssertEqual(w.shape, Shape([3, 3]))
        XCTAssertEqual(w.dtype, .float32)
        let nested = try g.variableScope("a") { try g.variableScope("b") { try g.getVariable("v", shape: [1]) } }
        XCTAssertEqual(nested.name, "a/b/v")
    }

    func testGetVariableIgnoresNameScopesButOpsDoNot() throws {
        // TensorFlow: name_scope prefixes ops, never get_variable's names.
        let g = Graph()
        let (v, op) = try g.nameScope("outer") {
            try g.variableScope("vs") { (try g.getVariable("w", shape: [2]), try g.constant(1 as Float)) }
        }
        XCTAssertEqual(v.name, "vs/w")
        XCTAssertEqual(op.op.name, "outer/vs/Const")
        let inNameScope = try g.variableScope("vs2") { try g.nameScope("ns") { try g.getVariable("w", shape: [2]) } }
        XCTAssertEqual(inNameScope.name, "vs2/w")
    }

    func testReopeningAVariableScopeWithReuseSharesTheVariableAndRenamesTheNameScope() throws {
        let g = Graph()
        let (w1, op1) = try g.variableScope("conv1") { (try g.getVariable("weights", shape: [2, 2]), try g.constant(0 as Float)) }
        let (w2, op2) = try g.variableScope("conv1", reuse: .yes) { (try g.getVariable("weights", shape: [2, 2]), try g.constant(0 as Float)) }
        XCTAssertTrue(w1 === w2)
        XCTAssertEqual(op1.op.name, "conv1/Const")
        XCTAssertEqual(op2.op.name, "conv1_1/Const", "the name scope is made unique even when the variable scope is shared")
        XCTAssertEqual(g.globalVariables.count, 1)
    }

    func testTwoNameScopesOfOneNameGetSuffixes() throws {
        let g = Graph()
        let a = try g.nameScope("conv1") { try g.constant(1 as Float, name: "x") }
        let b = try g.nameScope("conv1") { try g.constant(1 as Float, name: "x") }
        let c = try g.nameScope("conv1") { try g.constant(1 as Float, name: "x") }
        XCTAssertEqual([a.op.name, b.op.name, c.op.name], ["conv1/x", "conv1_1/x", "conv1_2/x"])
    }

    func testVariableWithATakenNameGetsSuffix() throws {
        let g = Graph()
        let a = try g.variable([1, 2] as [Float], name: "weights")
        let b = try g.variable([1, 2] as [Float], name: "weights")
        XCTAssertEqual(a.name, "weights")
        XCTAssertEqual(b.name, "weights_1")
        XCTAssertEqual(b.ref.name, "weights_1:0")
        XCTAssertEqual(b.initializer.name, "weights_1/Assign")
        let c = try g.variable(try g.constant([3] as [Float]), name: "weights")
        XCTAssertEqual(c.name, "weights_2")
    }

    func testVariableInsideAVariableScopeTakesTheScopePrefix() throws {
        // tf.Variable is named by the name scope, which variable_scope opens.
        let g = Graph()
        let v = try g.variableScope("conv1") { try g.variable(try g.constant([1] as [Float]), name: "weights") }
        XCTAssertEqual(v.name, "conv1/weights")
        XCTAssertEqual(v.value.op.name, "conv1/weights/read")
    }

    func testVariableFromASwiftValueInsideANameScopeIsPrefixedOnce() throws {
        let g = Graph()
        let literal = try g.nameScope("ns") { try g.variable([1, 2] as [Float], name: "v") }
        XCTAssertEqual(literal.name, "ns/v")
        XCTAssertEqual(literal.initialValue.op.name, "ns/v/initial_value")
        let tensor = try g.variableScope("conv1") { try g.variable(Tensor(shape: [2], scalars: [1, 2] as [Float]), name: "weights") }
        XCTAssertEqual(tensor.name, "conv1/weights")
    }

    func testReuseYesReuseVariablesAndAutoReuse() throws {
        let g = Graph()
        let a = try g.variableScope("s") { try g.getVariable("w", shape: [2]) }
        let viaReuseVariables = try g.variableScope("s") { () throws -> Variable in
            g.reuseVariables()
            return try g.getVariable("w", shape: [2])
        }
        XCTAssertTrue(a === viaReuseVariables)
        // Inside a reusing scope every sub-scope reuses too.
        let inner = try g.variableScope("t") { try g.variableScope("u") { try g.getVariable("w", shape: [1]) } }
        let innerAgain = try g.variableScope("t", reuse: .yes) { try g.variableScope("u") { try g.getVariable("w", shape: [1]) } }
        XCTAssertTrue(inner === innerAgain)
        // AUTO_REUSE creates on first use, shares afterwards.
        let auto1 = try g.variableScope("auto", reuse: .auto) { try g.getVariable("w", shape: [3]) }
        let auto2 = try g.variableScope("auto", reuse: .auto) { try g.getVariable("w", shape: [3]) }
        XCTAssertTrue(auto1 === auto2)
        XCTAssertEqual(auto1.name, "auto/w")
        XCTAssertEqual(g.globalVariables.map(\.name), ["s/w", "t/u/w", "auto/w"])
    }

    /// tf.get_variable_scope().reuse_variables() at the top level (the GAN pattern: build G,
    /// then reuse for the second tower) makes later top-level get_variable calls share.
    func testReuseVariablesAtTheTopLevelMakesTheRootScopeReuse() throws {
        let g = Graph()
        let w = try g.getVariable("w", shape: [2])
        g.reuseVariables()
        XCTAssertTrue(try g.getVariable("w", shape: [2]) === w)
        XCTAssertTrue(message { try g.getVariable("new", shape: [2]) }.contains("does not exist"))
    }

    func testCreatingAnExistingVariableWithoutReuseIsTensorFlowsError() throws {
        let g = Graph()
        _ = try g.variableScope("conv1") { try g.getVariable("weights", shape: [2]) }
        let m = message { try g.variableScope("conv1") { try g.getVariable("weights", shape: [2]) } }
        XCTAssertTrue(m.hasPrefix("Variable conv1/weights already exists, disallowed. Did you mean to set reuse=True or reuse=tf.AUTO_REUSE in VarScope?"), m)
    }

    func testReusingAMissingVariableIsTensorFlowsError() throws {
        let g = Graph()
        let m = message { try g.variableScope("conv1", reuse: .yes) { try g.getVariable("bias", shape: [2]) } }
        XCTAssertEqual(m, "Variable conv1/bias does not exist, or was not created with tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
    }

    func testNewVariableWithoutShapeIsTensorFlowsError() throws {
        let g = Graph()
        let m = message { try g.getVariable("w") }
        XCTAssertEqual(m, "Shape of a new variable (w) must be fully defined, but instead was <unknown>.")
    }

    func testSharingWithAnotherShapeOrDTypeNamesTheVariable() throws {
        let g = Graph()
        _ = try g.variableScope("fc") { try g.getVariable("w", shape: [3, 4]) }
        let shape = message { try g.variableScope("fc", reuse: .yes) { try g.getVariable("w", shape: [4, 3]) } }
        XCTAssertTrue(shape.contains("Trying to share variable fc/w, but specified shape [4,3] and found shape [3,4]"), shape)
        let dtype = message { try g.variableScope("fc", reuse: .yes) { try g.getVariable("w", shape: [3, 4], dtype: .float64) } }
        XCTAssertTrue(dtype.contains("Trying to share variable fc/w") && dtype.contains("float64") && dtype.contains("float32"), dtype)
        // Leaving the shape out when sharing is fine.
        XCTAssertNoThrow(try g.variableScope("fc", reuse: .yes) { try g.getVariable("w") })
    }

    func testTrainableFalseIsGlobalButNotTrainable() throws {
        let g = Graph()
        let frozen = try g.getVariable("frozen", shape: [2], trainable: false)
        let plain = try g.getVariable("plain", shape: [2])
        let old = try g.variable([1] as [Float], name: "old", trainable: false)
        XCTAssertEqual(g.globalVariables, [frozen, plain, old])
        XCTAssertEqual(g.allVariables(), g.globalVariables)
        XCTAssertEqual(g.trainableVariables, [plain])
        XCTAssertFalse(frozen.trainable)
    }

    func testCollectionsGetAndAddAndLocalVariables() throws {
        let g = Graph()
        XCTAssertTrue(g.collection("my_things").isEmpty)
        let c = try g.constant(1 as Float)
        g.addToCollection("my_things", c)
        g.addToCollection("my_things", "a string")
        XCTAssertEqual(g.collection("my_things").count, 2)
        XCTAssertEqual(g.collection("my_things").first as? Output, c)
        let local = try g.getVariable("counter", shape: [], dtype: .int32, trainable: false, collections: [GraphKeys.localVariables])
        XCTAssertEqual(g.localVariables, [local])
        XCTAssertFalse(g.globalVariables.contains(local), "a local variable is not global")
        XCTAssertEqual(try g.localVariablesInitializer().controlInputs, [local.initializer])
        XCTAssertEqual(GraphKeys.globalVariables, "variables")
        XCTAssertEqual(GraphKeys.trainableVariables, "trainable_variables")
        XCTAssertEqual(GraphKeys.updateOps, "update_ops")
        XCTAssertEqual(GraphKeys.regularizationLosses, "regularization_losses")
    }

    func testInitializerOpsGroupTheRightAssigns() throws {
        let g = Graph()
        let a = try g.getVariable("a", shape: [2])
        let b = try g.getVariable("b", shape: [2], trainable: false)
        let all = try g.globalVariablesInitializer()
        XCTAssertEqual(Set(all.controlInputs), [a.initializer, b.initializer])
        XCTAssertEqual(Set(try g.initializeAllVariables().controlInputs), [a.initializer, b.initializer])
        let some = try g.variablesInitializer([b])
        XCTAssertEqual(some.controlInputs, [b.initializer])
        XCTAssertEqual(a.initializer.type, "Assign")
        XCTAssertEqual(a.initializer.name, "a/Assign")
        // get_variable's initial value lives under <name>/Initializer/.
        XCTAssertTrue(a.initialValue.op.name.hasPrefix("a/Initializer/"), a.initialValue.op.name)
    }

    func testVariableScopeInitializerIsTheDefaultAndAnExplicitOneWins() throws {
        let g = Graph()
        let (scoped, explicit) = try g.variableScope("s", initializer: .constant(3)) {
            (try g.getVariable("a", shape: [2]), try g.getVariable("b", shape: [2], initializer: .ones))
        }
        XCTAssertEqual(try scoped.initialValue.op.attrs["value"]?.tensor?.scalars(as: Float.self), [3, 3])
        XCTAssertEqual(explicit.initialValue.op.name, "s/b/Initializer/ones")
        // Sub-scopes inherit the initializer.
        let inherited = try g.variableScope("s2", initializer: .zeros) { try g.variableScope("in") { try g.getVariable("c", shape: [1]) } }
        XCTAssertEqual(inherited.initialValue.op.name, "s2/in/c/Initializer/zeros")
    }

    func testRegularizerLossesLandInTheirCollectionOnceAndTotalLossAddsThem() throws {
        let g = Graph()
        let w = try g.variableScope("fc", regularizer: .l2(0.1)) { try g.getVariable("w", shape: [2, 2]) }
        _ = try g.variableScope("fc", reuse: .yes) { try g.getVariable("w", shape: [2, 2]) }
        _ = try g.getVariable("v", shape: [3], regularizer: .l1(0.5))
        XCTAssertEqual(g.regularizationLosses.count, 2, "sharing a variable adds no second penalty")
        XCTAssertEqual(g.collection(GraphKeys.regularizationLosses).count, 2)
        XCTAssertTrue(g.regularizationLosses[0].op.name.hasPrefix("fc/w/Regularizer/"), g.regularizationLosses[0].op.name)
        XCTAssertTrue(g.regularizationLosses[0].op.inputs.contains { $0.op.type == "L2Loss" }, "l2 = scale * l2_loss(w)")
        XCTAssertTrue(g.regularizationLosses[0].op.inputs.first { $0.op.type == "L2Loss" }?.op.inputs == [w.value])
        let data = try g.reduceSum(w)
        g.addLoss(data)
        let total = try g.totalLoss()
        XCTAssertEqual(total.op.type, "AddN")
        XCTAssertEqual(total.op.inputs, [data] + g.regularizationLosses)
        XCTAssertEqual(try g.totalLoss(addRegularizationLosses: false, name: "data_only").op.inputs, [data])
    }

    func testTotalLossWithNothingAddedIsAClearError() {
        let g = Graph()
        let m = message { try g.totalLoss() }
        XCTAssertTrue(m.contains("no losses"), m)
    }

    func testGlobalStepIsOneNonTrainableInt64Scalar() throws {
        let g = Graph()
        let s = try g.globalStep()
        XCTAssertEqual(s.name, "global_step")
        XCTAssertEqual(s.dtype, .int64)
        XCTAssertEqual(s.shape, Shape([]))
        XCTAssertTrue(try g.globalStep() === s)
        XCTAssertTrue(g.globalVariables.contains(s))
        XCTAssertFalse(g.trainableVariables.contains(s))
        XCTAssertEqual(g.collection(GraphKeys.globalStep).count, 1)
    }

    func testGradientThroughPreventGradientThrowsWithItsMessage() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let p = try g.addOperation("PreventGradient", inputs: [x], attrs: ["T": .type(.float32), "message": .string("no second derivative")]).output()
        let y = try g.reduceSum(g.square(p))
        let m = message { try g.gradients([y], [x]) }
        XCTAssertTrue(m.contains("no second derivative") && m.contains("PreventGradient"), m)
    }

    func testUnconnectedGradientsAreNilOrZerosOnRequest() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let z = try g.placeholder(.float32, shape: [2], name: "z")
        let y = try g.reduceSum(g.square(x))
        let grads = try g.gradients([y], [x, z])
        XCTAssertNotNil(grads[0])
        XCTAssertNil(grads[1])
        let zeros = try g.gradients([y], [x, z], unconnectedZeros: true)
        XCTAssertEqual(zeros[1]?.op.type, "ZerosLike")
        // Integer paths carry no gradient: argmax of x does not connect.
        let viaArgmax = try g.reduceSum(g.cast(g.argmax(x, axis: 0), to: .float32))
        XCTAssertNil(try g.gradients([viaArgmax], [x])[0])
    }
}
