import KilnIR

/// The update rules of TensorFlow 1's optimizers, written as graph ops that compute exactly
/// what TensorFlow's training kernels compute.

public final class GradientDescentOptimizer: Optimizer, @unchecked Sendable {
    public init(_ g: Graph, learningRate: LearningRate, name: String = "GradientDescent") {
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        try graph.assignSub(v, graph.multiply(lr(v.dtype), grad)).op
    }
}

public final class MomentumOptimizer: Optimizer, @unchecked Sendable {
    public let momentum: Double, useNesterov: Bool
    public init(_ g: Graph, learningRate: LearningRate, momentum: Double, useNesterov: Bool = false, name: String = "Momentum") {
        self.momentum = momentum
        self.useNesterov = useNesterov
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws { for v in vars { try makeSlot(v, "momentum", opName: name, value: 0) } }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        let g = graph, accum = slot(v, "momentum")!, m = try const(momentum, v.dtype, "momentum"), lr = try lr(v.dtype)
        let a = try g.assign(accum, g.add(g.multiply(accum, m), grad))
        if useNesterov { return try g.assignSub(v, g.add(g.multiply(grad, lr), g.multiply(g.multiply(a, m), lr))).op }
        return try g.assignSub(v, g.multiply(lr, a)).op
    }
}

public final class AdagradOptimizer: Optimizer, @unchecked Sendable {
    public let initialAccumulatorValue: Double
    public init(_ g: Graph, learningRate: LearningRate, initialAccumulatorValue: Double = 0.1, name: String = "Adagrad") {
        self.initialAccumulatorValue = initialAccumulatorValue
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        for v in vars { try makeSlot(v, "accumulator", opName: name, value: initialAccumulatorValue) }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        let g = graph
        let a = try g.assignAdd(slot(v, "accumulator")!, g.square(grad))
        return try g.assignSub(v, g.multiply(g.multiply(grad, lr(v.dtype)), g.rsqrt(a))).op
    }
}

public final class AdagradDAOptimizer: Optimizer, @unchecked Sendable {
    public let globalStep: Variable, initialValue: Double, l1: Double, l2: Double
    public init(_ g: Graph, learningRate: LearningRate, globalStep: Variable, initialGradientSquaredAccumulatorValue: Double = 0.1,
                l1RegularizationStrength: Double = 0, l2RegularizationStrength: Double = 0, name: String = "AdagradDA") {
        self.globalStep = globalStep
        initialValue = initialGradientSquaredAccumulatorValue
        l1 = l1RegularizationStrength
        l2 = l2RegularizationStrength
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        for v in vars {
            try makeSlot(v, "gradient_accumulator", opName: name, value: 0)
            try makeSlot(v, "gradient_squared_accumulator", opName: name, value: initialValue)
        }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        // var = -lr * sign(ga) * max(|ga| - l1*t, 0) / (l2*t*lr + sqrt(gsa)), t = global_step + 1.
        let g = graph, d = v.dtype, lr = try lr(d)
        let ga = try g.assignAdd(slot(v, "gradient_accumulator")!, grad)
        let gsa = try g.assignAdd(slot(v, "gradient_squared_accumulator")!, g.square(grad))
        let t = try g.cast(g.add(globalStep.value, g.constant(1, dtype: globalStep.dtype)), to: d)
        let shrunk = try l1 > 0 ? g.multiply(g.sign(ga), g.maximum(g.subtract(g.abs(ga), g.multiply(const(l1, d, "l1"), t)), const(0, d))) : ga
        let denom = try g.add(g.multiply(g.multiply(const(l2, d, "l2"), t), lr), g.sqrt(gsa))
        return try g.assign(v, g.realDiv(g.negative(g.multiply(lr, shrunk)), denom)).op
    }
}

