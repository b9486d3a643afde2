import XCTest
import KilnIR
@testable import KilnFrontend

/// What layers and optimizers add to the graph: variable names and shapes, collections, slot
/// names, and arg_scope defaults, as TensorFlow 1 (slim, tf.layers, tf.train) makes them.
final class LayerAndOptimizerGraphTests: XCTestCase {
    func message(_ body: () throws -> Any) -> String {
        do { _ = try body() } catch { return (error as? KilnError)?.message ?? "\(error)" }
        return "(no error)"
    }

    /// Op types on the path from `x` to `y` (inclusive of y), to see what a layer built.
    func opTypes(from x: Output, to y: Output) -> Set<String> {
        var seen = Set<KilnFrontend.Operation>(), types = Set<String>(), stack = [y.op]
        while let op = stack.popLast() {
            guard seen.insert(op).inserted, op != x.op else { continue }
            types.insert(op.type)
            stack += op.inputs.map(\.op)
        }
        return types
    }

    // MARK: layers

    func testFullyConnectedVariablesAreNamedAndShapedAsSlimMakesThem() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 5], name: "x")
        let h = try g.fullyConnected(x, 7)
        let y = try g.fullyConnected(h, 3)
        let z = try g.fullyConnected(y, 2, scope: "logits")
        XCTAssertEqual(g.globalVariables.map(\.name), ["fully_connected/weights", "fully_connected/biases",
                                                       "fully_connected_1/weights", "fully_connected_1/biases",
                                                       "logits/weights", "logits/biases"])
        XCTAssertEqual(g.globalVariables.map(\.shape), [Shape([5, 7]), Shape([7]), Shape([7, 3]), Shape([3]), Shape([3, 2]), Shape([2])])
        XCTAssertEqual(g.trainableVariables.count, 6)
        XCTAssertEqual(g.modelVariables.count, 6, "slim puts layer variables in MODEL_VARIABLES")
        XCTAssertEqual(h.shape, Shape(dims: [nil, 7]))
        XCTAssertEqual(h.op.type, "Relu", "slim's default activation is relu")
        XCTAssertEqual(z.op.name, "logits/Relu")
    }

    func testDenseVariablesAreKernelAndBiasAndTheDefaultIsLinear() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 4], name: "x")
        let a = try g.dense(x, units: 6)
        _ = try g.dense(a, units: 2, activation: .sigmoid)
        _ = try g.dense(a, units: 2, useBias: false, name: "head")
        XCTAssertEqual(g.globalVariables.map(\.name), ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias", "head/kernel"])
        XCTAssertEqual(g.globalVariables[0].shape, Shape([4, 6]))
        XCTAssertEqual(a.op.type, "BiasAdd", "tf.layers.dense has no activation by default")
    }

    func testConvolution2dVariablesAndOutputShape() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 8, 8, 3], name: "x")
        let c1 = try g.convolution2d(x, 16, kernelSize: [3])
        let c2 = try g.convolution2d(c1, 4, kernelSize: [5, 3], stride: 2, padding: "VALID")
        XCTAssertEqual(g.globalVariables.map(\.name), ["Conv/weights", "Conv/biases", "Conv_1/weights", "Conv_1/biases"])
        XCTAssertEqual(g.globalVariables[0].shape, Shape([3, 3, 3, 16]))
        XCTAssertEqual(g.globalVariables[2].shape, Shape([5, 3, 16, 4]))
        XCTAssertEqual(c1.shape, Shape(dims: [nil, 8, 8, 16]), "SAME by default")
        XCTAssertEqual(c2.shape, Shape(dims: [nil, 2, 3, 4]))
        let flat = try g.flatten(c2)
        XCTAssertEqual(flat.shape, Shape(dims: [nil, 24]))
        XCTAssertEqual(flat.op.name, "Flatten/Reshape")
        XCTAssertEqual(try g.maxPool2d(c1, kernelSize: [2]).shape, Shape(dims: [nil, 4, 4, 16]))
        XCTAssertEqual(try g.avgPool2d(c1, kernelSize: [3], stride: 1, padding: "SAME").shape, Shape(dims: [nil, 8, 8, 16]))
    }

    func testAModelBuiltTwiceInAReusedScopeSharesEveryVariable() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        func model(_ reuse: Reuse?) throws -> Output {
            try g.variableScope("model", reuse: reuse) { try g.fullyConnected(g.fullyConnected(x, 4), 2) }
        }
        _ = try model(nil)
        _ = try model(.yes)
        XCTAssertEqual(g.globalVariables.map(\.name), ["model/fully_connected/weights", "model/fully_connected/biases",
                                                       "model/fully_connected_1/weights", "model/fully_connected_1/biases"])
        XCTAssertTrue(message { try model(nil) }.contains("already exists"))
    }

    func testArgScopeSetsDefaultsThatExplicitArgumentsOverride() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let defaults = LayerDefaults(activation: .tanh, weightsInitializer: .ones, weightsRegularizer: .l2(0.5))
        let (a, b) = try g.argScope(defaults) {
            (try g.fullyConnected(x, 2), try g.fullyConnected(x, 2, activation: .sigmoid, weightsInitializer: .zeros))
        }
        XCTAssertEqual(a.op.type, "Tanh")
        XCTAssertEqual(b.op.type, "Sigmoid")
        let wa = try XCTUnwrap(g.sharedVariables["fully_connected/weights"]), wb = try XCTUnwrap(g.sharedVariables["fully_connected_1/weights"])
        XCTAssertEqual(wa.initialValue.op.name, "fully_connected/weights/Initializer/ones")
        XCTAssertEqual(wb.initialValue.op.name, "fully_connected_1/weights/Initializer/zeros")
        XCTAssertEqual(g.regularizationLosses.count, 2, "the arg_scope regularizer applies to both layers")
        // Outside the arg_scope the layer's own defaults are back.
        let c = try g.fullyConnected(x, 2)
        XCTAssertEqual(c.op.type, "Relu")
        XCTAssertEqual(g.regularizationLosses.count, 2)
    }

    func testNestedArgScopesOverrideFieldByField() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 4, 4, 2], name: "x")
        let y = try g.argScope(LayerDefaults(activation: .relu6, padding: "VALID")) {
            try g.argScope(LayerDefaults(activation: .elu)) { try g.convolution2d(x, 3, kernelSize: [3]) }
        }
        XCTAssertEqual(y.op.type, "Elu", "the inner scope's activation wins")
        XCTAssertEqual(y.shape, Shape(dims: [nil, 2, 2, 3]), "the outer scope's padding falls through")
    }

    func testArgScopeNormalizerReplacesTheBiasWithBatchNorm() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 4, 4, 2], name: "x")
        let y = try g.argScope(LayerDefaults(normalizer: .batchNorm(scale: true))) { try g.convolution2d(x, 3, kernelSize: [3]) }
        XCTAssertEqual(g.globalVariables.map(\.name), ["Conv/weights", "Conv/BatchNorm/beta", "Conv/BatchNorm/gamma",
                                                       "Conv/BatchNorm/moving_mean", "Conv/BatchNorm/moving_variance"])
        XCTAssertEqual(y.op.type, "Relu", "normalizer first, then the activation")
        XCTAssertFalse(opTypes(from: x, to: y).contains("BiasAdd"))
        XCTAssertEqual(g.updateOps.count, 2)
    }

    func testBatchNormVariablesCollectionsAndUpdateOps() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 5], name: "x")
        _ = try g.batchNorm(x)
        _ = try g.batchNorm(x, scale: true)
        XCTAssertEqual(g.globalVariables.map(\.name), ["BatchNorm/beta", "BatchNorm/moving_mean", "BatchNorm/moving_variance",
                                                       "BatchNorm_1/beta", "BatchNorm_1/gamma", "BatchNorm_1/moving_mean", "BatchNorm_1/moving_variance"])
        XCTAssertEqual(g.trainableVariables.map(\.name), ["BatchNorm/beta", "BatchNorm_1/beta", "BatchNorm_1/gamma"])
        XCTAssertTrue(g.globalVariables.allSatisfy { $0.shape == Shape([5]) })
        XCTAssertEqual(g.updateOps.count, 4)
        XCTAssertTrue(g.updateOps.allSatisfy { $0.type == "AssignSub" })
        // Inference builds no updates.
        _ = try g.batchNorm(x, isTraining: false, scope: "BatchNorm", reuse: .yes)
        XCTAssertEqual(g.updateOps.count, 4)
    }

    func testDropoutAtInferenceIsIdentityAndNeedsNoRandomOp() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let y = try g.dropout(x, keepProb: 0.5, isTraining: false)
        XCTAssertEqual(y.op.type, "Identity")
        let t = try g.dropout(x, keepProb: 0.5)
        XCTAssertTrue(opTypes(from: x, to: t).contains("RandomUniform"))
        let known = try g.placeholder(.float32, shape: [4, 3], name: "known")
        XCTAssertEqual(try g.dropout(known, keepProb: 0.5).shape, Shape([4, 3]))
    }

    /// slim.dropout on a [None, n] activation, then fully_connected: TensorFlow keeps the
    /// static shape [?, n] through dropout.
    func testDropoutKeepsTheStaticShapeWithAnUnknownBatch() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let t = try g.dropout(x, keepProb: 0.5)
        XCTAssertEqual(t.shape, x.shape)
        let training = try g.placeholderWithDefault(g.constant(false), shape: Shape([]), name: "is_training")
        XCTAssertEqual(try g.dropout(x, keepProb: 0.5, isTraining: training).shape, x.shape)
        XCTAssertNoThrow(try g.fullyConnected(t, 2))
    }

    // MARK: optimizers

    func testSlotVariablesAreNamedAsTensorFlowNamesThem() throws {
        func slots(_ make: (Graph) -> Optimizer, _ names: [String]) throws -> [String?] {
            let g = Graph()
            let w = try g.variable([1, 2] as [Float], name: "w")
            let opt = make(g)
            _ = try opt.minimize(g.reduceSum(g.square(w)))
            return names.map { opt.slot(w, $0)?.name }
        }
        XCTAssertEqual(try slots({ MomentumOptimizer($0, learningRate: 0.1, momentum: 0.9) }, ["momentum"]), ["w/Momentum"])
        XCTAssertEqual(try slots({ AdagradOptimizer($0, learningRate: 0.1) }, ["accumulator"]), ["w/Adagrad"])
        XCTAssertEqual(try slots({ RMSPropOptimizer($0, learningRate: 0.1) }, ["rms", "momentum"]), ["w/RMSProp", "w/RMSProp_1"])
        // TensorFlow creates rms, then mg (centered), then momentum, each made unique in turn.
        XCTAssertEqual(try slots({ RMSPropOptimizer($0, learningRate: 0.1, centered: true) }, ["rms", "mg", "momentum"]),
                       ["w/RMSProp", "w/RMSProp_1", "w/RMSProp_2"])
        XCTAssertEqual(try slots({ FtrlOptimizer($0, learningRate: 0.1) }, ["accum", "linear"]), ["w/Ftrl", "w/Ftrl_1"])
        XCTAssertEqual(try slots({ AdadeltaOptimizer($0) }, ["accum", "accum_update"]), ["w/Adadelta", "w/Adadelta_1"])
        XCTAssertEqual(try slots({ AdamOptimizer($0) }, ["m", "v"]), ["w/Adam", "w/Adam_1"])
        XCTAssertEqual(try slots({ ProximalAdagradOptimizer($0, learningRate: 0.1) }, ["accumulator"]), ["w/ProximalAdagrad"])
        XCTAssertEqual(try slots({ g in AdagradDAOptimizer(g, learningRate: 0.1, globalStep: try! g.globalStep()) },
                                 ["gradient_accumulator", "gradient_squared_accumulator"]), ["w/AdagradDA", "w/AdagradDA_1"])
    }

    func testSlotsAreGlobalNonTrainableAndFollowTheVariablesScope() throws {
        let g = Graph()
        let w = try g.variableScope("conv1") { try g.getVariable("weights", shape: [2]) }
        let b = try g.variable([0] as [Float], name: "b")
        let loss = try g.add(g.reduceSum(g.square(w)), g.reduceSum(b))
        let m1 = MomentumOptimizer(g, learningRate: 0.1, momentum: 0.9)
        _ = try m1.minimize(loss)
        let m2 = MomentumOptimizer(g, learningRate: 0.1, momentum: 0.5)
        _ = try m2.minimize(loss)
        XCTAssertEqual(m1.slot(w, "momentum")?.name, "conv1/weights/Momentum")
        XCTAssertEqual(m1.slot(b, "momentum")?.name, "b/Momentum")
        XCTAssertEqual(m2.slot(w, "momentum")?.name, "conv1/weights/Momentum_1", "a second optimizer's slot is made unique")
        XCTAssertEqual(m1.slotNames(w), ["momentum"])
        let slot = try XCTUnwrap(m1.slot(w, "momentum"))
        XCTAssertTrue(g.globalVariables.contains(slot))
        XCTAssertFalse(g.trainableVariables.contains(slot))
        XCTAssertEqual(slot.shape, w.shape)
        XCTAssertEqual(g.trainableVariables.map(\.name), ["conv1/weights", "b"], "optimizers add no trainable variables")
    }

    func testComputeGradientsGivesNilForVariablesTheLossDoesNotUse() throws {
        let g = Graph()
        let used = try g.variable([1, 2] as [Float], name: "used")
        let unused = try g.variable([3] as [Float], name: "unused")
        let opt = GradientDescentOptimizer(g, learningRate: 0.1)
        let pairs = try opt.computeGradients(g.reduceSum(g.square(used)))
        XCTAssertEqual(pairs.map(\.variable), [used, unused])
        XCTAssertNotNil(pairs[0].gradient)
        XCTAssertNil(pairs[1].gradient)
        XCTAssertEqual(pairs[0].gradient?.shape, used.shape)
        // Only the variables asked for.
        XCTAssertEqual(try opt.computeGradients(g.reduceSum(used), varList: [used]).map(\.variable), [used])
    }

    func testALossThatDependsOnNoTrainableVariableIsAClearError() throws {
        let g = Graph()
        let w = try g.variable([1, 2] as [Float], name: "w")
        let frozen = try g.variable([1] as [Float], name: "frozen", trainable: false)
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let loss = try g.add(g.reduceSum(g.square(x)), g.reduceSum(frozen))
        let m = message { try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss) }
        XCTAssertTrue(m.hasPrefix("No gradients provided for any variable"), m)
        XCTAssertTrue(m.contains("w:0"), m)
        _ = w
        let empty = Graph()
        let c = try empty.constant(1 as Float)
        XCTAssertEqual(message { try GradientDescentOptimizer(empty, learningRate: 0.1).minimize(c) }, "No variables to optimize.")
    }

    func testApplyGradientsWithAWrongDTypeOrShapeNamesTheVariable() throws {
        let g = Graph()
        let w = try g.variableScope("layer") { try g.getVariable("w", shape: [2]) }
        let opt = GradientDescentOptimizer(g, learningRate: 0.1)
        let wrongType = try g.constant([1, 2] as [Double])
        let m = message { try opt.applyGradients([(gradient: wrongType, variable: w)]) }
        XCTAssertTrue(m.contains("layer/w") && m.contains("float64") && m.contains("float32"), m)
        let wrongShape = try g.constant([1, 2, 3] as [Float])
        let s = message { try opt.applyGradients([(gradient: wrongShape, variable: w)]) }
        XCTAssertTrue(s.contains("layer/w") && s.contains("[3]") && s.contains("[2]"), s)
    }
}
