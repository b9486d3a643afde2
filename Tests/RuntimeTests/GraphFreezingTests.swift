import XCTest
import KilnTestSupport
import Kiln

final class GraphFreezingTests: XCTestCase {
    /// A convolution with inference batch norm and a dense layer, every variable set to values
    /// that make each op matter (a batch norm with mean 0 and variance 1 would hide a wrong fold).
    private func trainedCNN() throws -> (Graph, Session, Output, Output) {
        let g = Graph()
        let images = try g.placeholder(.float32, shape: [nil, 6, 6, 2], name: "images")
        let bn = Normalizer.batchNorm(decay: 0.9, isTraining: false)
        let logits = try g.argScope(LayerDefaults(activation: .relu, padding: "SAME")) { () throws -> Output in
            let h = try g.convolution2d(images, 4, kernelSize: [3], normalizer: bn, scope: "conv1")
            return try g.fullyConnected(g.flatten(h), 3, activation: .identity, scope: "logits")
        }
        let s = try Session(graph: g)
        try s.run(g.globalVariablesInitializer())
        var k = 0
        for v in g.globalVariables {
            let shape = try XCTUnwrap(v.shape.concrete)
            let n = shape.reduce(1, *)
            // Positive where the variable is a variance, varied everywhere else.
            let values = (0..<n).map { i -> Float in
                k += 1
                let x = Float((i * 7 + k) % 11) / 11 - 0.4
                return v.name.hasSuffix("moving_variance") ? 0.5 + abs(x) : x
            }
            try s.run(g.assign(v, g.constant(Tensor(shape: shape, scalars: values))).op)
        }
        return (g, s, images, logits)
    }

    private func input(_ batch: Int) throws -> Tensor {
        try Tensor(shape: [batch, 6, 6, 2], scalars: (0..<(batch * 72)).map { Float(($0 * 13) % 17) / 17 - 0.5 })
    }

    func testFrozenGraphComputesWhatTheSessionDoesWithoutVariables() throws {
        let (g, s, images, logits) = try trainedCNN()
        let x = try input(5)
        let want = try s.run(logits, feeds: [images: x]).scalars(as: Float.self)

        let frozen = try GraphUtil.convertVariablesToConstants(s, g.graphDef(), outputNodeNames: [logits.op.name])
        XCTAssertFalse(frozen.node.contains { GraphUtil.variableOps.contains($0.op) })
        XCTAssertFalse(frozen.node.contains { $0.op == "Assign" }, "initialisers are not needed by the outputs")
        let mean = try XCTUnwrap(frozen.node.first { $0.name == "conv1/BatchNorm/moving_mean" })
        XCTAssertEqual(mean.op, "Const")

        let f = Graph()
        try f.importGraphDef(frozen, prefix: "")
        XCTAssertTrue(f.globalVariables.isEmpty)
        let fs = try Session(graph: f)
        let got = try fs.run(XCTUnwrap(f.operation(named: logits.op.name)).output(),
                             feeds: [XCTUnwrap(f.operation(named: images.op.name)).output(): x]).scalars(as: Float.self)
        XCTAssertEqual(want.count, got.count)
        // Batch norm folded into the weights rounds differently: float32 tolerance.
        for (a, b) in zip(want, got) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(a))) }
    }

    func testWhitelistAndBlacklistChooseTheVariablesConverted() throws {
        let (g, s, _, logits) = try trainedCNN()
        let only = try GraphUtil.convertVariablesToConstants(s, g.graphDef(), outputNodeNames: [logits.op.name],
                                                            variableNamesWhitelist: ["logits/weights"])
        XCTAssertEqual(only.node.filter { $0.op == "Const" && $0.name.hasSuffix("weights") }.map(\.name), ["logits/weights"])
        let but = try GraphUtil.convertVariablesToConstants(s, g.graphDef(), outputNodeNames: [logits.op.name],
                                                           variableNamesBlacklist: ["logits/weights"])
        XCTAssertEqual(but.node.filter { $0.op == "VariableV2" }.map(\.name), ["logits/weights"])
    }

    func testResourceVariableReadsBecomeIdentities() throws {
        let g = Graph()
        let handle = try g.addOperation("VarHandleOp", name: "v", attrs: ["dtype": .type(.float32), "shape": .shape(Shape([2])),
                                                                           "shared_name": .string("v")]).output()
        let assign = try g.addOperation("AssignVariableOp", name: "v/Assign", inputs: [handle, try g.constant([3, -4] as [Float])],
                                        attrs: ["dtype": .type(.float32)])
        let read = try g.addOperation("ReadVariableOp", name: "read", inputs: [handle], attrs: ["dtype": .type(.float32)]).output()
        let y = try g.multiply(read, g.constant([2, 2] as [Float]), name: "y")
        let s = try Session(graph: g)
        try s.run(assign)
        let frozen = try GraphUtil.convertVariablesToConstants(s, g.graphDef(), outputNodeNames: ["y"])
        XCTAssertEqual(frozen.node.first { $0.name == "v" }?.op, "Const")
        XCTAssertEqual(frozen.node.first { $0.name == "read" }?.op, "Identity")
        let f = Graph()
        try f.importGraphDef(frozen, prefix: "")
        XCTAssertEqual(try Session(graph: f).run(XCTUnwrap(f.operation(named: "y")).output()).scalars(as: Float.self), [6, -8])
        _ = y
    }

    func testMissingOutputsAndUninitialisedVariablesAreClearErrors() throws {
        let (g, s, _, logits) = try trainedCNN()
        assertKilnError(.invalidArgument, contains: ["'nope' is not in graph"]) {
            _ = try GraphUtil.convertVariablesToConstants(s, g.graphDef(), outputNodeNames: ["nope"])
        }
        assertKilnError(.invalidArgument, contains: ["without an output index"]) {
            _ = try GraphUtil.convertVariablesToConstants(s, g.graphDef(), outputNodeNames: [logits.name])
        }
        let fresh = try Session(graph: g)
        assertKilnError(.failedPrecondition, contains: ["uninitialized"]) {
            _ = try GraphUtil.convertVariablesToConstants(fresh, g.graphDef(), outputNodeNames: [logits.op.name])
        }
        let other = Graph()
        assertKilnError(.notFound, contains: ["not in the session's graph"]) {
            _ = try GraphUtil.convertVariablesToConstants(try Session(graph: other), g.graphDef(), outputNodeNames: [logits.op.name])
        }
    }
}