public final class AdamOptimizer: Optimizer, @unchecked Sendable {
    public let beta1: Double, beta2: Double, epsilon: Double
    public init(_ g: Graph, learningRate: LearningRate = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                name: String = "Adam") {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        let d = vars[0].dtype
        _ = try makeNonSlot("beta1_power", value: beta1, dtype: d)
        _ = try makeNonSlot("beta2_power", value: beta2, dtype: d)
        for v in vars {
            try makeSlot(v, "m", opName: name, value: 0)
            try makeSlot(v, "v", opName: name, value: 0)
        }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        // lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m += (g - m)(1 - b1); v += (g² - v)(1 - b2);
        // var -= lr_t * m / (sqrt(v) + eps).
        let g = graph, d = v.dtype
        let b1p = nonSlotVariable("beta1_power")!, b2p = nonSlotVariable("beta2_power")!
        let one = try const(1, d, "one")
        let lrT = try g.realDiv(g.multiply(lr(d), g.sqrt(g.subtract(one, b2p))), g.subtract(one, b1p))
        let m = slot(v, "m")!, s = slot(v, "v")!
        let mNew = try g.assignAdd(m, g.multiply(g.subtract(grad, m), const(1 - beta1, d, "one_minus_beta1")))
        let vNew = try g.assignAdd(s, g.multiply(g.subtract(g.square(grad), s), const(1 - beta2, d, "one_minus_beta2")))
        return try g.assignSub(v, g.realDiv(g.multiply(mNew, lrT), g.add(g.sqrt(vNew), const(epsilon, d, "epsilon")))).op
    }
    public override func finish(_ updates: [Operation], name: String) throws -> Operation {
        let g = graph
        let b1p = nonSlotVariable("beta1_power")!, b2p = nonSlotVariable("beta2_power")!
        return try g.controlDependencies(updates) {
            let u1 = try g.assign(b1p, g.multiply(b1p, const(beta1, b1p.dtype, "beta1")), name: "Assign")
            let u2 = try g.assign(b2p, g.multiply(b2p, const(beta2, b2p.dtype, "beta2")), name: "Assign_1")
            return try g.group(updates + [u1.op, u2.op], name: name)
        }
    }
}

public final class RMSPropOptimizer: Optimizer, @unchecked Sendable {
    public let decay: Double, momentum: Double, epsilon: Double, centered: Bool
    public init(_ g: Graph, learningRate: LearningRate, decay: Double = 0.9, momentum: Double = 0, epsilon: Double = 1e-10,
                centered: Bool = false, name: String = "RMSProp") {
        self.decay = decay
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        for v in vars {
            // TensorFlow 1 starts the mean square at one.
            try makeSlot(v, "rms", opName: name, value: 1)
            if centered { try makeSlot(v, "mg", opName: name, value: 0) }
            try makeSlot(v, "momentum", opName: name, value: 0)
        }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        let g = graph, d = v.dtype
        let oneMinusDecay = try const(1 - decay, d, "one_minus_decay")
        let ms = try g.assignAdd(slot(v, "rms")!, g.multiply(g.subtract(g.square(grad), slot(v, "rms")!), oneMinusDecay))
        var denom = try g.add(ms, const(epsilon, d, "epsilon"))
        if centered {
            let mg = try g.assignAdd(slot(v, "mg")!, g.multiply(g.subtract(grad, slot(v, "mg")!), oneMinusDecay))
            denom = try g.subtract(denom, g.square(mg))
        }
        let mom = slot(v, "momentum")!
        let m = try g.assign(mom, g.add(g.multiply(mom, const(momentum, d, "momentum")), g.multiply(lr(d), g.realDiv(grad, g.sqrt(denom)))))
        return try g.assignSub(v, m).op
    }
}

public final class FtrlOptimizer: Optimizer, @unchecked Sendable {
    public let learningRatePower: Double, initialAccumulatorValue: Double, l1: Double, l2: Double
    public init(_ g: Graph, learningRate: LearningRate, learningRatePower: Double = -0.5, initialAccumulatorValue: Double = 0.1,
                l1RegularizationStrength: Double = 0, l2RegularizationStrength: Double = 0, name: String = "Ftrl") {
        self.learningRatePower = learningRatePower
        self.initialAccumulatorValue = initialAccumulatorValue
        l1 = l1RegularizationStrength
        l2 = l2RegularizationStrength
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        for v in vars {
            try makeSlot(v, "accum", opName: name, value: initialAccumulatorValue)
            try makeSlot(v, "linear", opName: name + "_1", value: 0)
        }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        // new = accum + g²; linear += g - (new^-p - accum^-p)/lr * var;
        // var = |linear| > l1 ? (sign(linear)*l1 - linear) / (new^-p/lr + 2*l2) : 0.
        let g = graph, d = v.dtype, lr = try lr(d)
        let accum = slot(v, "accum")!, linear = slot(v, "linear")!
        let newAccum = try g.add(accum, g.square(grad))
        func power(_ x: Output) throws -> Output {
            learningRatePower == -0.5 ? try g.sqrt(x) : try g.pow(x, const(-learningRatePower, d, "power"))
        }
        let sigma = try g.realDiv(g.subtract(power(newAccum), power(accum.value)), lr)
        let lin = try g.assignAdd(linear, g.subtract(grad, g.multiply(sigma, v)))
        let quadratic = try g.add(g.realDiv(power(newAccum), lr), const(2 * l2, d, "two_l2"))
        let l1t = try const(l1, d, "l1")
        let value = try g.realDiv(g.subtract(g.multiply(g.sign(lin), l1t), lin), quadratic)
        let w = try g.assign(v, g.where(g.greater(g.abs(lin), l1t), value, g.zerosLike(lin)))
        return try g.controlDependencies([w.op]) { try g.group([w.op, g.assign(accum, newAccum).op]) }
    }
}

