import KilnIR
import KilnFrontend

/// Horovod's DistributedOptimizer: wraps any of Kiln's optimizers so that each gradient is
/// averaged across the ranks (a HorovodAllreduce op) before it is applied. Inside one
/// Session.run of the train op: compiled gradients, the fused allreduce on the host, the
/// compiled apply ops. Building the graph needs no MPI; running it needs a started World.
public final class DistributedOptimizer {
    public let optimizer: Optimizer
    public let reduceOp: CollectiveOps.ReduceOp

    public init(_ optimizer: Optimizer, reduceOp: CollectiveOps.ReduceOp = .average) {
        self.optimizer = optimizer
        self.reduceOp = reduceOp
    }

    public var graph: Graph { optimizer.graph }

    /// The wrapped optimizer's gradients, each replaced by its allreduce across the ranks.
    public func computeGradients(_ loss: some OutputConvertible, varList: [Variable]? = nil) throws -> [(gradient: Output?, variable: Variable)] {
        let pairs = try optimizer.computeGradients(loss, varList: varList)
        return try graph.nameScope("DistributedOptimizer_Allreduce") {
            try pairs.map { p in
                guard let g = p.gradient else { return p }
                return (try allreduce(g, name: "HorovodAllreduce_" + p.variable.name.replacingOccurrences(of: "/", with: "_")), p.variable)
            }
        }
    }

    public func applyGradients(_ pairs: [(gradient: Output?, variable: Variable)], globalStep: Variable? = nil, name: String? = nil) throws -> Operation {
        try optimizer.applyGradients(pairs, globalStep: globalStep, name: name)
    }

    public func minimize(_ loss: some OutputConvertible, globalStep: Variable? = nil, varList: [Variable]? = nil, name: String? = nil) throws -> Operation {
        try applyGradients(computeGradients(loss, varList: varList), globalStep: globalStep, name: name)
    }

    /// hvd.allreduce: `x` reduced across the ranks with this optimizer's reduce op.
    public func allreduce(_ x: Output, name: String = "HorovodAllreduce") throws -> Output {
        try graph.addOperation("HorovodAllreduce", name: name, inputs: [x], attrs: CollectiveOps.Allreduce.reduceOp(reduceOp.rawValue).merging(["T": .type(x.dtype)]) { a, _ in a }).output()
    }
}
