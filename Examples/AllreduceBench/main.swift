// Allreduce bandwidth under mpirun: Kiln's path (a HorovodAllreduce op fetched through
// Session.run: the engine's fused, rank-ordered sum over point-to-point messages) beside a plain
// MPI_Allreduce loop on the same buffers, in the same run, for 4 KB to 64 MB of float32.
//
//   mpirun --allow-run-as-root -np 2 AllreduceBench [--min-seconds S]
//
// Rank 0 prints one line per size: the median time of each path and its algorithm bandwidth
// (bytes / time) and bus bandwidth (x 2(N-1)/N, the bytes each rank's links carry).
import Foundation
import Kiln
import KilnDistributed

let args = CommandLine.arguments
let minSeconds = args.firstIndex(of: "--min-seconds").flatMap { Double(args[$0 + 1]) } ?? 0.5
let world = try World.start()
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
