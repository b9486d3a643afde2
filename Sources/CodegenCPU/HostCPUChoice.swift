import CLLVM

/// How the JIT's CPU model is chosen from what the CPU reports (LLVMGetHostCPUName and
/// LLVMGetHostCPUFeatures, both from cpuid). LLVM 15 names CPUs newer than it by their nearest
/// older model (an AMD Zen 4 is `znver3`, which has no AVX-512) or a model of another line (an
/// Intel Xeon reported as `icelake-client`), and names it may not know at all come from newer
/// LLVMs. The reported features are always passed explicitly, so they, not the model, decide
/// what instructions are used; the model only tunes scheduling, unless it claims a feature the
/// CPU lacks (then the x86-64 level the features support stands in for it).
public struct HostCPUChoice: Hashable, Sendable {
    /// The name LLVM reported.
    public var reported: String
    /// The CPU model compiled for: `reported`, or the x86-64-v4/v3/v2 level its features support.
    public var name: String
    /// The x86-64 micro-architecture level the enabled features support (nil off x86).
    public var level: String?
    /// Why `name` was chosen, for `kiln devices` and KILN_DEBUG=1.
    public var reason: String

    /// Features each x86-64 level adds, as LLVM spells them (psABI levels; LLVM's X86.td).
    static let levels: [(name: String, features: [String])] = [
        ("x86-64-v2", ["cx16", "sahf", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3"]),
        ("x86-64-v3", ["avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"]),
        ("x86-64-v4", ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]),
    ]

    /// The highest level all of whose features (and every lower level's) are in `enabled`.
    static func level(of enabled: Set<String>) -> String {
        var best = "x86-64"
        for l in levels {
            guard l.features.allSatisfy(enabled.contains) else { break }
            best = l.name
        }
        return best
    }

    /// The choice for a CPU that reports `reported` and `features` (LLVM's "+f,-g,..." string).
    /// `knows(cpu)` says whether LLVM has the model; `implies(cpu, feature)` whether the model
    /// implies the feature. Both are injected so the rule is testable for any machine.
    public static func choose(triple: String, reported: String, features: String,
                              knows: (String) -> Bool, implies: (String, String) -> Bool) -> HostCPUChoice {
        let enabled = Set(features.split(separator: ",").filter { $0.hasPrefix("+") }.map { String($0.dropFirst()) })
        let disabled = Set(features.split(separator: ",").filter { $0.hasPrefix("-") }.map { String($0.dropFirst()) })
        let isX86 = triple.hasPrefix("x86_64") || triple.hasPrefix("amd64")
        guard isX86 else {
            return knows(reported) ? HostCPUChoice(reported: reported, name: reported, level: nil, reason: "LLVM's model")
                                   : HostCPUChoice(reported: reported, name: "generic", level: nil, reason: "LLVM 15 does not know '\(reported)'")
        }
        let level = level(of: enabled)
        if reported.isEmpty || reported == "generic" || !knows(reported) {
            return HostCPUChoice(reported: reported, name: level, level: level, reason: "LLVM 15 does not know '\(reported)': the level its features support")
        }
        // A model that claims what this CPU lacks (AVX-512 masked by a hypervisor, a client
        // model on a server part without one of its features) tunes for the wrong machine.
        let vectorFeatures = levels.flatMap(\.features)
        if let claimed = vectorFeatures.first(where: { disabled.contains($0) && implies(reported, $0) }) {
            return HostCPUChoice(reported: reported, name: level, level: level,
                                 reason: "'\(reported)' implies \(claimed), which this CPU lacks: the level its features support")
        }
        let beyond = levels.last { l in l.features.allSatisfy(enabled.contains) && !l.features.allSatisfy { implies(reported, $0) } }
        return HostCPUChoice(reported: reported, name: reported, level: level,
                             reason: beyond.map { "LLVM's model, with the \($0.name) features it lacks added from cpuid" } ?? "LLVM's model")
    }

    /// The choice for this machine, from LLVM's own queries.
    static func host(triple: String, reported: String, features: String) -> HostCPUChoice {
        choose(triple: triple, reported: reported, features: features,
               knows: { kiln_llvm_cpu_is_valid(triple, $0) == 1 },
               implies: { kiln_llvm_cpu_has_features(triple, $0, "", "+" + $1) == 1 })
    }
}
