import KilnIR

/// Collective ops across the processes of a distributed run (Horovod's names, so graphs read as
/// Horovod's do). The session answers them on the host through the collective engine a world
/// installs (KilnDistributed); the frontend only declares them.
public enum CollectiveOps {
    /// Horovod's reduce_op values: Average = 0, Sum = 1 (Adasum, 2, is not supported).
    public enum ReduceOp: Int, Sendable { case average = 0, sum = 1 }

    public static let types: Set<String> = ["HorovodAllreduce"]

    static let defs: [OpDef] = [
        // The sum (or mean) of the input over every rank, of the input's dtype and shape;
        // prescale_factor multiplies the input before, postscale_factor the result after.
        OpDef("HorovodAllreduce", arity: .exactly(1),
              attrs: ["reduce_op": .int(ReduceOp.average.rawValue), "prescale_factor": .float(1), "postscale_factor": .float(1)],
              stateful: true, infer: { ctx in
            guard [.float32, .float64, .int32, .int64].contains(ctx.dtype(0)) else {
                throw ctx.error("HorovodAllreduce reduces float32, float64, int32 or int64 tensors, got \(ctx.dtype(0).name)")
            }
            guard let op = ctx.attrs["reduce_op"]?.int, ReduceOp(rawValue: op) != nil else {
                throw ctx.error("HorovodAllreduce's reduce_op must be 0 (Average) or 1 (Sum), got \(ctx.attrs["reduce_op"].map { "\($0)" } ?? "none")")
            }
            return [(ctx.dtype(0), ctx.shape(0))]
        }),
    ]
}
