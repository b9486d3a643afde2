import XCTest
import Foundation
import Kiln

/// Variables in a session: initial values, every initializer's distribution, the initializer
/// ops, initialized_value() and report_uninitialized_variables.
final class VariablesRuntimeTests: XCTestCase {
    struct Stats { let mean, std, min, max: Double }
    func stats(_ t: Tensor) throws -> Stats {
        // Plain loops over [Float]: Tensor.doubles is slow in debug builds.
        let v = try t.scalars(as: Float.self)
        var sum = 0.0, sq = 0.0, lo = Double.infinity, hi = -Double.infinity
        for f in v {
            let x = Double(f)
            sum += x
            sq += x * x
            lo = Swift.min(lo, x)
            hi = Swift.max(hi, x)
        }
        let mean = sum / Double(v.count)
        return Stats(mean: mean, std: (sq / Double(v.count) - mean * mean).squareRoot(), min: lo, max: hi)
    }

    func testConstantInitializersGiveExactValues() throws {
        let g = Graph()
        let z = try g.getVariable("z", shape: [2, 3], initializer: .zeros)
        let o = try g.getVariable("o", shape: [4], dtype: .float64, initializer: .ones)
        let c = try g.getVariable("c", shape: [2, 2], initializer: .constant(2.5))
        let t = try g.getVariable("t", shape: [2, 2], initializer: .constant(Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Double])))
        let i = try g.getVariable("i", shape: [3], dtype: .int32)
        let v = try g.variable([[1, 2], [3, 4]] as [[Float]], name: "v")
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        XCTAssertEqual(try sess.run(z).scalars(as: Float.self), Array(repeating: 0, count: 6))
        XCTAssertEqual(try sess.run(o).scalars(as: Double.self), [1, 1, 1, 1])
        XCTAssertEqual(try sess.run(c).scalars(as: Float.self), [2.5, 2.5, 2.5, 2.5])
        XCTAssertEqual(try sess.run(t).scalars(as: Float.self), [1, 2, 3, 4], "the constant is converted to the variable's dtype")
        XCTAssertEqual(try sess.run(i).scalars(as: Int32.self), [0, 0, 0], "integer variables default to zeros")
        XCTAssertEqual(try sess.run(v).shape, [2, 2])
        XCTAssertEqual(try sess.run(v).scalars(as: Float.self), [1, 2, 3, 4])
    }

    func testConstantInitializerOfTheWrongShapeIsAnError() {
        let g = Graph()
        XCTAssertThrowsError(try g.getVariable("w", shape: [3], initializer: .constant(Tensor(shape: [2], scalars: [1, 2] as [Float]))))
    }

    /// 60,000 draws per variable: sample moments within a few standard errors.
    func testRandomInitializersHaveTheRequestedMomentsAndBounds() throws {
        let g = Graph()
        g.seed = 5
        let shape = [200, 300]
        let normal = try g.getVariable("normal", shape: shape, initializer: .randomNormal(mean: 1, stddev: 2))
        let truncated = try g.getVariable("truncated", shape: shape, initializer: .truncatedNormal(mean: -1, stddev: 0.5))
        let uniform = try g.getVariable("uniform", shape: shape, initializer: .randomUniform(minval: -2, maxval: 3))
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let fetched = try sess.run([normal.value, truncated.value, uniform.value])
        let n = try stats(fetched[0])
        XCTAssertEqual(n.mean, 1, accuracy: 0.05)
        XCTAssertEqual(n.std, 2, accuracy: 0.03)
        let t = try stats(fetched[1])
        XCTAssertGreaterThanOrEqual(t.min, -2)
        XCTAssertLessThanOrEqual(t.max, 0)
        XCTAssertEqual(t.mean, -1, accuracy: 0.01)
        XCTAssertEqual(t.std, 0.5 * 0.8796, accuracy: 0.006)
        let u = try stats(fetched[2])
        XCTAssertGreaterThanOrEqual(u.min, -2)
        XCTAssertLessThan(u.max, 3)
        XCTAssertEqual(u.mean, 0.5, accuracy: 0.03)
        XCTAssertEqual(u.std, 5 / 12.0.squareRoot(), accuracy: 0.02)
    }

    /// Glorot/Xavier and variance scaling on a conv kernel [5, 5, 40, 60]: fan_in = 5·5·40 = 1000,
    /// fan_out = 5·5·60 = 1500, as TensorFlow counts the receptive field.
    func testGlorotXavierAndVarianceScalingFollowTensorFlowsFans() throws {
        let g = Graph()
        g.seed = 9
        let shape = [5, 5, 40, 60]
        let (fanIn, fanOut) = (1000.0, 1500.0)
        let gu = try g.getVariable("glorot_uniform", shape: shape, initializer: .glorotUniform())
        let gn = try g.getVariable("glorot_normal", shape: shape, initializer: .glorotNormal())
        let xu = try g.getVariable("xavier_uniform", shape: shape, initializer: .xavier())
        let xn = try g.getVariable("xavier_normal", shape: shape, initializer: .xavier(uniform: false))
        let fanInTrunc = try g.getVariable("vs_fan_in", shape: shape, initializer: .varianceScaling(scale: 2, mode: .fanIn))
        let fanOutUniform = try g.getVariable("vs_fan_out", shape: shape, initializer: .varianceScaling(scale: 3, mode: .fanOut, distribution: .uniform))
        let fanAvgNormal = try g.getVariable("vs_fan_avg", shape: shape, initializer: .varianceScaling(scale: 0.5, mode: .fanAvg, distribution: .untruncatedNormal))
        let he = try g.getVariable("he", shape: shape, initializer: .heNormal())
        let defaultInit = try g.getVariable("default", shape: shape)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        // Read the values straight from the session: fetching 4-D tensors with small outer
        // dimensions costs about 0.5 s of JIT per tensor today (see the report on issue 4).
        func values(_ v: Variable) throws -> Tensor { try XCTUnwrap(sess.value(of: v), v.name) }

        let limit = (6 / (fanIn + fanOut)).squareRoot()
        for v in [gu, xu, defaultInit] {
            let s = try stats(try values(v))
            XCTAssertGreaterThanOrEqual(s.min, -limit, v.name)
            XCTAssertLessThanOrEqual(s.max, limit, v.name)
            XCTAssertGreaterThan(s.max, 0.99 * limit, "\(v.name) uses the whole range")
            XCTAssertEqual(s.std, limit / 3.0.squareRoot(), accuracy: 0.01 * limit, v.name)
            XCTAssertEqual(s.mean, 0, accuracy: 0.01 * limit, v.name)
        }
        // Truncated normals: the spread is the target, the bound two raw standard deviations.
        for (v, variance) in [(gn, 2 / (fanIn + fanOut)), (xn, 2 / (fanIn + fanOut)), (fanInTrunc, 2 / fanIn), (he, 2 / fanIn)] {
            let s = try stats(try values(v))
            let target = variance.squareRoot()
            XCTAssertEqual(s.std, target, accuracy: 0.015 * target, v.name)
            XCTAssertLessThanOrEqual(Swift.max(-s.min, s.max), 2 * target / 0.87962566103423978 * 1.0001, v.name)
        }
        let fo = try stats(try values(fanOutUniform))
        let foLimit = (3 * 3 / fanOut).squareRoot()
        XCTAssertGreaterThanOrEqual(fo.min, -foLimit)
        XCTAssertLessThanOrEqual(fo.max, foLimit)
        XCTAssertGreaterThan(fo.max, 0.99 * foLimit)
        let fa = try stats(try values(fanAvgNormal))
        let faStd = (0.5 / ((fanIn + fanOut) / 2)).squareRoot()
        XCTAssertEqual(fa.std, faStd, accuracy: 0.015 * faStd)
        XCTAssertGreaterThan(Swift.max(-fa.min, fa.max), 3 * faStd, "untruncated: 60,000 draws reach past three sigmas")
    }

    func testSeededInitializersGiveTheSameValuesInEverySession() throws {
        func values() throws -> [Float] {
            let g = Graph()
            g.seed = 3
            let v = try g.getVariable("w", shape: [10], initializer: .glorotUniform())
            let sess = try Session(graph: g)
            try sess.run(g.globalVariablesInitializer())
            return try sess.run(v).scalars(as: Float.self)
        }
        XCTAssertEqual(try values(), try values())
    }

    func testInitializerOpsInitializeExactlyTheirVariables() throws {
        let g = Graph()
        let a = try g.variable([1] as [Float], name: "a")
        let b = try g.variable([2] as [Float], name: "b", trainable: false)
        let c = try g.getVariable("c", shape: [1], initializer: .ones)
        let sess = try Session(graph: g)
        try sess.run(g.variablesInitializer([a]))
        XCTAssertTrue(sess.isInitialized(a))
        XCTAssertFalse(sess.isInitialized(b))
        XCTAssertFalse(sess.isInitialized(c))
        try sess.run(g.globalVariablesInitializer())
        XCTAssertTrue(sess.isInitialized(b) && sess.isInitialized(c), "non-trainable variables are global and initialized too")
        let other = try Session(graph: g)
        try other.run(g.initializeAllVariables())
        XCTAssertEqual(try other.run(b).scalars(as: Float.self), [2])
    }

    func testReportUninitializedVariablesNamesThoseNotYetInitialized() throws {
        let g = Graph()
        let a = try g.variable([1] as [Float], name: "a")
        _ = try g.variableScope("scope") { try g.getVariable("b", shape: [2]) }
        let report = try g.reportUninitializedVariables()
        let sess = try Session(graph: g)
        func names() throws -> [String] {
            let t = try sess.run(report)
            XCTAssertEqual(t.dtype, .string)
            XCTAssertEqual(t.rank, 1)
            return t.strings.map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(try names(), ["a", "scope/b"])
        try sess.run(a.initializer)
        XCTAssertEqual(try names(), ["scope/b"])
        try sess.run(g.globalVariablesInitializer())
        XCTAssertEqual(try names(), [])
        XCTAssertEqual(try sess.run(report).shape, [0])
    }

    func testInitializedValueLetsOneVariableStartFromAnother() throws {
        let g = Graph()
        let v = try g.getVariable("v", shape: [3], initializer: .randomUniform(minval: 1, maxval: 2, seed: 1))
        // TensorFlow's pattern: w = Variable(v.initialized_value() * 2), whatever the init order.
        let w = try g.variable(g.multiply(v.initializedValue(), g.constant(2 as Float)), name: "w")
        let sess = try Session(graph: g)
        try sess.run(g.variablesInitializer([w, v]))
        let (vv, wv) = (try sess.run(v).scalars(as: Float.self), try sess.run(w).scalars(as: Float.self))
        XCTAssertEqual(wv, vv.map { $0 * 2 })
    }

    /// TensorFlow's initialized_value() is cond(is_variable_initialized(v), v.read_value, initial_value):
    /// reading it must not reset a variable that already holds a value.
    func testInitializedValueOfAnInitializedVariableIsItsCurrentValue() throws {
        let g = Graph()
        let v = try g.variable([1, 2] as [Float], name: "v")
        let initialized = try v.initializedValue()
        let set = try g.assign(v, g.constant([5, 6] as [Float]))
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        _ = try sess.run(set)
        XCTAssertEqual(try sess.run(initialized).scalars(as: Float.self), [5, 6])
        XCTAssertEqual(try sess.run(v).scalars(as: Float.self), [5, 6], "evaluating initialized_value() must not reset v")
    }

    /// Before the variable has a value, initialized_value() is the initial value, and reading it
    /// does not initialise the variable.
    func testInitializedValueOfAnUninitializedVariableIsItsInitialValueAndAssignsNothing() throws {
        let g = Graph()
        let v = try g.variable([1, 2] as [Float], name: "v")
        let initialized = try v.initializedValue()
        let sess = try Session(graph: g)
        XCTAssertEqual(try sess.run(initialized).scalars(as: Float.self), [1, 2])
        XCTAssertFalse(sess.isInitialized(v))
        try sess.run(v.initializer)
        _ = try sess.run(g.assign(v, g.constant([7, 8] as [Float])))
        XCTAssertEqual(try sess.run(initialized).scalars(as: Float.self), [7, 8])
    }

    /// TensorFlow has no op for initialized_value(): a GraphDef carries it as an Identity of the
    /// initial value (what TensorFlow computes before the variable is set), and Kiln's import
    /// turns it back into the op that answers the variable's current value.
    func testInitializedValueTravelsThroughAGraphDefAsAnIdentityTensorFlowCanLoad() throws {
        let g = Graph()
        let v = try g.variable([1, 2] as [Float], name: "v")
        _ = try v.initializedValue()
        let node = try XCTUnwrap(g.graphDef().node.first { $0.name == "v/initialized_value" })
        XCTAssertEqual(node.op, "Identity")
        XCTAssertEqual(node.attr["_kiln_initialized_value"]?.s, Data("v".utf8))
        XCTAssertNil(node.attr["variable"])

        let h = Graph()
        try h.importGraphDef(g.graphDef(), prefix: "imp")
        let op = try XCTUnwrap(h.operation(named: "imp/v/initialized_value"))
        XCTAssertEqual(op.type, "KilnInitializedValue")
        XCTAssertEqual(op.attrs["variable"]?.string, "imp/v")
        let sess = try Session(graph: h)
        XCTAssertEqual(try sess.run(op.output()).scalars(as: Float.self), [1, 2])
        try sess.run(XCTUnwrap(h.operation(named: "imp/v/Assign")))
        try sess.setValue(Tensor(shape: [2], scalars: [3, 4] as [Float]), of: XCTUnwrap(h.operation(named: "imp/v")))
        XCTAssertEqual(try sess.run(op.output()).scalars(as: Float.self), [3, 4])
    }
}
