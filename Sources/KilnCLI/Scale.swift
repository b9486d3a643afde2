import ArgumentParser
import Foundation
import Kiln

/// `kiln scale`: how build and compile time grow with graph size. Each workload is built at
/// several sizes and timed in phases (graph construction, gradients where they apply, the first
/// Session.run, which compiles); time per op that stays flat as the size grows is linear scaling.
struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time graph construction, gradients and the first run (compile) of long chains and wide concats.",
        discussion: "Each workload is built at each size: elementwise chains, their gradients, concats of many inputs.")

    static let workloadNames = ["chain", "gradient", "concat"]

    @Option(help: ArgumentHelp("The graph sizes in ops.", valueName: "N[,N...]"), transform: { value in
        let sizes = commaList(value).map { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else { throw ValidationError("--sizes takes positive integers, got '\(value)'") }
        return sizes.map { $0! }
    })
    var sizes: [Int] = [1000, 10000, 20000]

    @Option(help: ArgumentHelp("The workloads to run.", valueName: "chain|gradient|concat[,...]"), transform: { value in
        let names = commaList(value)
        guard !names.isEmpty, names.allSatisfy(Scale.workloadNames.contains) else {
            throw ValidationError("--only takes chain, gradient and concat, got '\(value)'")
        }
        return names
    })
    var only: [String] = Scale.workloadNames

    struct Row {
        var workload: String
        var ops: Int
        var build: Double
        var gradients: Double?
        var firstRun: Double
    }

    func run() throws {
        FileHandle.standardOutput.write(Data("kiln scale: wall clock of one cold build and first run per size (compile included)\n".utf8))
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        func secs(_ t: Double?) -> String { t.map { String(format: "%.3fs", $0) } ?? "-" }
        FileHandle.standardOutput.write(Data((["workload".padding(toLength: 20, withPad: " ", startingAt: 0), pad("ops", 8), pad("build", 10),
                                               pad("gradients", 10), pad("first run", 10), pad("total", 10), pad("us/op total", 12)].joined(separator: " ") + "\n").utf8))
        for n in sizes {
            let runs: [(String, (Int) throws -> Row)] = [("chain", Scale.chain), ("gradient", Scale.gradientChain), ("concat", Scale.concat)]
            for (name, run) in runs where only.contains(name) {
                let row = try run(n)
                let total = row.build + (row.gradients ?? 0) + row.firstRun
                // Unbuffered, so a long run shows each row as it finishes.
                FileHandle.standardOutput.write(Data(([row.workload.padding(toLength: 20, withPad: " ", startingAt: 0), pad("\(row.ops)", 8), pad(secs(row.build), 10),
                       pad(secs(row.gradients), 10), pad(secs(row.firstRun), 10), pad(secs(total), 10),
                       pad(String(format: "%.1f", total / Double(row.ops) * 1e6), 12)].joined(separator: " ") + "\n").utf8))
            }
        }
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
    }

    /// x = x * 1.0001 + 0.5, n ops; the answer is checked against the same recurrence in Double.
    static func chainGraph(_ x: Output, ops n: Int) throws -> Output {
        var y = x
        for k in 0..<n { y = k % 2 == 0 ? try y * 1.0001 : try y + 0.5 }
        return y
    }

    static func expectedChain(_ x: Float, ops n: Int) -> Float {
        var y = x
        for k in 0..<n { y = k % 2 == 0 ? y * 1.0001 : y + 0.5 }
        return y
    }

    static func check(_ ok: Bool, _ what: String) throws {
        guard ok else { throw KilnError.internalError("kiln scale: wrong answer for \(what)") }
    }

    static func chain(_ n: Int) throws -> Row {
        let g = Graph()
        var x: Output!, y: Output!
        let build = try seconds {
            x = try g.placeholder(.float32, shape: [nil], name: "x")
            y = try chainGraph(x, ops: n)
        }
        let sess = try Session(graph: g)
        var r: Tensor!
        let run = try seconds { r = try sess.run(y, feeds: [x: try Tensor(shape: [4], scalars: [0, 1, 2, 3] as [Float])]) }
        let got = try r.scalars(as: Float.self)
        try check(abs(got[1] - expectedChain(1, ops: n)) <= 1e-3 * abs(expectedChain(1, ops: n)), "chain \(n)")
        return Row(workload: "eltwise_chain", ops: n, build: build, firstRun: run)
    }

    static func gradientChain(_ n: Int) throws -> Row {
        let g = Graph()
        var x: Output!, y: Output!, dx: Output!
        let build = try seconds {
            x = try g.placeholder(.float32, shape: [nil], name: "x")
            y = try chainGraph(x, ops: n)
        }
        let grads = try seconds { dx = try g.gradients([y], [x])[0]! }
        let sess = try Session(graph: g)
        var r: Tensor!
        let run = try seconds { r = try sess.run(dx, feeds: [x: try Tensor(shape: [4], scalars: [0, 1, 2, 3] as [Float])]) }
        let want = Float(pow(1.0001, Double((n + 1) / 2)))
        try check(abs(try r.scalars(as: Float.self)[0] - want) <= 1e-3 * want, "gradient chain \(n)")
        return Row(workload: "gradient_chain", ops: n, build: build, gradients: grads, firstRun: run)
    }

    /// ConcatV2 of n inputs of shape [?, 2] along axis 1.
    static func concat(_ n: Int) throws -> Row {
        let g = Graph()
        var x: Output!, y: Output!
        let build = try seconds {
            x = try g.placeholder(.float32, shape: [nil, 2], name: "x")
            y = try g.concat(Array(repeating: x, count: n), axis: 1)
        }
        let sess = try Session(graph: g)
        var r: Tensor!
        let run = try seconds { r = try sess.run(y, feeds: [x: try Tensor(shape: [3, 2], scalars: [0, 1, 2, 3, 4, 5] as [Float])]) }
        let got = try r.scalars(as: Float.self)
        try check(r.shape == [3, 2 * n] && got[2 * n] == 2 && got[2 * n + 1] == 3, "concat \(n)")
        return Row(workload: "concat_unknown_dim", ops: n, build: build, firstRun: run)
    }
}
