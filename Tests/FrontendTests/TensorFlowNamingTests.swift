import XCTest
@testable import KilnFrontend
import KilnIR

/// Names TensorFlow 1 gives the ops of optimizers and regularizers, which savers, `import_meta_graph`
/// and `get_operation_by_name` users depend on.
final class TensorFlowNamingTests: XCTestCase {
    private func quadratic(_ g: Graph) throws -> (Variable, Output) {
        let w = try g.variable([1, 2] as [Float], name: "w")
        return (w, try g.reduceSum(try g.square(w)))
    }

    func testMinimizeNamesItsOpAfterItsNameAsTensorFlowDoes() throws {
        let g = Graph()
        let (_, loss) = try quadratic(g)
        XCTAssertEqual(try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss, name: "train").name, "train")
        let unnamed = try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss)
        XCTAssertEqual(unnamed.name, "GradientDescent")
        XCTAssertEqual(unnamed.type, "NoOp")
        XCTAssertEqual(try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss).name, "GradientDescent_1")
        XCTAssertNotNil(g.operation(named: "train/update_w/AssignSub"))
    }

    func testWithAGlobalStepTheIncrementCarriesTheNameAndTheUpdatesAreGroupedUnderIt() throws {
        let g = Graph()
        let (_, loss) = try quadratic(g)
        let step = try g.variable(0 as Int64, name: "global_step", trainable: false)
        let train = try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss, globalStep: step, name: "train")
        XCTAssertEqual(train.name, "train")
        XCTAssertEqual(train.type, "AssignAdd")
        XCTAssertEqual(train.controlInputs.map(\.name), ["train/update"])
        XCTAssertEqual(train.inputs.map(\.name), ["global_step:0", "train/value:0"])
    }

    func testApplyGradientsAndAdamFinishNameLikeTensorFlow() throws {
        let g = Graph()
        let (w, loss) = try quadratic(g)
        let adam = AdamOptimizer(g, learningRate: 0.01)
        let apply = try adam.applyGradients(try adam.computeGradients(loss), name: "train")
        XCTAssertEqual(apply.name, "train")
        XCTAssertEqual(Set(apply.controlInputs.map(\.name)), ["train/update_w/AssignSub", "train/Assign", "train/Assign_1"])
        XCTAssertEqual(adam.slot(w, "m")?.name, "w/Adam")
        XCTAssertEqual(try adam.applyGradients(try adam.computeGradients(loss)).name, "Adam")
    }

    func testRegularizerOpsAreNamedForTheirScopeOnce() throws {
        let g = Graph()
        _ = try g.variableScope("fc", regularizer: .l2(0.1)) { try g.getVariable("w", shape: [2, 2]) }
        _ = try g.getVariable("v", shape: [3], regularizer: .l1(0.5))
        let l2 = g.regularizationLosses[0].op, l1 = g.regularizationLosses[1].op
        XCTAssertEqual(l2.name, "fc/w/Regularizer/l2_regularizer")
        XCTAssertEqual(l2.inputs.map(\.op.name), ["fc/w/Regularizer/l2_regularizer/scale", "fc/w/Regularizer/l2_regularizer/L2Loss"])
        XCTAssertEqual(l1.name, "v/Regularizer/l1_regularizer")
        XCTAssertEqual(l1.inputs[0].op.name, "v/Regularizer/l1_regularizer/scale")
        // A second penalty in the same scope gets the next unique name, as TensorFlow's name_scope gives.
        let again = try g.nameScope("fc/w/Regularizer/") { try Regularizer.l2(0.1).make(g, g.constant(1 as Float)) }
        XCTAssertEqual(again.op.name, "fc/w/Regularizer/l2_regularizer_1")
    }

    func testANameEndingInASlashIsTheExactName() throws {
        let g = Graph()
        let x = try g.nameScope("outer") { try g.constant(1 as Float, name: g.currentNameScope + "/") }
        XCTAssertEqual(x.op.name, "outer")
        XCTAssertThrowsError(try g.constant(2 as Float, name: "outer/"))
    }

    func testLeakyReluIsALayerActivationWithTensorFlowsDefaultSlope() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let y = try g.argScope(LayerDefaults(activation: .leakyRelu)) { try g.fullyConnected(x, 2) }
        XCTAssertEqual(y.op.type, "LeakyRelu")
        XCTAssertEqual(y.op.attrs["alpha"], .float(0.2))
        let z = try g.fullyConnected(x, 2, activation: .leakyRelu(alpha: 0.1))
        XCTAssertEqual(z.op.attrs["alpha"], .float(0.1))
    }
}
