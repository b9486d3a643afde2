import XCTest
import Foundation
import Kiln
@testable import KilnRuntime

/// Optimizer trajectories, moving averages and learning-rate schedules against TensorFlow's.
final class GoldenTrainingTests: XCTestCase {
    func optimizer(_ c: [String: Any], _ g: Graph, _ step: Variable) -> Optimizer {
        let h = c["hyperparameters"] as! [String: Any]
        func d(_ k: String, _ def: Double = 0) -> Double { (h[k] as? NSNumber)?.doubleValue ?? def }
        let lr = LearningRate.constant(d("learning_rate"))
        switch c["tf_class"] as! String {
        case "GradientDescentOptimizer": return GradientDescentOptimizer(g, learningRate: lr)
        case "MomentumOptimizer": return MomentumOptimizer(g, learningRate: lr, momentum: d("momentum"), useNesterov: (h["use_nesterov"] as? Bool) ?? false)
        case "AdagradOptimizer": return AdagradOptimizer(g, learningRate: lr, initialAccumulatorValue: d("initial_accumulator_value", 0.1))
        case "AdagradDAOptimizer":
            return AdagradDAOptimizer(g, learningRate: lr, globalStep: step, initialGradientSquaredAccumulatorValue: d("initial_gradient_squared_accumulator_value", 0.1),
                                      l1RegularizationStrength: d("l1_regularization_strength"), l2RegularizationStrength: d("l2_regularization_strength"))
        case "AdamOptimizer": return AdamOptimizer(g, learningRate: lr, beta1: d("beta1"), beta2: d("beta2"), epsilon: d("epsilon"))
        case "RMSPropOptimizer":
            return RMSPropOptimizer(g, learningRate: lr, decay: d("decay"), momentum: d("momentum"), epsilon: d("epsilon"), centered: (h["centered"] as? Bool) ?? false)
        case "FtrlOptimizer":
            return FtrlOptimizer(g, learningRate: lr, learningRatePower: d("learning_rate_power", -0.5), initialAccumulatorValue: d("initial_accumulator_value", 0.1),
                                 l1RegularizationStrength: d("l1_regularization_strength"), l2RegularizationStrength: d("l2_regularization_strength"))
        case "AdadeltaOptimizer": return AdadeltaOptimizer(g, learningRate: lr, rho: d("rho"), epsilon: d("epsilon"))
        case "ProximalGradientDescentOptimizer":
            return ProximalGradientDescentOptimizer(g, learningRate: lr, l1RegularizationStrength: d("l1_regularization_strength"), l2RegularizationStrength: d("l2_regularization_strength"))
        case "ProximalAdagradOptimizer":
            return ProximalAdagradOptimizer(g, learningRate: lr, initialAccumulatorValue: d("initial_accumulator_value", 0.1),
                                            l1RegularizationStrength: d("l1_regularization_strength"), l2RegularizationStrength: d("l2_regularization_strength"))
        default: fatalError("unknown optimizer \(c["tf_class"]!)")
        }
    }

    func close(_ a: Tensor, _ b: Tensor) -> String? { Golden.mismatch(a, b, rtol: 1e-5) }

    func testEveryOptimizerTrajectoryMatchesTensorFlow() throws {
        try trajectories(config: SessionConfig(), label: "golden optimizers")
    }

    /// Every trajectory with every op (variables, slots and updates included) on /gpu:0.
    func testEveryOptimizerTrajectoryMatchesTensorFlowOnGPU() throws {
        try trajectories(config: try TestGPU.required("golden optimizers"), label: "golden optimizers on /gpu:0")
    }

    /// Every trajectory split across two devices each step: the variable on the CPU (its slots
    /// and updates colocated with it), the loss and gradients on a stand-in GPU.
    func testEveryOptimizerTrajectoryMatchesTensorFlowSplitAcrossCPUAndAStandInGPU() throws {
        var config = SessionConfig()
        config.gpuStandIns = [.llvm]
        try trajectories(config: config, label: "golden optimizers split across devices", variableDevice: "/cpu:0")
    }

