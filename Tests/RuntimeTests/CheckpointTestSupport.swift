import Foundation
import XCTest
import Kiln

extension Golden {
    static var checkpointDirectory: String { directory.appendingPathComponent("checkpoint").path }

    /// variables.json's values for one golden checkpoint ("model.ckpt-20"), by key.
    static func checkpointVariables(_ checkpoint: String) throws -> [String: Tensor] {
        let data = try Data(contentsOf: directory.appendingPathComponent("checkpoint/variables.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let ckpt = (json["checkpoints"] as! [String: Any])[checkpoint] as! [String: Any]
        return try (ckpt["variables"] as! [String: [String: Any]]).mapValues(Golden.tensor)
    }
}

/// A fresh temporary directory per test, removed afterwards.
class ScratchDirectoryTestCase: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(type(of: self))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    func files() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() }
}
