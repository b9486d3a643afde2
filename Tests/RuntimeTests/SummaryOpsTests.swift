import Foundation
import XCTest
@testable import KilnRuntime
import KilnFrontend
import KilnIR
import Kiln

/// The summary ops' values against TensorFlow's definitions (summary_op.cc, histogram.cc,
/// summary_image_op.cc): tags, buckets, PNG pixels, merging.
final class SummaryOpsTests: XCTestCase {
    private func summary(_ sess: Session, _ x: Output, feeds: [Output: Tensor] = [:]) throws -> Tensorflow_Summary {
        let t = try sess.run(x, feeds: feeds)
        XCTAssertEqual(t.dtype, .string)
        XCTAssertEqual(t.shape, [])
        return try Tensorflow_Summary(serializedBytes: t.strings[0])
    }

    func testScalarSummaryTagsAreTheScopedUniqueOpNames() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([]), name: "x")
        let a = try g.summary.scalar("loss", x)
        let b = try g.nameScope("train") { try g.summary.scalar("loss", x * 2) }
        let c = try g.summary.scalar("loss", g.cast(x, to: .int32))
        let d = try g.summary.scalar("bad name!", x)
        XCTAssertEqual([a, b, c, d].map(\.op.name), ["loss", "train/loss", "loss_1", "bad_name_"])
        XCTAssertEqual(a.op.type, "ScalarSummary")
        let sess = try Session(graph: g)
        let feeds = [x: Tensor(Float(1.75))]
        for (s, (tag, value)) in zip([a, b, c, d], [("loss", Float(1.75)), ("train/loss", 3.5), ("loss_1", 1), ("bad_name_", 1.75)]) {
            let got = try summary(sess, s, feeds: feeds)
            XCTAssertEqual(got.value.count, 1)
            XCTAssertEqual(got.value[0].tag, tag)
            XCTAssertEqual(got.value[0].simpleValue, value)
        }
        XCTAssertThrowsError(try g.summary.scalar("v", g.constant([Float(1), 2]))) { XCTAssertEqual(($0 as? KilnError)?.code, .invalidArgument) }
    }

    func testScalarSummaryOfMatchingTagAndValueVectors() throws {
        let g = Graph()
        let tags = try g.constant(Tensor(shape: [2], strings: [Array("a".utf8), Array("b".utf8)]))
        let s = try g.addOperation("ScalarSummary", inputs: [tags, g.constant([2.5, -1.0])], attrs: ["T": .type(.float64)]).output()
        let got = try summary(try Session(graph: g), s)
        XCTAssertEqual(got.value.map(\.tag), ["a", "b"])
        XCTAssertEqual(got.value.map(\.simpleValue), [2.5, -1])
        XCTAssertThrowsError(try g.addOperation("ScalarSummary", inputs: [tags, g.constant([Float(1), 2, 3])])) { error in
            XCTAssertTrue("\(error)".contains("tags and values not the same shape"), "\(error)")
        }
    }

    /// Buckets by the definition: a value counts in the first bucket whose limit exceeds it;
    /// runs of empty buckets are collapsed into their last limit.
    func testHistogramBucketsFollowTensorFlowsDefinitionOnChosenValues() throws {
        let values: [Double] = [0, 0, 1, -1, 1e-13, 2.5, 2.5, 2.5, -3e7, 1e19]
        let g = Graph()
        let h = try g.summary.histogram("weights", g.constant(values))
        let got = try summary(try Session(graph: g), h)
        XCTAssertEqual(got.value.count, 1)
        XCTAssertEqual(got.value[0].tag, "weights")
        guard case .histo(let histo)? = got.value[0].value else { return XCTFail("not a histogram: \(got)") }
        XCTAssertEqual(histo.num, Double(values.count))
        XCTAssertEqual(histo.min, -3e7)
        XCTAssertEqual(histo.max, 1e19)
        XCTAssertEqual(histo.sum, values.reduce(0, +))
        XCTAssertEqual(histo.sumSquares, values.reduce(0) { $0 + $1 * $1 })

        // The reference, written out: edges 1e-12 * 1.1^k to 1e20, DBL_MAX, mirrored, and 0.
        var positive: [Double] = []
        var v = 1e-12
        while v < 1e20 { positive.append(v); v *= 1.1 }
        positive.append(.greatestFiniteMagnitude)
        let limits = positive.reversed().map { -$0 } + [0] + positive
        XCTAssertEqual(limits.count, 1551, "774 edges below 1e20 and DBL_MAX, mirrored, and 0")
        var counts = [Double](repeating: 0, count: limits.count)
        for x in values { counts[limits.firstIndex { $0 > x }!] += 1 }
        var wantLimits: [Double] = [], wantCounts: [Double] = []
        for i in counts.indices {
            // An empty bucket followed by another empty one is merged into the later one.
            if counts[i] == 0 && i + 1 < counts.count && counts[i + 1] == 0 { continue }
            wantLimits.append(limits[i])
            wantCounts.append(counts[i])
        }
        XCTAssertEqual(histo.bucketLimit, wantLimits)
        XCTAssertEqual(histo.bucket, wantCounts)
        // 0 and 1e-13 both land in the bucket (0, 1e-12] (0 is the limit of the one before).
        XCTAssertEqual(histo.bucket[histo.bucketLimit.firstIndex(of: 1e-12)!], 3)
    }

    func testHistogramOfNaNIsTensorFlowsError() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, name: "x")
        let h = try g.summary.histogram("h", x)
        let sess = try Session(graph: g)
        XCTAssertThrowsError(try sess.run(h, feeds: [x: Tensor(shape: [2], scalars: [Float(1), .nan])])) { error in
            XCTAssertEqual((error as? KilnError)?.code, .invalidArgument)
            XCTAssertEqual((error as? KilnError)?.message, "Nan in summary histogram for: h")
        }
        XCTAssertThrowsError(try sess.run(h, feeds: [x: Tensor(shape: [1], scalars: [-Float.infinity])])) { error in
            XCTAssertEqual((error as? KilnError)?.message, "Infinity in summary histogram for: h")
        }
    }

    func testUInt8ImagesArePNGsThatDecodeToTheInputPixels() throws {
        var rng = KilnIR.SplitMix64(seed: 3)
        for channels in [1, 3, 4] {
            let (n, h, w) = (4, 5, 7)
            let pixels = (0..<(n * h * w * channels)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let g = Graph()
            let images = try Tensor(shape: [n, h, w, channels], scalars: pixels)
            let s = try g.summary.image("digits", g.constant(images))
            let got = try summary(try Session(graph: g), s)
            XCTAssertEqual(got.value.map(\.tag), ["digits/image/0", "digits/image/1", "digits/image/2"], "max_outputs 3 of 4")
            for (i, v) in got.value.enumerated() {
                XCTAssertEqual([v.image.height, v.image.width, v.image.colorspace], [Int32(h), Int32(w), Int32(channels)])
                let png = [UInt8](v.image.encodedImageString)
                XCTAssertEqual(Array(png.prefix(8)), PNG.signature)
                let size = h * w * channels
                let want = PNG.Image(width: w, height: h, channels: channels, pixels: Array(pixels[(i * size)..<((i + 1) * size)]))
                XCTAssertEqual(try PNG.decode(png), want)
            }
        }
    }

    func testFloatImagesAreScaledAsTensorFlowScalesThem() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape(dims: [nil, 1, 4, 1]), name: "x")
        let one = try g.summary.image("one", x, maxOutputs: 1)
        let sess = try Session(graph: g)
        func pixels(_ values: [Float]) throws -> [UInt8] {
            let s = try summary(sess, one, feeds: [x: Tensor(shape: [1, 1, 4, 1], scalars: values)])
            XCTAssertEqual(s.value.map(\.tag), ["one/image"], "one image requested: no index")
            return try PNG.decode([UInt8](s.value[0].image.encodedImageString)).pixels
        }
        // Non-negative: scaled by 255 / max, truncated.
        XCTAssertEqual(try pixels([0, 0.25, 0.5, 1]), [0, 63, 127, 255])
        XCTAssertEqual(try pixels([0, 1, 2, 4]), [0, 63, 127, 255])
        // With negatives: 127 / max|x| around 128.
        XCTAssertEqual(try pixels([-2, -1, 0, 1]), [1, 64, 128, 191])
        // All (near) zero: scale 0.
        XCTAssertEqual(try pixels([0, 0, 0, 1e-7]), [0, 0, 0, 0])

        // A non-finite pixel becomes bad_color (opaque red: its first channel in gray) and is left out of the range.
        let rgb = try g.placeholder(.float64, shape: Shape([1, 1, 2, 3]), name: "rgb_pixels")
        let s = try g.summary.image("rgb", rgb)
        let got = try summary(sess, s, feeds: [rgb: Tensor(shape: [1, 1, 2, 3], scalars: [0.5, 1, 0, .nan, 9, 9])])
        XCTAssertEqual(got.value.map(\.tag), ["rgb/image/0"])
        XCTAssertEqual(try PNG.decode([UInt8](got.value[0].image.encodedImageString)).pixels, [127, 255, 0, 255, 0, 0])
        XCTAssertEqual(try pixels([.infinity, 0, 2, 4]), [255, 0, 127, 255])
    }

    func testImageSummaryRejectsWhatTensorFlowRejects() throws {
        let g = Graph()
        XCTAssertThrowsError(try g.summary.image("x", g.constant(Tensor(zeros: .float32, shape: [1, 2, 2, 2])))) { error in
            XCTAssertTrue("\(error)".contains("Tensor must be 4-D with last dim 1, 3, or 4"), "\(error)")
        }
        XCTAssertThrowsError(try g.summary.image("y", g.constant(Tensor(zeros: .int32, shape: [1, 2, 2, 1]))))
        let x = try g.placeholder(.uint8, name: "any")
        let s = try g.summary.image("z", x)
        XCTAssertThrowsError(try Session(graph: g).run(s, feeds: [x: Tensor(zeros: .uint8, shape: [2, 2, 1])])) { error in
            XCTAssertEqual((error as? KilnError)?.code, .invalidArgument, "\(error)")
        }
    }

    func testTextSummaryCarriesTheTextPluginAndTheStrings() throws {
        let g = Graph()
        let notes = try g.constant(Tensor(shape: [2], strings: [Array("**lr** 0.003".utf8), Array("batch 64".utf8)]))
        let s = try g.summary.text("notes", notes)
        XCTAssertEqual(s.op.type, "TensorSummaryV2")
        let got = try summary(try Session(graph: g), s)
        XCTAssertEqual(got.value.count, 1)
        XCTAssertEqual(got.value[0].tag, "notes")
        XCTAssertEqual(got.value[0].metadata.pluginData.pluginName, "text")
        XCTAssertEqual(got.value[0].tensor.dtype, .dtString)
        XCTAssertEqual(got.value[0].tensor.stringVal, [Data("**lr** 0.003".utf8), Data("batch 64".utf8)])
        XCTAssertEqual(try Tensor(proto: got.value[0].tensor), try Tensor(shape: [2], strings: [Array("**lr** 0.003".utf8), Array("batch 64".utf8)]))
        XCTAssertThrowsError(try g.summary.text("n", g.constant(Float(1))))
    }

    func testMergeAllMergesTheSummariesCollectionAndRejectsDuplicateTags() throws {
        let g = Graph()
        XCTAssertNil(try g.summary.mergeAll())
        // Named apart from the summaries: a summary named like an op ("Mean") would be "mean_1".
        let x = try g.placeholder(.float32, shape: Shape([3]), name: "input")
        try g.summary.scalar("average", g.reduceMean(x))
        try g.summary.histogram("x", x)
        try g.summary.scalar("elsewhere", g.reduceSum(x), collections: ["other"])
        let merged = try XCTUnwrap(g.summary.mergeAll())
        XCTAssertEqual(merged.op.name, "Merge/MergeSummary")
        let sess = try Session(graph: g)
        let got = try summary(sess, merged, feeds: [x: Tensor(shape: [3], scalars: [Float(1), 2, 6])])
        XCTAssertEqual(got.value.map(\.tag), ["average", "x"])
        XCTAssertEqual(got.value[0].simpleValue, 3)
        XCTAssertEqual(got.value[1].histo.num, 3)
        let other = try XCTUnwrap(g.summary.mergeAll(key: "other", name: "extra"))
        XCTAssertEqual(other.op.name, "extra/extra")
        XCTAssertEqual(try summary(sess, other, feeds: [x: Tensor(shape: [3], scalars: [Float(1), 2, 6])]).value.map(\.simpleValue), [9])

        let twice = try g.summary.merge([merged, merged])
        XCTAssertThrowsError(try sess.run(twice, feeds: [x: Tensor(shape: [3], scalars: [Float(1), 2, 6])])) { error in
            XCTAssertEqual((error as? KilnError)?.message, "Duplicate tag average found in summary inputs ")
        }
        let garbage = try g.constant(Tensor(shape: [], strings: [[0xFF, 0xFF]]))
        XCTAssertThrowsError(try sess.run(g.summary.merge([garbage]))) { error in
            XCTAssertEqual((error as? KilnError)?.message, "Could not parse one of the summary inputs")
        }
    }

    /// A graph with summaries, exported as a GraphDef and imported again (as one TensorFlow
    /// wrote would be), gives the same Summary bytes.
    func testSummaryOpsRoundTripThroughAGraphDef() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([1, 2, 2, 1]), name: "pixels")
        try g.summary.scalar("total", g.reduceSum(x))
        try g.summary.histogram("values", x)
        try g.summary.image("picture", x)
        try g.summary.text("note", g.constant(Tensor("hello")))
        let merged = try XCTUnwrap(g.summary.mergeAll())
        let imported = Graph()
        try imported.importGraphDef(g.graphDef(), prefix: "")
        let feed = try Tensor(shape: [1, 2, 2, 1], scalars: [Float(0), 0.5, 1, 2])
        let want = try Session(graph: g).run(merged, feeds: [x: feed])
        let got = try Session(graph: imported).run(imported.tensor(named: merged.name), feeds: [imported.tensor(named: "pixels:0"): feed])
        XCTAssertEqual(got, want)
        XCTAssertEqual(try Tensorflow_Summary(serializedBytes: got.strings[0]).value.count, 4)
    }

    func testPNGDecoderRejectsDamage() throws {
        var png = try PNG.encode(PNG.Image(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4]))
        XCTAssertEqual(try PNG.decode(png).pixels, [1, 2, 3, 4])
        png[png.count - 20] ^= 1
        XCTAssertThrowsError(try PNG.decode(png)) { XCTAssertEqual(($0 as? KilnError)?.code, .dataLoss) }
        XCTAssertThrowsError(try PNG.decode(Array(png.prefix(10)))) { XCTAssertEqual(($0 as? KilnError)?.code, .dataLoss) }
    }
}
