import KilnIR

/// Gradients of the collective ops, as Horovod defines them.
enum CollectiveGradients {
    /// An allreduce's gradient is the allreduce of the incoming gradient with the same reduction
    /// and scale factors (Horovod's `_allreduce_grad`).
    static let allreduce: GradientFunction = { ctx in
        [try ctx.graph.apply("HorovodAllreduce", [ctx.grad()], name: "HorovodAllreduce_grad", attrs: ctx.attrs)]
    }
}
