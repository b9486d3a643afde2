import KilnIR

/// TensorFlow 1's learning-rate schedules (tf.train.*_decay): graph ops of the global step,
/// computed in float32 as TensorFlow computes them.
extension Graph {
    func stepF(_ step: some OutputConvertible) throws -> Output { try cast(step, to: .float32) }
    func f(_ v: Double, _ n: String) throws -> Output { try constant(v, dtype: .float32, name: n) }

    func decayProgress(_ step: some OutputConvertible, _ decaySteps: Double, staircase: Bool) throws -> Output {
        let p = try realDiv(stepF(step), f(decaySteps, "decay_steps"))
        return staircase ? try floor(p) : p
    }

    /// lr * rate^(step / decaySteps), the exponent floored when `staircase`.
    public func exponentialDecay(_ lr: Double, globalStep: some OutputConvertible, decaySteps: Double, decayRate: Double,
                                 staircase: Bool = false, name: String = "ExponentialDecay") throws -> Output {
        try nameScope(name) {
            try multiply(f(lr, "learning_rate"), pow(f(decayRate, "decay_rate"), decayProgress(globalStep, decaySteps, staircase: staircase)))
        }
    }

    /// values[0] while step <= boundaries[0], values[1] while step <= boundaries[1], ..., then the last.
    public func piecewiseConstant(_ step: some OutputConvertible, boundaries: [Double], values: [Double],
                                  name: String = "PiecewiseConstant") throws -> Output {
        guard values.count == boundaries.count + 1 else {
            throw KilnError.invalidArgument("piecewise_constant needs one more value (\(values.count)) than boundaries (\(boundaries.count))")
        }
        return try nameScope(name) {
            let x = try stepF(step)
            var out = try f(values.last!, "default")
            for (b, v) in zip(boundaries, values).reversed() {
                out = try `where`(lessEqual(x, f(b, "boundary")), f(v, "value"), out)
            }
            return out
        }
    }

    /// (lr - end) * (1 - step/decaySteps)^power + end; with `cycle` the horizon grows in whole
    /// multiples of decaySteps.
    public func polynomialDecay(_ lr: Double, globalStep: some OutputConvertible, decaySteps: Double, endLearningRate: Double = 0.0001,
                                power: Double = 1, cycle: Bool = false, name: String = "PolynomialDecay") throws -> Output {
        try nameScope(name) {
            var s = try stepF(globalStep)
            var horizon = try f(decaySteps, "decay_steps")
            if cycle {
                let mult = try ceil(realDiv(s, horizon))
                // Step 0 still uses one full period.
                let safe = try `where`(equal(s, f(0, "zero")), f(1, "one"), mult)
                horizon = try multiply(horizon, safe)
            } else {
                s = try minimum(s, horizon)
            }
            let frac = try subtract(f(1, "one"), realDiv(s, horizon))
            return try add(multiply(f(lr - endLearningRate, "range"), pow(frac, f(power, "power"))), f(endLearningRate, "end_learning_rate"))
        }
    }

    /// lr / (1 + rate * step/decaySteps).
    public func inverseTimeDecay(_ lr: Double, globalStep: some OutputConvertible, decaySteps: Double, decayRate: Double,
                                 staircase: Bool = false, name: String = "InverseTimeDecay") throws -> Output {
        try nameScope(name) {
            try realDiv(f(lr, "learning_rate"), add(f(1, "one"), multiply(f(decayRate, "decay_rate"), decayProgress(globalStep, decaySteps, staircase: staircase))))
        }
    }

    /// lr * exp(-rate * step/decaySteps).
    public func naturalExpDecay(_ lr: Double, globalStep: some OutputConvertible, decaySteps: Double, decayRate: Double,
                                staircase: Bool = false, name: String = "NaturalExpDecay") throws -> Output {
        try nameScope(name) {
            try multiply(f(lr, "learning_rate"), exp(negative(multiply(f(decayRate, "decay_rate"), decayProgress(globalStep, decaySteps, staircase: staircase)))))
        }
    }

    /// lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decaySteps) / decaySteps)) + alpha).
    public func cosineDecay(_ lr: Double, globalStep: some OutputConvertible, decaySteps: Double, alpha: Double = 0,
                            name: String = "CosineDecay") throws -> Output {
        try nameScope(name) {
            let s = try minimum(stepF(globalStep), f(decaySteps, "decay_steps"))
            let cosine = try multiply(f(0.5, "half"), add(f(1, "one"), cos(multiply(f(Double.pi, "pi"), realDiv(s, f(decaySteps, "decay_steps"))))))
            return try multiply(f(lr, "learning_rate"), add(multiply(f(1 - alpha, "one_minus_alpha"), cosine), f(alpha, "alpha")))
        }
    }
}
