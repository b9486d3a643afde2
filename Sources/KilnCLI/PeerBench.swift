import Foundation
import Kiln
import KilnC
import KilnKernels

/// `kiln bench --peers`: Kiln's workloads beside the same workloads in TensorFlow 1 (graph mode),
/// XLA (TensorFlow's auto-clustering), JAX and ONNX Runtime, run by the peers' scripts
/// (scripts/peers, embedded in the binary by the EmbedSources plugin) with the user's Python.
/// Each peer's script stays running and is asked for a round of samples after each round of
/// Kiln's, so a noisy neighbour slows both alike; the figures are medians of the rounds' medians,
/// and every ratio comes from the same run. None of the peers is a dependency of Kiln: a Python
/// or a package that is missing makes the peers it concerns skipped, with the reason.
enum PeerBench {
    /// One peer: the label in the table, the embedded script and its arguments.
    struct Peer {
        var label: String
        var script: String
        var arguments: [String] = []
    }

    /// Every peer, in the order the table lists them (the input pipeline's scripts measure only
    /// the input_pipeline_Nt workloads).
    static let peers = [
        Peer(label: "tf1", script: "tf1.py"),
        Peer(label: "xla", script: "tf1.py", arguments: ["--xla"]),
        Peer(label: "jax", script: "jax_peer.py"),
        Peer(label: "onnxruntime", script: "onnxruntime_peer.py"),
        Peer(label: "tf1", script: "input_pipeline.py"),
        Peer(label: "tf.data", script: "input_pipeline.py", arguments: ["--tf-data"]),
    ]

    /// What a peer's script says first: what it measures and how, or why it cannot run.
    enum Hello: Equatable {
        case ready(version: String, threads: Int, workloads: [String], methods: [String: String])
        case skipped(String)
    }

    /// The hello line (nil: the script ended without one; its stderr is in `log`).
    static func hello(_ line: String?, log: String) -> Hello {
        guard let line else { return .skipped("the script exited before it said what it measures (its messages: \(log))") }
        guard let o = json(line) else { return .skipped("the script's first line is not JSON: \(line.prefix(120))") }
        if let reason = o["skipped"] as? String { return .skipped(reason) }
        guard let version = o["version"] as? String, let workloads = o["workloads"] as? [String] else {
            return .skipped("the script's hello names no version or workloads: \(line.prefix(120))")
        }
        return .ready(version: version, threads: o["threads"] as? Int ?? 0, workloads: workloads, methods: o["method"] as? [String: String] ?? [:])
    }

    /// A round's answer: the median of its samples in seconds, or the peer's error.
    static func answer(_ line: String?, workload: String) -> Result<Double, PeerFailure> {
        guard let line else { return .failure(PeerFailure("the script exited")) }
        guard let o = json(line), o["workload"] as? String == workload else { return .failure(PeerFailure("unexpected answer: \(line.prefix(120))")) }
        if let error = o["error"] as? String { return .failure(PeerFailure(error)) }
        guard let median = o["median"] as? Double, median > 0, median.isFinite else { return .failure(PeerFailure("no median in: \(line.prefix(120))")) }
        return .success(median)
    }

    struct PeerFailure: Error, Equatable {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    static func json(_ line: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }

    /// The Python the scripts run with: --python, else KILN_PEERS_PYTHON, else python3 on PATH;
    /// the reason when there is none.
    static func python(option: String?, environment: [String: String]) -> Result<String, PeerFailure> {
        if let option { return ToolProcess.find(option, path: environment["PATH"] ?? "").map { .success($0) } ?? .failure(PeerFailure("--python \(option) is not an executable")) }
        if let env = environment["KILN_PEERS_PYTHON"], !env.isEmpty {
            return ToolProcess.find(env, path: environment["PATH"] ?? "").map { .success($0) } ?? .failure(PeerFailure("KILN_PEERS_PYTHON=\(env) is not an executable"))
        }
        return ToolProcess.find("python3", path: environment["PATH"] ?? "").map { .success($0) }
            ?? .failure(PeerFailure("no python3 on PATH (give --python PATH or KILN_PEERS_PYTHON)"))
    }