    func trajectories(config: SessionConfig, label: String, variableDevice: String = "") throws {
        var passed = 0, failed = 0
        for c in try Golden.lines("optimizers.jsonl") {
            let name = c["optimizer"] as! String
            let g = Graph()
            let x = try g.constant(Golden.tensor(c["x"] as! [String: Any]))
            let y = try g.constant(Golden.tensor(c["y"] as! [String: Any]))
            let w = try g.device(variableDevice) { try g.variable(Golden.tensor(c["w0"] as! [String: Any]), name: "w") }
            let step = try g.globalStep()
            let loss = try g.reduceSum(g.square(g.subtract(g.multiply(w, x), y)))
            let opt = optimizer(c, g, step)
            let pairs = try opt.computeGradients(loss)
            let train = try opt.applyGradients(pairs, globalStep: step)
            let sess = try Session(graph: g, config: config)
            try sess.run(g.globalVariablesInitializer())
            var problems: [String] = []
            for (k, s) in (c["initial_slots"] as! [String: [String: Any]]) {
                if let m = close(try sess.run(XCTUnwrap(opt.slot(w, k), "\(name) has no slot \(k)")), try Golden.tensor(s)) { problems.append("initial \(k): \(m)") }
            }
            for s in c["steps"] as! [[String: Any]] {
                let before = try sess.run([loss, pairs[0].gradient!])
                // Loss and gradient cancel (w*x - y), so they get an absolute tolerance too.
                if let m = Golden.mismatch(before[0], try Golden.tensor(["dtype": "float32", "shape": [], "data": [s["loss_before"]!]]), rtol: 1e-4) { problems.append("loss: \(m)") }
                if let m = Golden.mismatch(before[1], try Golden.tensor(s["grad"] as! [String: Any]), rtol: 1e-4, atol: 1e-4) { problems.append("grad: \(m)") }
                try sess.run(train)
                if !variableDevice.isEmpty { XCTAssertGreaterThan(sess.lastRunSegmentCount, 1, "\(name): the training step did not cross devices") }
                if let m = close(try sess.run(w), try Golden.tensor(s["w"] as! [String: Any])) { problems.append("step \(s["step"]!) w: \(m)") }
                for (k, v) in s["slots"] as! [String: [String: Any]] {
                    if let m = close(try sess.run(opt.slot(w, k)!), try Golden.tensor(v)) { problems.append("step \(s["step"]!) slot \(k): \(m)") }
                }
                for (k, v) in s["non_slot"] as! [String: [String: Any]] {
                    if let m = close(try sess.run(XCTUnwrap(opt.nonSlotVariable(k))), try Golden.tensor(v)) { problems.append("step \(s["step"]!) \(k): \(m)") }
                }
                XCTAssertEqual(try sess.run(step).scalar(as: Int64.self), (s["global_step"] as! NSNumber).int64Value)
            }
            if problems.isEmpty { passed += 1 } else { failed += 1; XCTFail("\(name): \(problems.prefix(4))") }
        }
        print("\(label): \(passed) passed, \(failed) failed")
    }

    func testSlotVariablesAreNamedAsTensorFlowNamesThem() throws {
        let g = Graph()
        let w = try g.variable([1, 2] as [Float], name: "w")
        let loss = try g.reduceSum(g.square(w))
        let adam = AdamOptimizer(g, learningRate: 0.1)
        _ = try adam.minimize(loss)
        XCTAssertEqual(adam.slot(w, "m")?.name, "w/Adam")
        XCTAssertEqual(adam.slot(w, "v")?.name, "w/Adam_1")
        XCTAssertEqual(adam.nonSlotVariable("beta1_power")?.name, "beta1_power")
        XCTAssertEqual(adam.nonSlotVariable("beta2_power")?.name, "beta2_power")
        let momentum = MomentumOptimizer(g, learningRate: 0.1, momentum: 0.9)
        _ = try momentum.minimize(loss)
        XCTAssertEqual(momentum.slot(w, "momentum")?.name, "w/Momentum")
    }

