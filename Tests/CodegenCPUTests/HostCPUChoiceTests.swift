import XCTest
import KilnPasses
@testable import KilnCPU

/// The JIT's CPU model and vector width, chosen from an injected CPU name and feature string
/// (what LLVMGetHostCPUName and LLVMGetHostCPUFeatures report), with LLVM 15's own answers to
/// "is this a CPU you know" and "does this model imply that feature".
final class HostCPUChoiceTests: XCTestCase {
    let triple = "x86_64-pc-linux-gnu"
    static let v2 = ["cx16", "sahf", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3", "sse", "sse2"]
    static let v3 = ["avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"]
    static let avx512 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]

    /// LLVM's feature string: every listed feature on, every other AVX-512 one off.
    func features(_ on: [String]) -> String {
        (on.map { "+" + $0 } + Self.avx512.filter { !on.contains($0) }.map { "-" + $0 }).joined(separator: ",")
    }

    func target(_ reported: String, _ on: [String]) -> CPUTarget {
        let f = features(on)
        let c = HostCPUChoice.host(triple: triple, reported: reported, features: f)
        var t = CPUTarget(triple: triple, name: c.name, features: f)
        t.choice = c
        return t
    }

    func testANameLLVMDoesNotKnowFallsBackToTheLevelItsFeaturesSupportWithFullWidthVectors() {
        let t = target("diamondrapids-from-llvm-21", Self.v2 + Self.v3 + Self.avx512 + ["avx512vnni"])
        XCTAssertEqual(t.name, "x86-64-v4")
        XCTAssertEqual(t.choice?.reason.contains("does not know 'diamondrapids-from-llvm-21'"), true, t.summary)
        // The reported features travel as they are: the fallback loses none of them.
        XCTAssertTrue(t.featureSet.contains("avx512vnni"))
        XCTAssertEqual(t.preferredVectorBits, 512)
        XCTAssertEqual(t.description.vectorBytes, 64)
        XCTAssertNoThrow(try t.targetMachine())
    }

    func testAnUnknownNameWithoutAVX512GetsTheAVX2Level() {
        let t = target("some-future-core", Self.v2 + Self.v3)
        XCTAssertEqual(t.name, "x86-64-v3")
        XCTAssertEqual(t.preferredVectorBits, 256)
        XCTAssertEqual(t.description.vectorBytes, 32)
        XCTAssertEqual(target("", Self.v2).name, "x86-64-v2")
        XCTAssertEqual(target("generic", ["sse", "sse2"]).name, "x86-64")
    }

    /// An Intel part LLVM 15 reports as `icelake-client` whose AVX-512 the hypervisor masks: the
    /// model would claim AVX-512, so the AVX2 level stands in for it.
    func testAModelThatClaimsFeaturesTheCPULacksIsReplacedByTheLevel() {
        let t = target("icelake-client", Self.v2 + Self.v3)
        XCTAssertEqual(t.name, "x86-64-v3")
        XCTAssertEqual(t.choice?.reported, "icelake-client")
        XCTAssertEqual(t.choice?.reason.contains("implies avx512f"), true, t.summary)
        XCTAssertEqual(t.preferredVectorBits, 256)
        XCTAssertTrue(t.summary.contains("LLVM reports 'icelake-client'"), t.summary)
    }

    /// The same name on a CPU that has what the model says: kept, and vectorised at 512 bits
    /// although LLVM's Intel models prefer 256.
    func testAConsistentModelIsKeptAndVectorisedAtFullWidth() {
        let t = target("icelake-client", Self.v2 + Self.v3 + Self.avx512)
        XCTAssertEqual(t.name, "icelake-client")
        XCTAssertEqual(t.choice?.reason, "LLVM's model")
        XCTAssertEqual(t.preferredVectorBits, 512)
        XCTAssertEqual(t.description.vectorBytes, 64)
        XCTAssertTrue(t.description.name.contains("512-bit vectors"), t.description.name)
    }

    /// LLVM 15 reports an AMD Zen 4 as `znver3`, a model without AVX-512: the model stays (its
    /// tuning is the nearest), the CPU's AVX-512 comes from its features, and says so.
    func testAnOlderModelOfANewerCPUKeepsItsNameAndGainsTheFeatures() {
        let t = target("znver3", Self.v2 + Self.v3 + Self.avx512)
        XCTAssertEqual(t.name, "znver3")
        XCTAssertEqual(t.choice?.reason.contains("x86-64-v4 features it lacks added"), true, t.summary)
        XCTAssertEqual(t.preferredVectorBits, 512)
    }

    func testAMachineWithoutAVX512KeepsItsModelAnd256BitVectors() {
        let t = target("haswell", Self.v2 + Self.v3)
        XCTAssertEqual(t.name, "haswell")
        XCTAssertEqual(t.choice?.level, "x86-64-v3")
        XCTAssertEqual(t.preferredVectorBits, 256)
        XCTAssertEqual(t.description.vectorBytes, 32)
    }

    func testOffX86AnUnknownNameIsGeneric() {
        let c = HostCPUChoice.choose(triple: "aarch64-linux-gnu", reported: "apple-m9", features: "+neon", knows: { _ in false }, implies: { _, _ in false })
        XCTAssertEqual(c.name, "generic")
        XCTAssertNil(c.level)
    }

    /// The rule reads only what it is given: a name the injected LLVM knows and a model that
    /// implies everything is kept as it is.
    func testTheRuleUsesTheInjectedLLVMAnswers() {
        let f = features(Self.v2 + Self.v3)
        XCTAssertEqual(HostCPUChoice.choose(triple: triple, reported: "x", features: f, knows: { _ in true }, implies: { _, _ in false }).name, "x")
        XCTAssertEqual(HostCPUChoice.choose(triple: triple, reported: "x", features: f, knows: { _ in false }, implies: { _, _ in false }).name, "x86-64-v3")
        XCTAssertEqual(HostCPUChoice.choose(triple: triple, reported: "x", features: f, knows: { _ in true }, implies: { _, _ in true }).name, "x86-64-v3")
    }

    /// The host's own choice is one LLVM can build a target machine for.
    func testTheHostChoiceIsUsable() throws {
        let host = CPUTarget.host
        XCTAssertNotNil(host.choice)
        XCTAssertNoThrow(try host.targetMachine())
        XCTAssertEqual(host.preferredVectorBits, host.hasAVX512 ? 512 : host.featureSet.contains("avx") ? 256 : 128)
    }
}
