import Kiln
import KilnDistributed

/// `--use-fp16`: the model's weights and activations are float16 in the forward and backward
/// pass, while the optimizer updates float32 master copies (mixed-precision training, as
/// NVIDIA's recipe and TensorFlow's mixed-precision tooling do it). Each step:
///   1. the loss (float32, from the float16 logits) is multiplied by a loss scale, so the small
///      gradients of the float16 backward pass stay above float16's subnormal range;
///   2. the float16 gradients are cast to float32 and divided by the scale;
///   3. the optimizer applies them to the float32 masters;
///   4. the float16 weights are refreshed from the masters (rounded to nearest even).
/// The scale is static: 128 keeps this model's gradients (about 1e-6 to 1) well inside float16's
/// range (6e-8 to 65504) after scaling; a non-finite gradient would show as a NaN loss.
struct MixedPrecision {
    /// The loss scale (a power of two: scaling and unscaling are exact).
    static let lossScale = 128.0

    let graph: Graph
    /// Each trainable float16 variable of the model and its float32 master.
    let masters: [(half: Variable, master: Variable)]

    /// Float32 masters for `halfVariables`, initialised from the same initial values (outside any
    /// control dependencies in effect: initialising must not run a training step's updates).
    init(_ g: Graph, halfVariables: [Variable]) throws {
        graph = g
        masters = try g.withoutControlDependencies {
            try halfVariables.map { half in
                let initial = try g.cast(half.initializedValue(), to: .float32)
                return (half, try g.variable(initial, name: half.name + "/master", trainable: false))
            }
        }
    }

    /// The training op: scaled float16 gradients, unscaled in float32, applied by `optimizer` to
    /// the masters (counting `globalStep`), then the float16 weights rounded from the masters.
    /// Distributed, the unscaled float32 gradients are averaged across the ranks first.
    func minimize(_ loss: Output, optimizer: Optimizer, globalStep: Variable, allreduce: DistributedOptimizer? = nil) throws -> Operation {
        let g = graph
        let scaled = try g.multiply(loss, g.constant(Self.lossScale, dtype: loss.dtype, name: "loss_scale"))
        let halfGradients = try optimizer.computeGradients(scaled, varList: masters.map(\.half))
        let unscale = try g.constant(1 / Self.lossScale, dtype: .float32, name: "inverse_loss_scale")
        let pairs: [(gradient: Output?, variable: Variable)] = try zip(halfGradients, masters).map { grad, pair in
            (try grad.gradient.map { try g.multiply(g.cast($0, to: .float32), unscale) }.map { try allreduce?.allreduce($0) ?? $0 }, pair.master)
        }
        let apply = try optimizer.applyGradients(pairs, globalStep: globalStep)
        return try g.controlDependencies([apply]) {
            try g.group(masters.map { try g.assign($0.half, g.cast($0.master, to: .float16)).op }, name: "refresh_half_weights")
        }
    }
}
