import Foundation
import XCTest

/// The golden fixtures are copies of ../shared/golden; these tests keep the copies honest.
final class GoldenFixtureSyncTests: XCTestCase {
    private var listed: [String] {
        get throws {
            let text = try String(contentsOf: Golden.sourceFixtures.appendingPathComponent("golden-files.txt"), encoding: .utf8)
            return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }.sorted()
        }
    }

    /// Every file under Fixtures/golden, relative to it, sorted.
    private func fixtureFiles() throws -> [String] {
        let root = Golden.sourceFixtures.appendingPathComponent("golden")
        guard let e = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var out: [String] = []
        while let name = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path, isDirectory: &isDir), !isDir.boolValue {
                out.append(name)
            }
        }
        return out.sorted()
    }

    func testTheFixturesAreExactlyTheListedFiles() throws {
        XCTAssertEqual(try fixtureFiles(), try listed, "Fixtures/golden differs from Fixtures/golden-files.txt: run `make fixtures`")
    }

    func testEveryFixtureIsByteIdenticalToItsSourceInSharedGolden() throws {
        let shared = Golden.sharedDirectory
        guard FileManager.default.fileExists(atPath: shared.path) else {
            let note = "SKIPPED: no \(shared.path) beside the repository, so the golden fixtures cannot be compared with their source (a clone has none; the committed copies are used as they are)"
            FileHandle.standardError.write(Data("warning: \(note)\n".utf8))
            throw XCTSkip(note)
        }
        for name in try listed {
            let fixture = Golden.sourceFixtures.appendingPathComponent("golden/\(name)")
            let source = shared.appendingPathComponent(name)
            guard let want = FileManager.default.contents(atPath: source.path) else {
                XCTFail("\(source.path) is gone but still listed in golden-files.txt"); continue
            }
            XCTAssertEqual(FileManager.default.contents(atPath: fixture.path), want,
                           "Fixtures/golden/\(name) differs from \(source.path): run `make fixtures`")
        }
    }

    /// The tests read the copies from the test bundle; a stale bundle would hide a changed fixture.
    func testTheTestsReadTheFixturesThroughTheBundle() throws {
        guard ProcessInfo.processInfo.environment["KILN_GOLDEN_DIR"] == nil else { throw XCTSkip("KILN_GOLDEN_DIR overrides the fixtures") }
        for name in try listed {
            XCTAssertEqual(FileManager.default.contents(atPath: Golden.directory.appendingPathComponent(name).path),
                           FileManager.default.contents(atPath: Golden.sourceFixtures.appendingPathComponent("golden/\(name)").path), name)
        }
    }
}
