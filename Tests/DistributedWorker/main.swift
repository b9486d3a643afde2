// Trains a small classifier data-parallel under mpirun, or alone on the same global batches, and
// writes its variables for DistributedTrainingTests to compare.
//
//   DistributedWorker mpi|single OUTDIR [--steps K] [--batch B] [--optimizer momentum|adam|sgd]
//                     [--fusion BYTES] [--overlap off|on|auto] [--timeout S]
//                     [--die-rank R --die-step S [--stall]]
//                     [--mismatch-rank R] [--overlap-rank R]
//
// `mpi` starts a World: each rank initialises the variables from its own seed (so only the
// broadcast from rank 0 makes them agree), takes its share of every global batch, and trains
// through a DistributedOptimizer; it writes OUTDIR/rank<r>.txt. `single` trains one process on
// the whole global batches from rank 0's seed and writes OUTDIR/single.txt. Each line is a
// variable's name and its values (%.9g). --die-rank R kills rank R (SIGKILL; --stall: it
// sleeps instead) before step --die-step; --mismatch-rank R gives rank R a different gradient list;
// --overlap-rank R makes rank R alone overlap its allreduces with the backward pass.
// A failure prints "DistributedWorker rank R: <error>" on stderr and exits 3.
import Foundation
import Kiln
import KilnDistributed

var args = Array(CommandLine.arguments.dropFirst())
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}
guard args.count >= 2, ["mpi", "single"].contains(args[0]) else { fail("usage: DistributedWorker mpi|single OUTDIR [options] (see the top of main.swift)") }
let mode = args[0], outDirectory = args[1]
var options: [String: String] = [:]
var flags = Set<String>()
var i = 2
while i < args.count {
    if args[i] == "--stall" { flags.insert("stall"); i += 1; continue }
    guard args[i].hasPrefix("--"), i + 1 < args.count else { fail("bad argument '\(args[i])'") }
    options[String(args[i].dropFirst(2))] = args[i + 1]
    i += 2
}
@MainActor func intOption(_ name: String, _ fallback: Int) -> Int {
    guard let v = options[name] else { return fallback }
    guard let n = Int(v) else { fail("--\(name) takes an integer, got '\(v)'") }
    return n
}
let steps = intOption("steps", 5), globalBatch = intOption("batch", 12)
let features = 6, classes = 3

/// Global batch `k`: the same rows in every process.
@MainActor func globalBatchData(_ k: Int) -> (x: [Float], y: [Int64]) {
    var rng = SplitMix64(seed: 1000 + UInt64(k))
    var x: [Float] = [], y: [Int64] = []
    for _ in 0..<globalBatch {
        let row = (0..<features).map { _ in Float(Double(rng.next() % 2001) / 1000 - 1) }
        x += row
        // A learnable rule: the class of the largest of three feature sums.
        let s = [row[0] + row[1], row[2] + row[3], row[4] + row[5]]
        y.append(Int64(s.firstIndex(of: s.max()!)!))
    }
    return (x, y)
}

/// This process's rank, for the failure line.
var currentRank = 0

@MainActor func run() throws {
    let overlap = try options["overlap"].map { v in
        guard let o = AllreduceOverlap(rawValue: v) else { fail("--overlap takes off, on or auto, got '\(v)'") }
        return o
    }
    // --overlap-rank R: rank R alone overlaps, the others do not (a setting the ranks must
    // share). The world starts once, so the rank comes from mpirun's environment.
    let overlapRank = options["overlap-rank"].flatMap(Int.init)
    let myRank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"].flatMap(Int.init)
    let world = mode == "mpi" ? try World.start(timeout: options["timeout"].flatMap(Double.init), fusionThreshold: options["fusion"].flatMap(Int.init),
                                                overlap: overlapRank.map { $0 == myRank ? .on : .off } ?? overlap) : nil
    let rank = world?.rank ?? 0
    currentRank = rank
    let g = Graph()
    g.seed = 100 + rank
    let x = try g.placeholder(.float32, shape: Shape(dims: [nil, features]), name: "x")
    let y = try g.placeholder(.int64, shape: Shape(dims: [nil]), name: "y")
    let h = try g.fullyConnected(x, 8, activation: .relu, scope: "hidden")
    let logits = try g.fullyConnected(h, classes, activation: .identity, scope: "logits")
    let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: y, logits: logits)
    let optimizer: Optimizer
    switch options["optimizer"] ?? "momentum" {
    case "sgd": optimizer = GradientDescentOptimizer(g, learningRate: 0.5)
    case "adam": optimizer = AdamOptimizer(g, learningRate: 0.05)
    case "momentum": optimizer = MomentumOptimizer(g, learningRate: 0.3, momentum: 0.9)
    case let other: fail("unknown optimizer '\(other)'")
    }
    let globalStep = try g.globalStep()
    // A different graph on one rank: it leaves the last variable out of training, so the lists
    // of gradients to allreduce differ while the variables (and their broadcast) agree.
    let varList = options["mismatch-rank"].flatMap(Int.init) == rank ? Array(g.trainableVariables.dropLast()) : nil
    let trainOp = world == nil ? try optimizer.minimize(loss, globalStep: globalStep, varList: varList)
                               : try DistributedOptimizer(optimizer).minimize(loss, globalStep: globalStep, varList: varList)
    let session = try Session(graph: g)
    try session.run(g.globalVariablesInitializer())
    try world?.broadcastGlobalVariables(session)
    let share = world?.shard(globalBatch) ?? 0..<globalBatch
    for k in 0..<steps {
        if let r = options["die-rank"].flatMap(Int.init), r == rank, intOption("die-step", 0) == k {
            if flags.contains("stall") { while true { sleep(1000) } }
            kill(getpid(), SIGKILL)
        }
        let (bx, by) = globalBatchData(k)
        let xs = try Tensor(shape: [share.count, features], scalars: Array(bx[(share.lowerBound * features)..<(share.upperBound * features)]))
        let ys = try Tensor(shape: [share.count], scalars: Array(by[share]))
        _ = try session.run([loss], feeds: [x: xs, y: ys], targets: [trainOp])
    }
    var text = ""
    for v in g.globalVariables.sorted(by: { $0.name < $1.name }) {
        guard let t = session.value(of: v) else { continue }
        text += v.name + " " + t.doubles.map { String(format: "%.9g", $0) }.joined(separator: " ") + "\n"
    }
    try FileManager.default.createDirectory(atPath: outDirectory, withIntermediateDirectories: true)
    try text.write(toFile: outDirectory + "/" + (world.map { "rank\($0.rank).txt" } ?? "single.txt"), atomically: true, encoding: .utf8)
    try world?.finalize()
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("DistributedWorker rank \(currentRank): \(error)\n".utf8))
    exit(3)
}
