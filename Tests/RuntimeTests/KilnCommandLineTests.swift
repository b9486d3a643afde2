import Foundation
import XCTest

/// The `kiln` command line as swift-argument-parser reads it: the root's help lists every
/// subcommand, each subcommand has its own help, and a command line that cannot be read is a
/// usage error (exit 64, EX_USAGE) naming the problem with the subcommand's usage line.
final class KilnCommandLineTests: KilnBinaryTestCase {
    func testRootHelpListsEverySubcommandAndNoArgumentsPrintsIt() throws {
        for args in [[], ["--help"], ["help"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("USAGE: kiln <subcommand>"), "\(args): \(r.stdout)")
            for command in ["bench", "scale", "devices", "run", "compile"] {
                XCTAssertTrue(r.stdout.contains("\n  \(command) "), "'\(command)' missing from \(args): \(r.stdout)")
            }
        }
    }

    func testEachSubcommandsHelpShowsItsFlags() throws {
        let expected: [String: [String]] = [
            "bench": ["--quick", "--only <NAME[,NAME...]>", "--json <FILE>", "--device </gpu:N>", "--backend <llvm|c>"],
            "scale": ["--sizes <N[,N...]>", "--only <chain|gradient|concat[,...]>"],
            "run": ["--feed <NAME=FILE.npy>", "--fetch <NAME>", "--out <DIR>", "--allow-soft-placement", "--log-device-placement"],
            "compile": ["--feed <NAME=DTYPE[d0,d1,...]>", "--name <NAME>", "--checkpoint <PREFIX>", "--target <TRIPLE>", "--cpu <CPU>",
                        "--emit <object|c>", "(default: object)"],
        ]
        for (command, flags) in expected {
            let r = try run([command, "--help"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("USAGE: kiln \(command)"), r.stdout)
            for f in flags { XCTAssertTrue(r.stdout.contains(f), "'\(f)' missing from kiln \(command) --help: \(r.stdout)") }
        }
    }

    func testUsageErrorsExit64WithTheMessageAndTheSubcommandsUsage() throws {
        let cases: [(args: [String], mentions: [String])] = [
            (["frobnicate"], ["Unexpected argument 'frobnicate'", "Usage: kiln <subcommand>"]),
            (["scale", "--sizes", "10,-3"], ["--sizes takes positive integers, got '10,-3'", "Usage: kiln scale"]),
            (["scale", "--only", "chain,loop"], ["--only takes chain, gradient and concat, got 'chain,loop'"]),
            (["scale", "--sizes"], ["Missing value for '--sizes <N[,N...]>'"]),
            (["devices", "extra"], ["Unexpected argument 'extra'", "Usage: kiln devices"]),
            (["run", "g.pb", "--fetch"], ["Missing value for '--fetch <NAME>'"]),
        ]
        for c in cases {
            let r = try run(c.args)
            XCTAssertEqual(r.status, 64, "\(c.args): \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "\(c.args)")
            for m in c.mentions { XCTAssertTrue(r.stderr.contains(m), "'\(m)' missing from stderr of \(c.args): \(r.stderr)") }
        }
    }

    func testOptionValuesMayFollowAnEqualsSign() throws {
        let r = try run(["scale", "--sizes=0"])
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertTrue(r.stderr.contains("--sizes takes positive integers, got '0'"), r.stderr)
    }
}
