// Allreduce bandwidth under mpirun: Kiln's path (a HorovodAllreduce op fetched through
// Session.run: the engine's fused, rank-ordered sum over point-to-point messages) beside a plain
// MPI_Allreduce loop on the same buffers, in the same run, for 4 KB to 64 MB of float32.
//
//   mpirun --allow-run-as-root -np 2 AllreduceBench [--min-seconds S]
//   mpirun --allow-run-as-root -np 2 AllreduceBench --mlp WIDTH [--layers L] [--batch B]
//
// Rank 0 prints one line per size: the median time of each path and its algorithm bandwidth
// (bytes / time) and bus bandwidth (x 2(N-1)/N, the bytes each rank's links carry).
// `--mlp` instead trains L dense layers of WIDTH x WIDTH (B rows per rank) through a
// DistributedOptimizer and prints the median step time: with KILN_ALLREDUCE_OVERLAP and
// KILN_FUSION_THRESHOLD, what overlapping the allreduce with the backward pass gains.
import Foundation
import Kiln
import KilnDistributed

let args = CommandLine.arguments
let minSeconds = args.firstIndex(of: "--min-seconds").flatMap { Double(args[$0 + 1]) } ?? 0.5
let world = try World.start()
if let width = args.firstIndex(of: "--mlp").flatMap({ Int(args[$0 + 1]) }) {
    try trainMLP(width: width, layers: args.firstIndex(of: "--layers").flatMap { Int(args[$0 + 1]) } ?? 4,
                 batch: args.firstIndex(of: "--batch").flatMap { Int(args[$0 + 1]) } ?? 32)
    try world.finalize()
    exit(0)
}
let sizes = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20]
let g = Graph()
let x = try g.placeholder(.float32, shape: Shape(dims: [nil]), name: "x")
let reduced = try DistributedOptimizer(GradientDescentOptimizer(g, learningRate: 0.1), reduceOp: .sum).allreduce(x)
let session = try Session(graph: g)

/// Median seconds of `body`, run until `minSeconds` passed (at least 3 times); every rank runs
/// the same count (rank 0's, broadcast), or the collectives would not pair up.
func median(_ body: () throws -> Void) throws -> Double {
    try body()
    var times: [Double] = []
    let start = World.time
    while true {
        let t0 = World.time
        try body()
        times.append(World.time - t0)
        if try world.agree(times.count >= 3 && World.time - start >= minSeconds) { break }
    }
    times.sort()
    return times[times.count / 2]
}

/// Median step time of an MLP trained data-parallel (every rank the same count of steps).
func trainMLP(width: Int, layers: Int, batch: Int) throws {
    let g = Graph()
    g.seed = 3
    let x = try g.placeholder(.float32, shape: Shape(dims: [batch, width]), name: "x")
    var h = x
    for k in 0..<layers { h = try g.fullyConnected(h, width, activation: k == layers - 1 ? .identity : .relu, scope: "dense\(k)") }
    let loss = try g.reduceMean(h * h)
    let train = try DistributedOptimizer(GradientDescentOptimizer(g, learningRate: 1e-4)).minimize(loss)
    let s = try Session(graph: g)
    try s.run(g.globalVariablesInitializer())
    try world.broadcastGlobalVariables(s)
    let input = try Tensor(shape: [batch, width], scalars: (0..<(batch * width)).map { Float(($0 + world.rank) % 13) / 13 })
    let step = try median { _ = try s.run([loss], feeds: [x: input], targets: [train]) }
    if world.isRoot {
        let env = ProcessInfo.processInfo.environment
        print(String(format: "mlp ranks=%d width=%d layers=%d batch=%d gradient_MB=%.1f overlap=%@ fusion=%@ step_ms=%.2f", world.size, width, layers, batch,
                     Double(layers * (width * width + width) * 4) / 1e6, env["KILN_ALLREDUCE_OVERLAP"] ?? "auto", env["KILN_FUSION_THRESHOLD"] ?? "default", step * 1e3))
    }
}

if world.isRoot { print("ranks=\(world.size) bytes kiln_us kiln_algbw_MBps kiln_busbw_MBps mpi_us mpi_algbw_MBps mpi_busbw_MBps kiln/mpi") }
for bytes in sizes {
    let count = bytes / 4
    let input = try Tensor(shape: [count], scalars: (0..<count).map { Float(($0 + world.rank) % 97) })
    let kiln = try median { _ = try session.run(reduced, feeds: [x: input]) }
    var buffer = (0..<count).map { Float(($0 + world.rank) % 97) }
    let mpi = try median { try world.plainAllreduce(&buffer) }
    if world.isRoot {
        let bus = 2 * Double(world.size - 1) / Double(world.size)
        print(String(format: "%d %d %.1f %.0f %.0f %.1f %.0f %.0f %.2f", world.size, bytes, kiln * 1e6, Double(bytes) / kiln / 1e6, bus * Double(bytes) / kiln / 1e6,
                     mpi * 1e6, Double(bytes) / mpi / 1e6, bus * Double(bytes) / mpi / 1e6, kiln / mpi))
    }
}
try world.finalize()
