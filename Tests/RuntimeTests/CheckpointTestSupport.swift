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
