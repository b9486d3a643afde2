import Foundation
import XCTest
@testable import KilnAOT
import KilnCPU
import KilnIR
import KilnTestSupport

/// Objects for other CPUs: an aarch64 object linked with Debian's cross gcc and run under qemu
/// gives the host backend's outputs; other triples give ELF objects of their machine.
final class ObjectCrossTargetTests: XCTestCase {
    /// Skips, saying which package to install, unless `tool` is on PATH (scripts/setup.sh
    /// installs both on CI).
    func require(_ tool: String, package: String) throws {
        if ToolRunner.find(tool) == nil {
            let note = "SKIPPED: \(tool) is missing; install it with `apt-get install \(package)` (scripts/setup.sh does)"
            FileHandle.standardError.write(Data("\(note)\n".utf8))
            throw XCTSkip(note)
        }
    }

    func testAArch64ObjectRunsUnderQemuWithTheHostsOutputs() throws {
        try require("aarch64-linux-gnu-gcc", package: "gcc-aarch64-linux-gnu")
        try require("qemu-aarch64", package: "qemu-user")
        let target = try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: nil)
        for (name, ir) in [("arm_elem", ObjectArtifactTests.elementwise), ("arm_consts", ObjectArtifactTests.withConstants)] {
            let program = try ObjectProgram(ir, name: name, target: target, compiler: "aarch64-linux-gnu-gcc")
            defer { program.remove() }
            XCTAssertEqual(Array(program.object[18..<20]), [183, 0], "EM_AARCH64")
            let result = try program.run(runner: ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
            XCTAssertEqual(result.code, 0, result.output)
            XCTAssertEqual(result.lastError, 0, result.output)
            try assertClose(result.fetches, try program.expected(), tolerance: 1e-6)
        }
    }

    func testANamedArmCPUCompilesForIt() throws {
        let a72 = try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: "cortex-a72")
        let program = try ObjectProgram(ObjectArtifactTests.elementwise, name: "a72", target: a72, build: false)
        defer { program.remove() }
        XCTAssertEqual(Array(program.object[18..<20]), [183, 0])
    }

    /// ELF class (32/64-bit), byte order and machine of each target's object, 64-bit and 32-bit,
    /// little- and big-endian (whose constants are stored byte-swapped).
    func testOtherTriplesGiveObjectsForTheirMachine() throws {
        let cases: [(triple: String, elfClass: UInt8, bigEndian: Bool, machine: UInt16)] = [
            ("riscv64-linux-gnu", 2, false, 243), ("armv7-linux-gnueabihf", 1, false, 40),
            ("powerpc64le-linux-gnu", 2, false, 21), ("s390x-linux-gnu", 2, true, 22), ("i686-linux-gnu", 1, false, 3),
        ]
        for c in cases {
            let target = try CPUTarget.resolve(triple: c.triple, cpu: nil)
            let program = try ObjectProgram(ObjectArtifactTests.withConstants, name: "cross", target: target, build: false)
            defer { program.remove() }
            let o = program.object
            XCTAssertEqual(Array(o[0..<4]), [0x7F, 0x45, 0x4C, 0x46], c.triple)
            XCTAssertEqual(o[4], c.elfClass, c.triple)
            XCTAssertEqual(o[5], c.bigEndian ? 2 : 1, c.triple)
            let machine = c.bigEndian ? UInt16(o[18]) << 8 | UInt16(o[19]) : UInt16(o[19]) << 8 | UInt16(o[18])
            XCTAssertEqual(machine, c.machine, c.triple)
            // Each table constant's first elements, in the target's byte order.
            for t in program.layout.plan.constants {
                let width = t.dtype.byteSize
                let host = t.withUnsafeBytes { Array($0.prefix(4 * width)) }
                let want = c.bigEndian ? stride(from: 0, to: host.count, by: width).flatMap { host[$0..<$0 + width].reversed() } : host
                XCTAssertNotNil(find(want, in: o), "\(c.triple): constant \(t.dtype) in target byte order")
            }
        }
    }

    /// 4.8 GB of tanh(a) kept for the product cannot be the arena of a 32-bit program.
    func testAnArenaBeyondA32BitAddressSpaceIsRefused() throws {
        let ir = """
        func @big(%0: f32[40000,30000] feed "a", %1: f32[30000,2] feed "b") {
          %2 = tanh %0
          %3 = dot %2, %1
          return %3
        }
        """
        let target = try CPUTarget.resolve(triple: "i686-linux-gnu", cpu: nil)
        XCTAssertThrowsError(try ObjectProgram(ir, name: "big", target: target, build: false, inputs: [])) { error in
            XCTAssertEqual((error as? KilnError)?.code, .resourceExhausted, "\(error)")
            XCTAssertTrue("\(error)".contains("32-bit"), "\(error)")
        }
    }

    func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<$0 + needle.count].elementsEqual(needle) }
    }
}
