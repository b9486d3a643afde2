import KilnIR

/// Collective ops across the processes of a distributed run (Horovod's names, so graphs read as
/// Horovod's do). The session answers them between the compiled parts of a step, through the
/// collective engine a world installs (KilnDistributed); the frontend only declares them.
public enum CollectiveOps {
    /// Horovod's reduce_op values: Average = 0, Sum = 1 (Adasum, 2, is not supported).
    public enum ReduceOp: Int, Sendable { case average = 0, sum = 1 }

    public enum Allreduce {
        public static let reduceOp = Attr<Int>("reduce_op", default: ReduceOp.average.rawValue)
        /// Multiplies the input before the reduction.
        public static let prescale = Attr<Double>("prescale_factor", default: 1)
        /// Multiplies the result after it.
        public static let postscale = Attr<Double>("postscale_factor", default: 1)
    }

    static let defs: [OpDef] = [
        // The sum (or mean) of the input over every rank, of the input's dtype and shape.
        OpDef("HorovodAllreduce", arity: .exactly(1), stateful: true, infer: { ctx in
            guard [.float32, .float64, .int32, .int64].contains(ctx.dtype(0)) else {
                throw ctx.error("HorovodAllreduce reduces float32, float64, int32 or int64 tensors, got \(ctx.dtype(0).name)")
            }
            let op = ctx.attrs[Allreduce.reduceOp]
            guard ReduceOp(rawValue: op) != nil else {
                throw ctx.error("HorovodAllreduce's reduce_op must be 0 (Average) or 1 (Sum), got \(op)")
            }
            return [(ctx.dtype(0), ctx.shape(0))]
        }).declaring(Allreduce.reduceOp, Allreduce.prescale, Allreduce.postscale)
            .answeredBySession(.collective).gradient(CollectiveGradients.allreduce),
    ]
}
