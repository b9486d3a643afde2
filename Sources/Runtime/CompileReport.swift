import KilnIR
import KilnPasses
import KilnKernels

/// The compile summary of KILN_DEBUG=1 (and the fusion decisions at 2).
enum CompileReport {
    static func describe(_ exe: any Executable, level: Int) -> [String] {
        let plan = exe.plan
        let byID = Dictionary(uniqueKeysWithValues: exe.function.body.map { ($0.id, $0) })
        var lines: [String] = []
        for (n, kernel) in plan.kernels.enumerated() {
            guard let k = kernel.value, let inst = byID[k] else { continue }
            let group = Array(Set(plan.fused[k] ?? [])).sorted().compactMap { id in byID[id].map { "%\(id) \($0.op.mnemonic)" } }
            var line = "  kernel \(n): %\(k) \(inst.op.mnemonic) \(inst.type?.description ?? "")"
            if !group.isEmpty { line += " fuses [\(group.joined(separator: ", "))]" }
            if level >= 2, let why = plan.reasons[k] { line += " -- own kernel because: \(why)" }
            lines.append(line)
        }
        return lines
    }
}