    func testMovingAverageTraceMatchesTensorFlow() throws {
        let e = try JSONSerialization.jsonObject(with: Data(contentsOf: Golden.directory.appendingPathComponent("ema.json"))) as! [String: Any]
        let ema = e["ema"] as! [String: Any]
        let g = Graph()
        let step = try g.variable(0 as Int32, name: "global_step", trainable: false)
        let v1 = try g.variable(0 as Float, name: "v1")
        let v = try g.variable([1, -2] as [Float], name: "v")
        let avg = ExponentialMovingAverage(g, decay: 0.99, numUpdates: step)
        let apply = try avg.apply([v1, v])
        XCTAssertEqual(avg.average(v1)?.name, "v1/ExponentialMovingAverage")
        XCTAssertEqual(avg.averageName(v), "v/ExponentialMovingAverage")
        let setStep = try g.placeholder(.int32, shape: [], name: "set_step")
        let setV1 = try g.placeholder(.float32, shape: [], name: "set_v1")
        let setV = try g.placeholder(.float32, shape: [2], name: "set_v")
        let assignStep = try g.assign(step, setStep), assignV1 = try g.assign(v1, setV1), assignV = try g.assign(v, setV)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        var passed = 0, failed = 0
        for t in ema["trace"] as! [[String: Any]] {
            try sess.run(targets: [assignStep.op, assignV1.op, assignV.op],
                         feeds: [setStep: Tensor(Int32((t["global_step"] as! NSNumber).intValue)),
                                 setV1: Tensor(Float((t["v1"] as! NSNumber).doubleValue)),
                                 setV: Tensor(shape: [2], scalars: (t["v"] as! [NSNumber]).map { Float($0.doubleValue) })])
            if (t["action"] as! String) != "init" { try sess.run(apply) }
            let got1 = try sess.run(avg.average(v1)!).scalar(as: Float.self)
            let want1 = (t["ema_v1"] as! NSNumber).doubleValue
            let gotV = try sess.run(avg.average(v)!).scalars(as: Float.self)
            let wantV = (t["ema_v"] as! [NSNumber]).map(\.doubleValue)
            let ok = abs(Double(got1) - want1) <= 1e-5 * max(1, abs(want1)) && gotV.count == wantV.count
                && zip(gotV, wantV).allSatisfy { abs(Double($0) - $1) <= 1e-5 }
            XCTAssertTrue(ok, "\(t["action"]!): got \(got1) \(gotV), TensorFlow \(want1) \(wantV)")
            if ok { passed += 1 } else { failed += 1 }
        }
        print("golden ema: \(passed) passed, \(failed) failed")
        let restore = avg.variablesToRestore()
        XCTAssertTrue(restore["v1/ExponentialMovingAverage"] === v1)
        XCTAssertTrue(restore["global_step"] === step)
    }

    func testLearningRateSchedulesMatchTensorFlow() throws {
        let e = try JSONSerialization.jsonObject(with: Data(contentsOf: Golden.directory.appendingPathComponent("ema.json"))) as! [String: Any]
        let s = e["schedules"] as! [String: Any]
        let steps = (s["steps"] as! [NSNumber]).map(\.intValue)
        let values = s["values"] as! [String: [NSNumber]]
        let g = Graph()
        let step = try g.placeholder(.int64, shape: [], name: "step")
        var schedules: [String: Output] = [:]
        for key in values.keys {
            // Parse "name(args...)" as written in ema.json.
            let name = String(key.prefix { $0 != "(" })
            let args = key.dropFirst(name.count + 1).dropLast()
            func num(_ label: String) -> Double? {
                guard let r = args.range(of: label + "=") else { return nil }
                return Double(args[r.upperBound...].prefix { "0123456789.-e".contains($0) })
            }
            let positional = args.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let flag = { (label: String) in args.contains(label + "=True") }
            switch name {
            case "exponential_decay":
                schedules[key] = try g.exponentialDecay(Double(positional[0])!, globalStep: step, decaySteps: Double(positional[2])!, decayRate: Double(positional[3])!, staircase: flag("staircase"))
            case "piecewise_constant":
                let lists = key.split(separator: "[").dropFirst().map { $0.prefix { $0 != "]" }.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! } }
                schedules[key] = try g.piecewiseConstant(step, boundaries: lists[0], values: lists[1])
            case "polynomial_decay":
                schedules[key] = try g.polynomialDecay(Double(positional[0])!, globalStep: step, decaySteps: Double(positional[2])!, endLearningRate: Double(positional[3])!,
                                                       power: num("power") ?? 1, cycle: flag("cycle"))
            case "inverse_time_decay":
                schedules[key] = try g.inverseTimeDecay(Double(positional[0])!, globalStep: step, decaySteps: Double(positional[2])!, decayRate: Double(positional[3])!, staircase: flag("staircase"))
            case "natural_exp_decay":
                schedules[key] = try g.naturalExpDecay(Double(positional[0])!, globalStep: step, decaySteps: Double(positional[2])!, decayRate: Double(positional[3])!, staircase: flag("staircase"))
            case "cosine_decay":
                schedules[key] = try g.cosineDecay(Double(positional[0])!, globalStep: step, decaySteps: Double(positional[2])!, alpha: num("alpha") ?? 0)
            default: XCTFail("unknown schedule \(key)")
            }
        }
        let sess = try Session(graph: g)
        var passed = 0, failed = 0
        for (key, out) in schedules {
            var ok = true
            for (i, st) in steps.enumerated() {
                let got = Double(try sess.run(out, feeds: [step: Tensor(Int64(st))]).scalar(as: Float.self))
                let want = values[key]![i].doubleValue
                if abs(got - want) > 1e-6 + 1e-5 * abs(want) { ok = false; XCTFail("\(key) at step \(st): \(got) vs \(want)") }
            }
            if ok { passed += 1 } else { failed += 1 }
        }
        print("golden schedules: \(passed) passed, \(failed) failed")
    }
}
