import XCTest
import Foundation
import Kiln
import KilnTestSupport

/// ops_helpers.jsonl: the helper ops TensorFlow's gradient functions write into training graphs,
/// one forward case each, keyed by TensorFlow node type. Data inputs are fed through placeholders;
/// inputs TensorFlow's kernels read as shapes, axes or sizes (which Kiln folds while compiling)
/// are constants, as they are in gradient graphs.
extension GoldenOpsTests {
    static func op(_ g: Graph, _ type: String, _ inputs: [Output], _ attrs: [String: AttrValue] = [:], outputs: Int = 1) throws -> [Output] {
        var a = attrs
        if a["T"] == nil, let first = inputs.first { a["T"] = .type(first.dtype) }
        let node = try g.addOperation(type, inputs: inputs, attrs: a)
        return (0..<outputs).map { node.output($0) }
    }

    static func int32s(_ g: Graph, _ v: [Int], shape: [Int]? = nil) throws -> Output {
        try g.constant(Tensor(shape: shape ?? [v.count], scalars: v.map(Int32.init)))
    }

    /// The case's inputs that are constants in the graph (by position), not placeholders.
    static let helperConstantInputs: [String: Set<Int>] = [
        "ListDiff": [0, 1], "BroadcastArgs": [0, 1], "BroadcastGradientArgs": [0, 1], "Transpose": [1], "Tile": [1], "Reshape": [1], "Fill": [0],
    ]

    /// The generator's arguments for the cases whose file entry records only the output
    /// (DynamicStitch, Range, StridedSlice, StridedSliceGrad's dy, Fill's value): the strided
    /// slice is the one the StridedSliceGrad case names, dy is 0..<6.
    static let stridedSpec = (begin: [1, 4], end: [3, -6], strides: [1, -2], endMask: 2)

    nonisolated(unsafe) static let helperBuilders: [String: Builder] = [
        "ShapeN": { g, x, a in
            try op(g, "ShapeN", x, ["N": .int(x.count), "out_type": .type(Golden.dtype(string(a, "out_type") ?? "int32"))], outputs: x.count)
        },
        "ConcatOffset": { g, _, a in
            let shapes = try (a["shapes"] as! [[Any]]).map { try int32s(g, $0.map { ($0 as! NSNumber).intValue }) }
            return try op(g, "ConcatOffset", [int32s(g, [int(a, "concat_dim")!], shape: [])] + shapes, ["N": .int(shapes.count)], outputs: shapes.count)
        },
        "InvertPermutation": { g, x, _ in try op(g, "InvertPermutation", x) },
        "ListDiff": { g, x, _ in try op(g, "ListDiff", x, ["out_idx": .type(.int32)], outputs: 2) },
        "Cumsum": { g, x, a in try scanCase(g, "Cumsum", x[0], a) },
        "Cumprod": { g, x, a in try scanCase(g, "Cumprod", x[0], a) },
        "DynamicStitch": { g, _, _ in
            let indices = [try int32s(g, [0, 2]), try int32s(g, [1, 3, 4])]
            let data = [try g.constant([[1, 1], [2, 2]] as [[Float]]), try g.constant([[3, 3], [4, 4], [5, 5]] as [[Float]])]
            return try op(g, "DynamicStitch", indices + data, ["N": .int(2), "T": .type(.float32)])
        },
        "BroadcastArgs": { g, x, _ in try op(g, "BroadcastArgs", x) },
        "BroadcastGradientArgs": { g, x, _ in try op(g, "BroadcastGradientArgs", x, outputs: 2) },
        "UnsortedSegmentSum": { g, x, a in try op(g, "UnsortedSegmentSum", [x[0], x[1], int32s(g, [int(a, "num_segments")!], shape: [])]) },
        "UnsortedSegmentMax": { g, x, a in try op(g, "UnsortedSegmentMax", [x[0], x[1], int32s(g, [int(a, "num_segments")!], shape: [])]) },
        "Rank": { g, x, _ in [try g.rank(x[0])] },
        "Size": { g, x, _ in [try g.size(x[0])] },
        "ZerosLike": { g, x, _ in [try g.zerosLike(x[0])] },
        "OnesLike": { g, x, _ in [try g.onesLike(x[0])] },
        "Range": { g, _, _ in [try g.range(3, 20, 4, dtype: .int32)] },
        "Fill": { g, x, _ in try op(g, "Fill", [x[0], g.constant(Float(2.5))], ["T": .type(.float32), "index_type": .type(.int32)]) },
        "Reciprocal": { g, x, _ in [try g.reciprocal(x[0])] },
        "TensorScatterUpdate": { g, x, _ in try op(g, "TensorScatterUpdate", x, ["Tindices": .type(.int32)]) },
        "ScatterNd": { g, x, a in try op(g, "ScatterNd", [x[0], x[1], int32s(g, ints(a, "shape")!)], ["T": .type(x[1].dtype), "Tindices": .type(.int32)]) },
        "Where": { g, x, _ in [try g.whereIndices(x[0])] },
        "SelectV2": { g, x, _ in try op(g, "SelectV2", x, ["T": .type(x[1].dtype)]) },
        "ReverseV2": { g, x, a in try op(g, "ReverseV2", [x[0], int32s(g, ints(a, "axis")!)], ["Tidx": .type(.int32)]) },
        "MatrixBandPart": { g, x, a in
            let bound = { (k: String) in try g.constant(Tensor(Int64(int(a, k)!))) }
            return try op(g, "MatrixBandPart", [x[0], bound("num_lower"), bound("num_upper")], ["Tindex": .type(.int64)])
        },
        "Transpose": { g, x, _ in try op(g, "Transpose", x, ["Tperm": .type(.int32)]) },
        "Prod": { g, x, a in [try g.reduceProd(x[0], axes: axes(a, "axis"))] },
        "Tile": { g, x, _ in try op(g, "Tile", x, ["Tmultiples": .type(.int32)]) },
        "Reshape": { g, x, _ in try op(g, "Reshape", x, ["Tshape": .type(.int32)]) },
        "StridedSlice": { g, x, _ in
            let s = stridedSpec
            return [try g.stridedSlice(x[0], begin: s.begin, end: s.end, strides: s.strides, endMask: s.endMask)]
        },
        "StridedSliceGrad": { g, _, a in
            let dy = try g.constant(Tensor(shape: [2, 3], scalars: (0..<6).map(Float.init)))
            let inputs = try ["shape", "begin", "end", "strides"].map { try int32s(g, ints(a, $0)!) } + [dy]
            return try op(g, "StridedSliceGrad", inputs, ["T": .type(.float32), "Index": .type(.int32), "end_mask": .int(int(a, "end_mask") ?? 0)])
        },
        "Slice": { g, x, a in [try g.slice(x[0], begin: ints(a, "begin")!, size: ints(a, "size")!)] },
        "MirrorPadGrad": { g, x, a in
            let p = (a["paddings"] as! [[Any]]).flatMap { $0.map { ($0 as! NSNumber).intValue } }
            return try op(g, "MirrorPadGrad", [x[0], int32s(g, p, shape: [p.count / 2, 2])], ["mode": .string(string(a, "mode")!), "Tpaddings": .type(.int32)])
        },
    ]

