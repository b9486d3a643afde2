import CLLVM
import Foundation
import KilnIR
import KilnPasses
#if canImport(Glibc)
import Glibc
#endif

/// Targets of ahead-of-time artifacts: any triple LLVM 15 was built with, any CPU it knows for
/// that triple. The JIT's `CPUTarget.host` is untouched by this file.
extension CPUTarget {
    /// The target `kiln compile --target TRIPLE --cpu CPU` names (nil: the host's triple; the
    /// host's CPU for the host's triple, a generic CPU for another), validated against LLVM.
    /// Artifacts use the small code model (and PIC, chosen when the object is written).
    public static func resolve(triple: String?, cpu: String?) throws -> CPUTarget {
        kiln_llvm_initialize_all_targets()
        let host = CPUTarget.host
        let normalized: String
        if let triple {
            let t = triple.trimmingCharacters(in: .whitespaces)
            guard !t.isEmpty else { throw KilnError.invalidArgument("the target triple is empty; LLVM has these targets: \(llvmTargetNames().joined(separator: ", "))") }
            normalized = take(LLVMNormalizeTargetTriple(t))
            var target: LLVMTargetRef?
            var err: UnsafeMutablePointer<CChar>?
            if LLVMGetTargetFromTriple(normalized, &target, &err) != 0 || target == nil {
                let why = err.map { String(cString: $0) } ?? "no target"
                LLVMDisposeMessage(err)
                throw KilnError.invalidArgument("unknown target triple '\(triple)' (\(why)); LLVM has these targets: \(llvmTargetNames().joined(separator: ", ")) (e.g. --target aarch64-linux-gnu)")
            }
            guard LLVMTargetHasTargetMachine(target) != 0, LLVMTargetHasAsmBackend(target) != 0 else {
                throw KilnError.invalidArgument("LLVM cannot write object files for target triple '\(triple)' (target \(String(cString: LLVMGetTargetName(target))))")
            }
        } else {
            normalized = host.triple
        }
        let isHost = sameMachine(normalized, host.triple)
        var resolved: CPUTarget
        switch cpu?.trimmingCharacters(in: .whitespaces) {
        case nil:
            // The host's CPU and its detected features for the host's triple; a foreign triple
            // gets the baseline every CPU of it runs.
            resolved = isHost ? CPUTarget(triple: normalized, name: host.name, features: host.features)
                              : CPUTarget(triple: normalized, name: "generic", features: "")
        case let name?:
            guard !name.isEmpty else { throw KilnError.invalidArgument("the CPU name is empty (--cpu); \(cpuSuggestions(for: "", triple: normalized))") }
            let valid = kiln_llvm_cpu_is_valid(normalized, name)
            if valid < 0 { throw KilnError.invalidArgument("unknown target triple '\(normalized)'") }
            guard valid == 1 else {
                throw KilnError.invalidArgument("unknown CPU '\(name)' for target \(normalized); \(cpuSuggestions(for: name, triple: normalized))")
            }
            // A named CPU implies its features: the host's detected ones would claim what that
            // CPU may not have.
            resolved = CPUTarget(triple: normalized, name: name, features: "")
        }
        resolved.codeModel = .small
        return resolved
    }

    /// What the planner assumes for an artifact on this CPU: vectors as wide as the CPU's
    /// (its named CPU's features count, not only the explicit ones), and every float32 product
    /// on Kiln's own kernel (no OpenBLAS in an artifact).
    public var artifactDescription: TargetDescription {
        var d = description
        d.vectorBytes = artifactVectorBytes
        d.ownProducts = true
        d.ownProductRange = 0...Int.max
        return d
    }

    /// Bytes of the widest vector registers the CPU has: x86 AVX-512F 64, AVX2 32, otherwise 16
    /// (SSE2, NEON and the other targets' baseline).
    var artifactVectorBytes: Int {
        let arch = triple.split(separator: "-").first.map(String.init) ?? ""
        guard arch == "x86_64" || arch == "i386" || arch == "i686" else { return 16 }
        if hasFeatures("+avx512f") { return 64 }
        if hasFeatures("+avx2") { return 32 }
        return 16
    }

    /// Whether the subtarget (CPU name and feature string) has every feature of `query`.
    func hasFeatures(_ query: String) -> Bool {
        kiln_llvm_cpu_has_features(triple, name, features, query) == 1
    }

    /// Pointer width in bits on this target (size_t in the artifact's C ABI).
    public var pointerBits: Int {
        get throws {
            let tm = try targetMachine()
            defer { LLVMDisposeTargetMachine(tm) }
            let data = LLVMCreateTargetDataLayout(tm)!
            defer { LLVMDisposeTargetData(data) }
            return Int(LLVMPointerSize(data)) * 8
        }
    }

    /// Whether two normalised triples name the same machine: the vendor field is ignored
    /// (x86_64-pc-linux-gnu and x86_64-unknown-linux-gnu run the same code).
    static func sameMachine(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        let x = a.split(separator: "-", omittingEmptySubsequences: false), y = b.split(separator: "-", omittingEmptySubsequences: false)
        guard x.count == y.count, x.count >= 3 else { return false }
        return x[0] == y[0] && Array(x[2...]) == Array(y[2...])
    }

    /// LLVM's registered targets by name (x86-64, aarch64, ...), sorted.
    static func llvmTargetNames() -> [String] {
        kiln_llvm_initialize_all_targets()
        var names: [String] = []
        var t = LLVMGetFirstTarget()
        while let target = t {
            names.append(String(cString: LLVMGetTargetName(target)))
            t = LLVMGetNextTarget(target)
        }
        return names.sorted()
    }

    /// The processors LLVM knows for a triple, in its order.
    static func cpuNames(triple: String) -> [String] {
        guard let p = kiln_llvm_cpu_names(triple) else { return [] }
        defer { free(p) }
        return String(cString: p).split(separator: "\n").map(String.init)
    }

    /// "valid CPUs include a, b, c (N in all)": the names closest to the one given first.
    static func cpuSuggestions(for name: String, triple: String) -> String {
        let all = cpuNames(triple: triple)
        guard !all.isEmpty else { return "LLVM lists no CPUs for this target" }
        let lower = name.lowercased()
        let scored: [(name: String, distance: Int)] = all.map { ($0, editDistance(lower, $0.lowercased())) }
        let ranked = scored.sorted { (a: (name: String, distance: Int), b: (name: String, distance: Int)) -> Bool in
            a.distance != b.distance ? a.distance < b.distance : a.name < b.name
        }
        let nearest: [String] = ranked.prefix(6).map { $0.name }
        return "valid CPUs include \(nearest.joined(separator: ", ")) (\(all.count) in all)"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}

private func take(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    defer { LLVMDisposeMessage(p) }
    return String(cString: p)
}
