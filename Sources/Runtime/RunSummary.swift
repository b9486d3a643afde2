import KilnIR
import KilnKernels

/// What the executable behind a run does, for tools that report rates (`kiln bench GRAPH`).
public struct RunSummary: Sendable {
    /// The backend that compiled it (`llvm`, `c`).
    public var backend: String
    /// Kernels (loops and matrix products) the run executes, and its arena's peak size.
    public var kernels: Int
    public var arenaBytes: Int
    /// Floating-point operations of its matrix products and convolutions (2 per multiply-add).
    public var matrixFLOPs: Double
    /// Bytes of every parameter (feeds and variables) read once and every result written once:
    /// the least memory traffic any implementation of the run needs.
    public var minimumBytes: Double
    /// Compiled as code that runs once (an initializer's run: LLVM's lighter pipeline).
    public var optimisedForOneRun: Bool

    init(_ exe: any Executable) {
        let f = exe.function
        let types = f.typeTable()
        backend = exe.backendName
        optimisedForOneRun = exe.stats.optimisedForOneRun
        kernels = exe.plan.kernels.count
        arenaBytes = exe.plan.arenaBytes
        var flops = 0.0
        for i in f.body {
            guard case .dot(let ta, _) = i.op, let t = i.type, let a = types[i.operands[0]] else { continue }
            let k = ta ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
            flops += 2 * Double(t.elementCount) * Double(k)
        }
        matrixFLOPs = flops
        minimumBytes = Double(f.params.map(\.type.byteCount).reduce(0, +) + exe.resultTypes.map(\.byteCount).reduce(0, +))
    }
}
