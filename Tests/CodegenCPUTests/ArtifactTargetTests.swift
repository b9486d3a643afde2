import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU

/// `kiln compile --target/--cpu`: triples and CPUs as LLVM knows them, refused with the names a
/// user can pick from, and the planner's view of each.
final class ArtifactTargetTests: XCTestCase {
    func invalidArgument(_ body: @autoclosure () throws -> CPUTarget, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let t = try body()
            XCTFail("resolved \(t), want an error", file: file, line: line)
            return ""
        } catch let e as KilnError {
            XCTAssertEqual(e.code, .invalidArgument, "\(e)", file: file, line: line)
            return e.message
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return ""
        }
    }

    func testNoTripleNoCPUIsTheHostWithItsDetectedFeatures() throws {
        let t = try CPUTarget.resolve(triple: nil, cpu: nil)
        XCTAssertEqual(t.triple, CPUTarget.host.triple)
        XCTAssertEqual(t.name, CPUTarget.host.name)
        XCTAssertEqual(t.features, CPUTarget.host.features)
        XCTAssertEqual(t.codeModel, .small)
        // The JIT's host target is untouched.
        XCTAssertEqual(CPUTarget.host.codeModel, .jitDefault)
    }

    func testTheHostTripleSpelledAnotherWayIsStillTheHost() throws {
        let arch = CPUTarget.host.triple.split(separator: "-")[0]
        let t = try CPUTarget.resolve(triple: "\(arch)-linux-gnu", cpu: nil)
        XCTAssertEqual(t.triple, "\(arch)-unknown-linux-gnu")
        XCTAssertEqual(t.name, CPUTarget.host.name)
    }

    func testForeignTripleIsNormalisedWithAGenericCPU() throws {
        let t = try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: nil)
        XCTAssertEqual(t.triple, "aarch64-unknown-linux-gnu")
        XCTAssertEqual(t.name, "generic")
        XCTAssertEqual(t.features, "")
        XCTAssertEqual(t.codeModel, .small)
        XCTAssertEqual(try t.pointerBits, 64)
        XCTAssertEqual(try CPUTarget.resolve(triple: "armv7-linux-gnueabihf", cpu: nil).pointerBits, 32)
    }

    func testUnknownTripleIsNamedWithTheTargetsLLVMHas() {
        let message = invalidArgument(try CPUTarget.resolve(triple: "sparkle64-linux-gnu", cpu: nil))
        XCTAssertTrue(message.contains("'sparkle64-linux-gnu'"), message)
        XCTAssertTrue(message.contains("aarch64"), message)
        XCTAssertTrue(message.contains("x86-64"), message)
        XCTAssertTrue(invalidArgument(try CPUTarget.resolve(triple: "", cpu: nil)).contains("empty"))
    }

    func testUnknownCPUNamesTripleCPUAndTheNearestValidOnes() {
        let x86 = invalidArgument(try CPUTarget.resolve(triple: "x86_64-linux-gnu", cpu: "skylake-avx"))
        XCTAssertTrue(x86.contains("'skylake-avx'"), x86)
        XCTAssertTrue(x86.contains("x86_64-unknown-linux-gnu"), x86)
        XCTAssertTrue(x86.contains("skylake-avx512"), x86)
        let arm = invalidArgument(try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: "cortex-a99"))
        XCTAssertTrue(arm.contains("'cortex-a99'") && arm.contains("aarch64-unknown-linux-gnu"), arm)
        XCTAssertTrue(arm.contains("cortex-a"), arm)
        // A CPU of another architecture is not one of this triple's.
        let mixed = invalidArgument(try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: "skylake-avx512"))
        XCTAssertTrue(mixed.contains("'skylake-avx512'"), mixed)
        XCTAssertFalse(invalidArgument(try CPUTarget.resolve(triple: nil, cpu: "")).isEmpty)
    }

    func testANamedCPUGetsItsOwnFeaturesNotTheHosts() throws {
        let skx = try CPUTarget.resolve(triple: nil, cpu: "skylake-avx512")
        XCTAssertEqual(skx.name, "skylake-avx512")
        XCTAssertEqual(skx.features, "")
        XCTAssertEqual(skx.artifactDescription.vectorBytes, 64)
        XCTAssertEqual(try CPUTarget.resolve(triple: "x86_64-linux-gnu", cpu: "haswell").artifactDescription.vectorBytes, 32)
        XCTAssertEqual(try CPUTarget.resolve(triple: "x86_64-linux-gnu", cpu: "x86-64").artifactDescription.vectorBytes, 16)
        let a72 = try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: "cortex-a72")
        XCTAssertEqual(a72.name, "cortex-a72")
        XCTAssertEqual(a72.artifactDescription.vectorBytes, 16)
    }

    func testArtifactsRunEveryFloat32ProductOnKilnsOwnKernel() throws {
        for t in [try CPUTarget.resolve(triple: nil, cpu: nil), try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: nil)] {
            let d = t.artifactDescription
            XCTAssertTrue(d.ownProducts)
            XCTAssertEqual(d.ownProductRange, 0...Int.max)
            XCTAssertTrue(d.ownProduct(m: 1, n: 1, k: 1))
        }
        let host = try CPUTarget.resolve(triple: nil, cpu: nil)
        let want = CPUTarget.host.featureSet.contains("avx512f") ? 64 : CPUTarget.host.featureSet.contains("avx2") ? 32 : 16
        XCTAssertEqual(host.artifactDescription.vectorBytes, want)
        XCTAssertEqual(try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: nil).artifactDescription.vectorBytes, 16)
    }
}