    static func scanCase(_ g: Graph, _ type: String, _ x: Output, _ a: [String: Any]) throws -> [Output] {
        try op(g, type, [x, int32s(g, [int(a, "axis")!], shape: [])],
               ["exclusive": .bool(bool(a, "exclusive")), "reverse": .bool(bool(a, "reverse")), "Tidx": .type(.int32)])
    }

    /// Builds helper case `c` into `g`.
    static func buildHelper(_ c: [String: Any], in g: Graph, prefix: String) throws -> BuiltCase {
        let op = c["op"] as! String
        guard let build = helperBuilders[op] else { throw KilnError.unimplemented("no builder for helper op \(op)") }
        let inputs = try (c["inputs"] as! [[String: Any]]).map(Golden.tensor)
        let constants = helperConstantInputs[op] ?? []
        var feeds: [Output: Tensor] = [:]
        let nodes = try inputs.enumerated().map { i, t -> Output in
            if constants.contains(i) { return try g.constant(t, name: "\(prefix)in\(i)") }
            let p = try g.placeholder(t.dtype, shape: Shape(t.shape), name: "\(prefix)in\(i)")
            feeds[p] = t
            return p
        }
        let outs = try build(g, nodes, c["attrs"] as? [String: Any] ?? [:])
        return BuiltCase(fetches: outs, feeds: feeds, want: try (c["outputs"] as! [[String: Any]]).map(Golden.tensor),
                         rtol: ["Cumprod", "Prod"].contains(op) ? 1e-4 : 1e-5, staticShapes: true)
    }

    func testEveryHelperCaseMatchesTensorFlow() throws { try helperCases(on: Self.everyBackend()) }

    func testEveryHelperCaseMatchesTensorFlowOnGPU() throws { try helperCases(on: Self.gpuBackend("golden helper ops")) }

    func helperCases(on backends: Backends) throws {
        let cases = try Golden.lines("ops_helpers.jsonl")
        XCTAssertEqual(cases.count, 39)
        Self.checkCases(cases, label: "golden helper op", suite: "golden ops helpers", on: backends, batch: 20) {
            try Self.buildHelper($0, in: $1, prefix: $2)
        }
    }
}
