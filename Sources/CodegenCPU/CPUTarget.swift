import CLLVM
import CKilnRT
import KilnIR
import KilnPasses
#if canImport(Glibc)
import Glibc
#endif

/// The CPU that LLVM compiles for: its triple, CPU name and LLVM feature string, and the code
/// model. `.host` is exactly the machine this process runs on, which is what the JIT needs.
public struct CPUTarget: Hashable, Sendable {
    public enum CodeModel: String, Hashable, Sendable {
        /// What LLVM picks for code it loads into this process.
        case jitDefault, small, kernel, medium, large
    }

    public var triple: String
    /// LLVM's CPU name, e.g. "skylake-avx512".
    public var name: String
    /// LLVM's feature string, e.g. "+avx2,+avx512f,-sse4a,...".
    public var features: String
    public var codeModel: CodeModel
    /// How `.host` chose `name` from what the CPU reports (nil for a target named explicitly).
    public var choice: HostCPUChoice?

    public init(triple: String, name: String, features: String, codeModel: CodeModel = .jitDefault) {
        self.triple = triple
        self.name = name
        self.features = features
        self.codeModel = codeModel
    }

    /// This machine: the features LLVM detects, and the CPU model `HostCPUChoice` picks from
    /// the name LLVM reports.
    public static let host: CPUTarget = {
        func take(_ p: UnsafeMutablePointer<CChar>) -> String {
            defer { LLVMDisposeMessage(p) }
            return String(cString: p)
        }
        let triple = take(LLVMGetDefaultTargetTriple()), features = take(LLVMGetHostCPUFeatures())
        let choice = HostCPUChoice.host(triple: triple, reported: take(LLVMGetHostCPUName()), features: features)
        var target = CPUTarget(triple: triple, name: choice.name, features: features)
        target.choice = choice
        return target
    }()

    /// The vector width loops are vectorised for (LLVM's prefer-vector-width): every bit the CPU
    /// has. LLVM's models of AVX-512 CPUs prefer 256 bits (against the clock drop of early
    /// Xeons), which halves the rate of the streaming kernels that are most of Kiln's work.
    public var preferredVectorBits: Int {
        let f = featureSet
        return f.contains("avx512f") ? 512 : f.contains("avx") ? 256 : 128
    }

    /// One line for `kiln devices` and KILN_DEBUG=1: the model compiled for, why, and the vectors.
    public var summary: String {
        var s = "\(name)"
        if let c = choice {
            s += c.reported == name ? "" : " (LLVM reports '\(c.reported)')"
            s += ": \(c.reason)"
            if let level = c.level, !c.reason.contains(level) { s += "; features of \(level)" }
        }
        return s + "; \(preferredVectorBits)-bit vectors"
    }

    /// The features turned on ("+avx512f" gives "avx512f").
    public var featureSet: Set<String> {
        Set(features.split(separator: ",").filter { $0.hasPrefix("+") }.map { String($0.dropFirst()) })
    }

    public var hasAVX512: Bool { featureSet.contains("avx512f") }

    /// What the scheduler may assume about this CPU. Kiln's own float32 product (kiln_sgemm)
    /// runs small products on the pool where the runtime has it (it needs AVX-512F);
    /// `KILN_GEMM=blas` sends every product to OpenBLAS and `KILN_GEMM=kiln` every float32 one
    /// to Kiln's, for comparisons.
    public var description: TargetDescription {
        let features = featureSet
        let vectorBytes = features.contains("avx512f") ? 64 : features.contains("avx2") ? 32 : 16
        let gemm = getenv("KILN_GEMM").map { String(cString: $0) }
        var d = TargetDescription(name: "llvm \(triple.split(separator: "-").first.map(String.init) ?? triple) \(summary)",
                                  vectorBytes: vectorBytes, ownProducts: kiln_sgemm_available() != 0 && gemm != "blas")
        d.directConvolutions = d.ownProducts
        if gemm == "kiln" { d.ownProductRange = 0...Int.max }
        return d
    }

    var llvmCodeModel: LLVMCodeModel {
        switch codeModel {
        case .jitDefault: return LLVMCodeModelJITDefault
        case .small: return LLVMCodeModelSmall
        case .kernel: return LLVMCodeModelKernel
        case .medium: return LLVMCodeModelMedium
        case .large: return LLVMCodeModelLarge
        }
    }

    /// A target machine for this CPU, generating code at `level` (PIC for artifacts, which
    /// Debian's gcc links as position-independent executables by default).
    func targetMachine(relocation: LLVMRelocMode = LLVMRelocDefault, level: LLVMCodeGenOptLevel = LLVMCodeGenLevelAggressive) throws -> LLVMTargetMachineRef {
        initializeNativeTarget()
        // Another triple (an artifact's) needs LLVM's other targets; the JIT registers only its own.
        if triple != CPUTarget.host.triple { kiln_llvm_initialize_all_targets() }
        var target: LLVMTargetRef?
        var err: UnsafeMutablePointer<CChar>?
        if LLVMGetTargetFromTriple(triple, &target, &err) != 0 {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("LLVM target \(triple): \(String(cString: err!))")
        }
        return LLVMCreateTargetMachine(target, triple, name, features, level, relocation, llvmCodeModel)
    }
}
