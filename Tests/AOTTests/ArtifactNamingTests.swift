import KilnAOT
import XCTest

final class ArtifactNamingTests: XCTestCase {
    func testIdentifiersAreCSafeAndUnique() {
        XCTAssertEqual(ArtifactTensor.identifiers(for: ["x:0", "scope/x:1", "x", "3d", "a-b"]), ["x", "scope_x_1", "x_2", "_3d", "a_b"])
    }

    func testArtifactNamesMustBeCIdentifiers() {
        for bad in ["", "3x", "a-b", "int", "a__b"] { XCTAssertThrowsError(try ArtifactSpec.validate(name: bad), bad) }
        XCTAssertNoThrow(try ArtifactSpec.validate(name: "mnist_mlp"))
    }
}