    /// One workload beside one peer: the rounds' medians of each (seconds), or why there are none.
    struct Row {
        var workload: String
        var peer: String
        var peerMedians: [Double] = []
        var kilnMedians: [Double] = []
        var failure: String?
    }

    /// Samples per round for a workload (Kiln's count where its bench fixes one: a pass of the
    /// input pipeline is seconds, and compile_mlp_sgd times 3 compiles in --quick mode).
    static func samples(_ workload: String, _ perRound: Int) -> Int {
        workload.hasPrefix("input_pipeline") || DigitsTrainBench.names.contains(workload) ? 1 : workload.hasPrefix("compile_") ? 3 : perRound
    }

    static func run(_ bench: Bench, python option: String?) throws {
        let rounds = bench.quick ? 3 : 5, perRound = bench.quick ? 3 : 5
        let threads = NativeRuntime.threads
        print("kiln bench --peers: host \(MachineLimits.cpuName), \(ProcessInfo.processInfo.activeProcessorCount) cores, Kiln's pool \(threads) threads, backend \(Bench.backend.rawValue)")
        print("method: \(rounds) rounds; a round runs Kiln's workload as `kiln bench` does (Session.run after warm-up; the median of \(perRound) samples,")
        print("        each the mean of a batch of runs below 1 ms; compile_*, digits_train and input_pipeline_* as noted), then each peer's,")
        print("        timed the same way by its script (scripts/peers/*.py, embedded in kiln; each documents how to run it by hand), with")
        print("        \(threads) intra-op threads (inter-op 1); figures are medians of the rounds' medians; peer/kiln above 1: Kiln is faster")

        let progress = ProgressLine()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-peers-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in PeerScripts.files { try f.text.write(to: dir.appendingPathComponent(f.name), atomically: true, encoding: .utf8) }

        // Every peer starts at once (importing TensorFlow takes seconds); each says what it measures.
        var running: [(peer: Peer, session: ToolProcess.LineSession, workloads: [String], methods: [String: String])] = []
        var skipped: [(Peer, String)] = []
        switch python(option: option, environment: ProcessInfo.processInfo.environment) {
        case .failure(let why): skipped = peers.map { ($0, why.reason) }
        case .success(let py):
            print("python: \(py)")
            progress.update("starting the peers' scripts ...", force: true)
            var environment = ProcessInfo.processInfo.environment
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
            var started: [(Peer, ToolProcess.LineSession, String)] = []
            for (i, p) in peers.enumerated() {
                let log = dir.appendingPathComponent("peer\(i).log").path
                let argv = [py, dir.appendingPathComponent(p.script).path, "--serve", "--threads", "\(threads)"] + p.arguments
                do { started.append((p, try ToolProcess.LineSession(argv, environment: environment, log: log, naming: p.script), log)) } catch {
                    skipped.append((p, "\(error)"))
                }
            }
            for (p, s, log) in started {
                switch hello(s.readLine(), log: log) {
                case .skipped(let why):
                    skipped.append((p, why))
                    s.terminate()
                case let .ready(version, peerThreads, workloads, methods):
                    print("peer \(p.label) \(version): \(peerThreads) intra-op threads (\(([p.script] + p.arguments).joined(separator: " ")))")
                    running.append((p, s, workloads, methods))
                }
            }
        }
        defer { for r in running { r.session.close() } }
        for (p, why) in skipped { print("peer \(p.label) (\(p.script)\(p.arguments.isEmpty ? "" : " " + p.arguments.joined(separator: " "))): skipped, \(why)") }

        // The workloads some peer measures, in the order of Kiln's table, then the others.
        let offered = running.flatMap(\.workloads)
        let known = Bench.workloadNames.filter { offered.contains($0) }
        let all = (known + offered.filter { !known.contains($0) }).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            .filter { bench.wanted($0) }
        // The input pipelines last: their reader threads refill the queues after a pass, which
        // would slow whatever is measured next.
        let names = all.filter { !$0.hasPrefix("input_pipeline") } + all.filter { $0.hasPrefix("input_pipeline") }
        var rows: [Row] = []
        var kilnMissing: Set<String> = []
        for (n, name) in names.enumerated() {
            let group = Bench.workloads.first { $0.names.contains(name) }
            if group == nil { kilnMissing.insert(name) }
            var kiln: [Double] = []
            var peerRows = running.filter { $0.workloads.contains(name) }.map { Row(workload: name, peer: $0.peer.label) }
            for round in 1...rounds {
                progress.update("[\(n + 1)/\(names.count)] \(name): round \(round) of \(rounds) ...", force: true)
                if let group, let r = try group.run(samples(name, perRound), true).first(where: { $0.name == name }) { kiln.append(r.median) }
                for (i, peer) in running.filter({ $0.workloads.contains(name) }).enumerated() where peerRows[i].failure == nil {
                    peer.session.writeLine(#"{"workload": "\#(name)", "samples": \#(samples(name, perRound))}"#)
                    switch answer(peer.session.readLine(), workload: name) {
                    case .success(let m): peerRows[i].peerMedians.append(m)
                    case .failure(let f): peerRows[i].failure = f.reason
                    }
                }
            }
            for i in peerRows.indices { peerRows[i].kilnMedians = kiln }
            rows += peerRows
        }
        progress.clear()
        for line in table(rows, kilnMissing: kilnMissing) { print(line) }
        if !rows.isEmpty { print("\nwhat each peer runs:") }
        for r in running { for name in names where r.workloads.contains(name) { print("  \(name) / \(r.peer.label): \(r.methods[name] ?? "?")") } }
        if let path = bench.json {
            try Bench.write(json: ["peers": rows.map(record), "skipped": skipped.map { ["peer": $0.0.label, "script": $0.0.script, "reason": $0.1] }], to: path)
        }
    }

    /// A row as --json writes it.
    static func record(_ r: Row) -> [String: Any] {
        let peer = r.peerMedians.isEmpty ? nil : Timing.median(r.peerMedians), kiln = r.kilnMedians.isEmpty ? nil : Timing.median(r.kilnMedians)
        return ["workload": r.workload, "peer": r.peer, "peer_median_ms": peer.map { $0 * 1e3 } as Any? ?? NSNull(),
                "kiln_median_ms": kiln.map { $0 * 1e3 } as Any? ?? NSNull(),
                "peer_over_kiln": (peer != nil && kiln != nil && r.failure == nil ? peer! / kiln! : nil) as Any? ?? NSNull(),
                "failure": r.failure as Any? ?? NSNull()]
    }

    /// The table: each workload's Kiln median once, then a line per peer with its median and
    /// the ratio of the two (peer/kiln above 1: Kiln is faster).
    static func table(_ rows: [Row], kilnMissing: Set<String>) -> [String] {
        var lines = ["", "workload               peer            peer median   kiln median   peer/kiln"]
        for r in rows {
            let name = r.workload.padding(toLength: 22, withPad: " ", startingAt: 0), peer = r.peer.padding(toLength: 14, withPad: " ", startingAt: 0)
            let kiln = r.kilnMedians.isEmpty ? nil : Timing.median(r.kilnMedians)
            let kilnText = kiln.map { Bench.fmt($0) } ?? "          -"
            if let failure = r.failure {
                lines.append("\(name) \(peer)       failed \(kilnText)   \(failure)")
                continue
            }
            let peerMedian = Timing.median(r.peerMedians)
            var ratio = ""
            if let kiln {
                let q = peerMedian / kiln
                ratio = String(format: "%8.2fx  ", q) + (q >= 1 ? String(format: "Kiln %.2fx faster", q) : String(format: "Kiln %.2fx slower", 1 / q))
            } else if kilnMissing.contains(r.workload) {
                ratio = "   kiln has no workload \(r.workload)"
            }
            lines.append("\(name) \(peer) \(Bench.fmt(peerMedian)) \(kilnText)   \(ratio)")
        }
        if rows.isEmpty { lines.append("(no peer measured any selected workload)") }
        return lines
    }
}
