import KilnIR
import KilnKernels

/// The per-kernel time table printed at KILN_DEBUG=2.
enum KernelProfile {
    static func report(_ exe: any Executable) -> String {
        guard exe.profiledRuns > 0 else { return "profile of @\(exe.function.name): no runs" }
        let byID = Dictionary(uniqueKeysWithValues: exe.function.body.map { ($0.id, $0) })
        let total = exe.kernelNanoseconds.reduce(0, +)
        var rows: [(UInt64, String)] = []
        for (k, ns) in exe.kernelNanoseconds.enumerated() {
            let what: String
            if k < exe.plan.kernels.count, let v = exe.plan.kernels[k].value, let inst = byID[v] {
                what = "%\(inst.id) \(inst.op.mnemonic) \(inst.type?.description ?? "") (\(exe.plan.reasons[inst.id]?.description ?? "state update"))"
            } else { what = "result copies" }
            rows.append((ns, what))
        }
        var s = "profile of @\(exe.function.name): \(exe.profiledRuns) runs, \(String(format: "%.1f", Double(total) / Double(exe.profiledRuns) / 1000)) us per run"
        for (ns, what) in rows.sorted(by: { $0.0 > $1.0 }).prefix(Debug.level >= 3 ? rows.count : 25) {
            s += String(format: "\n  %8.1f us %5.1f%%  ", Double(ns) / Double(exe.profiledRuns) / 1000, 100 * Double(ns) / Double(max(total, 1))) + what
        }
        return s
    }
}
