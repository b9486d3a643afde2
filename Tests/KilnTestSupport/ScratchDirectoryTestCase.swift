import Foundation
import XCTest

/// A fresh temporary directory per test, removed afterwards.
open class ScratchDirectoryTestCase: XCTestCase {
    public var scratch: URL!

    override open func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(type(of: self))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override open func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    public func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    public func files() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() }
}