public final class AdadeltaOptimizer: Optimizer, @unchecked Sendable {
    public let rho: Double, epsilon: Double
    public init(_ g: Graph, learningRate: LearningRate = 0.001, rho: Double = 0.95, epsilon: Double = 1e-8, name: String = "Adadelta") {
        self.rho = rho
        self.epsilon = epsilon
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        for v in vars {
            try makeSlot(v, "accum", opName: name, value: 0)
            try makeSlot(v, "accum_update", opName: name + "_1", value: 0)
        }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        let g = graph, d = v.dtype
        let rhoT = try const(rho, d, "rho"), oneMinus = try const(1 - rho, d, "one_minus_rho"), eps = try const(epsilon, d, "epsilon")
        let accum = slot(v, "accum")!, accumUpdate = slot(v, "accum_update")!
        let a = try g.assign(accum, g.add(g.multiply(accum, rhoT), g.multiply(g.square(grad), oneMinus)))
        let update = try g.multiply(g.realDiv(g.sqrt(g.add(accumUpdate, eps)), g.sqrt(g.add(a, eps))), grad)
        let u = try g.assign(accumUpdate, g.add(g.multiply(accumUpdate, rhoT), g.multiply(g.square(update), oneMinus)))
        let w = try g.assignSub(v, g.multiply(update, lr(d)))
        return try g.group([u.op, w.op])
    }
}

public final class ProximalGradientDescentOptimizer: Optimizer, @unchecked Sendable {
    public let l1: Double, l2: Double
    public init(_ g: Graph, learningRate: LearningRate, l1RegularizationStrength: Double = 0, l2RegularizationStrength: Double = 0,
                name: String = "ProximalGradientDescent") {
        l1 = l1RegularizationStrength
        l2 = l2RegularizationStrength
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        let lr = try lr(v.dtype)
        return try proximal(graph, v, graph.subtract(v, graph.multiply(lr, grad)), lr, l1, l2)
    }
}

public final class ProximalAdagradOptimizer: Optimizer, @unchecked Sendable {
    public let initialAccumulatorValue: Double, l1: Double, l2: Double
    public init(_ g: Graph, learningRate: LearningRate, initialAccumulatorValue: Double = 0.1, l1RegularizationStrength: Double = 0,
                l2RegularizationStrength: Double = 0, name: String = "ProximalAdagrad") {
        self.initialAccumulatorValue = initialAccumulatorValue
        l1 = l1RegularizationStrength
        l2 = l2RegularizationStrength
        super.init(graph: g, learningRate: learningRate, name: name)
    }
    public override func createSlots(_ vars: [Variable]) throws {
        for v in vars { try makeSlot(v, "accumulator", opName: name, value: initialAccumulatorValue) }
    }
    public override func applyDense(_ grad: Output, _ v: Variable) throws -> Operation {
        let g = graph
        let a = try g.assignAdd(slot(v, "accumulator")!, g.square(grad))
        let lrT = try g.multiply(lr(v.dtype), g.rsqrt(a))
        return try proximal(g, v, g.subtract(v, g.multiply(lrT, grad)), lrT, l1, l2)
    }
}

/// var = sign(p) / (1 + lr*l2) * max(|p| - lr*l1, 0), the proximal step of the L1/L2 penalties.
func proximal(_ g: Graph, _ v: Variable, _ p: Output, _ lr: Output, _ l1: Double, _ l2: Double) throws -> Operation {
    let d = v.dtype
    let shrink = try g.maximum(g.subtract(g.abs(p), g.multiply(lr, g.constant(l1, dtype: d, name: "l1"))), g.constant(0, dtype: d))
    let scale = try g.add(g.constant(1, dtype: d), g.multiply(lr, g.constant(l2, dtype: d, name: "l2")))
    return try g.assign(v, g.multiply(g.realDiv(g.sign(p), scale), shrink)).op
}
