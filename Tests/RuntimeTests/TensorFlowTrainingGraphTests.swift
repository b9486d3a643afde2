import Foundation
import XCTest
import Kiln

/// A training graph TensorFlow wrote (scripts/make_helper_training_graph.py): cumsum, cumprod,
/// a strided slice, mirror padding, reverse, concat, unsorted segment sum and max, a gather, a
/// product and a fused batch norm, differentiated by tf.gradients, so it holds the helper ops
/// TensorFlow's gradient functions emit (ConcatOffset, ShapeN, ListDiff, InvertPermutation,
/// DynamicStitch, DivNoNan, StridedSliceGrad, MirrorPadGrad, FusedBatchNormGradV3, ...) with the
/// batch dimension unknown. Kiln imports and runs it, and must match the loss, gradients and
/// one descent step TensorFlow computed.
final class TensorFlowTrainingGraphTests: XCTestCase {
    private static var fixtures: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures/helper_training")
    }

    private static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("expected.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// |a - b| <= 1e-5 + 1e-4·|b| per element: float32 through a dozen reductions and scans.
    private static func check(_ got: Tensor, _ want: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, want.shape, what, file: file, line: line)
        if let m = Golden.mismatch(got, want, rtol: 1e-4) { XCTFail("\(what): \(m)", file: file, line: line) }
    }

    func testTensorFlowTrainingGraphWithGradientHelperOpsMatchesTensorFlow() throws {
        let want = try Self.expected()
        let g = Graph()
        try g.importGraphDef(contentsOf: Self.fixtures.appendingPathComponent("graph.pb").path, prefix: "")
        let types = Set(g.operations.map(\.type))
        for helper in ["ConcatOffset", "ShapeN", "ListDiff", "InvertPermutation", "DynamicStitch", "Cumsum", "Cumprod", "DivNoNan",
                       "StridedSliceGrad", "MirrorPadGrad", "UnsortedSegmentSum", "UnsortedSegmentMax", "ReverseV2", "FusedBatchNormGradV3"] {
            XCTAssertTrue(types.contains(helper), "the fixture graph no longer contains \(helper)")
        }
        var feeds: [Output: Tensor] = [:]
        for (name, t) in want["feeds"] as! [String: [String: Any]] { feeds[try g.tensor(named: name)] = try Golden.tensor(t) }
        let sess = try Session(graph: g)
        try sess.run(g.operation(named: want["init"] as! String)!)

        let before = want["before_step"] as! [String: [String: Any]]
        let names = before.keys.sorted()
        let got = try sess.run(names.map { try g.tensor(named: $0) }, feeds: feeds)
        for (name, value) in zip(names, got) { Self.check(value, try Golden.tensor(before[name]!), "before the step: \(name)") }

        try sess.run(g.operation(named: want["train"] as! String)!, feeds: feeds)
        let after = want["after_step"] as! [String: [String: Any]]
        let afterNames = after.keys.sorted()
        let values = try sess.run(afterNames.map { try g.tensor(named: $0) }, feeds: feeds)
        for (name, value) in zip(afterNames, values) { Self.check(value, try Golden.tensor(after[name]!), "after one step: \(name)") }
    }
}
