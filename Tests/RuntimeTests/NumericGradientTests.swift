import XCTest
import Foundation
import Kiln

/// Deterministic numbers for test inputs (SplitMix64), so a failure reproduces exactly.
struct TestRandom {
    var source: SplitMix64
    init(_ seed: UInt64) { source = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { source.next() }

    mutating func uniform(_ lo: Double = 0, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) / Double(1 << 53)
    }

    /// A float64 tensor uniform in [lo, hi).
    mutating func tensor(_ shape: [Int], _ lo: Double = -1, _ hi: Double = 1) throws -> Tensor {
        try Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in uniform(lo, hi) })
    }

    /// Uniform values kept at least `margin` away from each of `kinks` (for ops with corners).
    mutating func tensor(_ shape: [Int], _ lo: Double, _ hi: Double, awayFrom kinks: [Double], margin: Double = 0.05) throws -> Tensor {
        try Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
            var v = uniform(lo, hi)
            while kinks.contains(where: { Swift.abs($0 - v) < margin }) { v = uniform(lo, hi) }
            return v
        })
    }

    /// Shuffled values `lo + k*gap`: all distinct by at least `gap`, so max/min never tie.
    mutating func distinct(_ shape: [Int], lo: Double = -1, gap: Double = 0.1) throws -> Tensor {
        var v = (0..<shape.reduce(1, *)).map { lo + Double($0) * gap }
        for i in stride(from: v.count - 1, to: 0, by: -1) { v.swapAt(i, Int(next() % UInt64(i + 1))) }
        return try Tensor(shape: shape, scalars: v)
    }
}

/// A numeric gradient check for each differentiable op the golden ops.jsonl `grad:` cases do not
/// cover: y = op(inputs) is built in a graph, loss = sum(y * R) for a fixed random R, and the
/// symbolic gradients from `graph.gradients` are compared with central differences of the loss,
/// run on the same Session with perturbed inputs fed, all in float64.
final class NumericGradientTests: XCTestCase {
    struct Case {
        let name: String
        let inputs: [Tensor]
        /// Inputs to differentiate with respect to.
        let wrt: [Int]
        /// Placeholder shapes (unknown dims allowed); the inputs' own shapes when nil.
        var shapes: [Shape]? = nil
        /// Inputs held in variables (VariableV2, set through the session) instead of fed placeholders.
        var variables: Set<Int> = []
        /// Finite-difference step: 1e-5 balances truncation (eps²) and rounding (1e-16/eps) in float64.
        var eps: Double = 1e-5
        let build: (Graph, [Output]) throws -> Output
    }

    /// |symbolic - numeric| <= rtol·max(|symbolic|, |numeric|) + atol.
    static let rtol = 1e-6, atol = 1e-7

    /// A placeholder for each input, or a variable for those in `c.variables`.
    static func makeInputs(_ g: Graph, _ c: Case) throws -> [Output] {
        try c.inputs.enumerated().map { i, t in
            if c.variables.contains(i) {
                return try g.addOperation("VariableV2", name: "v\(i)", attrs: ["dtype": .type(t.dtype), "shape": .shape(Shape(t.shape))]).output()
            }
            return try g.placeholder(t.dtype, shape: c.shapes?[i] ?? Shape(t.shape), name: "x\(i)")
        }
    }

    /// Checks one case; returns what went wrong (empty when every element agrees).
    static func check(_ c: Case, config: SessionConfig = SessionConfig()) throws -> [String] {
        let g = Graph()
        let ph = try makeInputs(g, c)
        let y = try c.build(g, ph)
        let sess = try Session(graph: g, config: config)
        for i in c.variables { try sess.setValue(c.inputs[i], of: ph[i].op) }
        let feeds = Dictionary(uniqueKeysWithValues: c.inputs.indices.filter { !c.variables.contains($0) }.map { (ph[$0], c.inputs[$0]) })
        let shape = try sess.run(y, feeds: feeds).shape
        // R makes every output element count with a different weight, so a gradient routed to
        // the wrong element (or summed in the wrong place) is caught.
        var rng = TestRandom(UInt64(truncatingIfNeeded: c.name.utf8.reduce(5381) { $0 &* 33 &+ Int($1) }))
        let r = try g.constant(rng.tensor(shape, -1, 1).converted(to: y.dtype), name: "R")
        let loss = try g.reduceSum(g.multiply(y, r), name: "loss")
        let grads = try g.gradients([loss], c.wrt.map { ph[$0] })
        var problems: [String] = []
        for (k, gr) in grads.enumerated() where gr == nil { problems.append("input \(c.wrt[k]): gradient is nil (unconnected)") }
        guard problems.isEmpty else { return problems }
        let symbolic = try sess.run(grads.map { $0! }, feeds: feeds)
        for (k, i) in c.wrt.enumerated() {
            let x = c.inputs[i], s = symbolic[k]
            guard s.shape == x.shape, s.dtype == x.dtype else {
                problems.append("input \(i): gradient has shape \(s.shape) \(s.dtype), input \(x.shape) \(x.dtype)")
                continue
            }
            for j in 0..<x.elementCount {
                func lossAt(_ delta: Double) throws -> Double {
                    var p = x
                    try p.setElement(.f(x.double(at: j) + delta), at: j)
                    if c.variables.contains(i) {
                        try sess.setValue(p, of: ph[i].op)
                        defer { try? sess.setValue(x, of: ph[i].op) }
                        return try sess.run(loss, feeds: feeds).double(at: 0)
                    }
                    var f = feeds
                    f[ph[i]] = p
                    return try sess.run(loss, feeds: f).double(at: 0)
                }
                let numeric = (try lossAt(c.eps) - lossAt(-c.eps)) / (2 * c.eps)
                let sym = s.double(at: j)
                if !(Swift.abs(sym - numeric) <= rtol * Swift.max(Swift.abs(sym), Swift.abs(numeric)) + atol) {
                    problems.append("input \(i) element \(j) (x=\(x.double(at: j))): symbolic \(sym), numeric \(numeric)")
                }
            }
        }
        return problems
    }

    static func int32s(_ shape: [Int], _ v: [Int]) throws -> Tensor { try Tensor(shape: shape, scalars: v.map(Int32.init)) }
    static func unary(_ name: String, _ x: Tensor, _ f: @escaping (Graph, Output) throws -> Output) -> Case {
        Case(name: name, inputs: [x], wrt: [0]) { g, i in try f(g, i[0]) }
    }

    /// The cases, by TensorFlow op type (with what makes the case interesting).
    static func cases() throws -> [Case] {
        var r = TestRandom(42)
        var c: [Case] = []
        // Elementwise unary.
        c.append(unary("Log1p", try r.tensor([2, 3], -0.5, 2)) { g, x in try g.log1p(x) })
        c.append(unary("Sin", try r.tensor([2, 3], -3, 3)) { g, x in try g.sin(x) })
        c.append(unary("Erf", try r.tensor([2, 3], -2, 2)) { g, x in try g.erf(x) })
        c.append(unary("Erfc", try r.tensor([2, 3], -2, 2)) { g, x in try g.erfc(x) })
        c.append(unary("Cos", try r.tensor([2, 3], -3, 3)) { g, x in try g.cos(x) })
        c.append(unary("Reciprocal", try r.tensor([2, 3], 0.5, 2)) { g, x in try g.reciprocal(x) })
        // TensorFlow's old name of Reciprocal.
        c.append(unary("Inv", try r.tensor([2, 3], 0.5, 2)) { g, x in try g.addOperation("Inv", inputs: [x], attrs: ["T": .type(.float64)]).output() })
        c.append(unary("Relu6", try r.tensor([3, 4], -2, 8, awayFrom: [0, 6])) { g, x in try g.relu6(x) })
        c.append(unary("Elu", try r.tensor([3, 4], -3, 3, awayFrom: [0])) { g, x in try g.elu(x) })
        c.append(unary("Softplus", try r.tensor([3, 4], -4, 4)) { g, x in try g.softplus(x) })
        c.append(unary("LeakyRelu alpha 0.3", try r.tensor([3, 4], -3, 3, awayFrom: [0])) { g, x in try g.leakyRelu(x, alpha: 0.3) })
        c.append(unary("Identity", try r.tensor([3])) { g, x in try g.identity(x) })
        // Its gradient is the incoming gradient, itself checked (TensorFlow's array_grad).
        c.append(unary("CheckNumerics", try r.tensor([2, 3])) { g, x in try g.checkNumerics(g.square(x), message: "squared") })
        // Elementwise binary, with broadcasting on both sides.
        c.append(Case(name: "Minimum broadcast", inputs: [try r.distinct([2, 3]), try r.distinct([3], lo: -0.95, gap: 0.2)], wrt: [0, 1]) { g, x in
            try g.minimum(x[0], x[1])
        })
        c.append(Case(name: "SquaredDifference broadcast", inputs: [try r.tensor([2, 3]), try r.tensor([2, 1])], wrt: [0, 1]) { g, x in
            try g.squaredDifference(x[0], x[1])
        })
        // x / y kept away from integers, where floormod jumps.
        c.append(Case(name: "FloorMod", inputs: [try Tensor(shape: [2, 3], scalars: [5.3, -2.7, 7.9, -6.2, 0.4, 3.5]),
                                                 try Tensor(shape: [2, 3], scalars: [2.0, 1.5, -2.5, 4.0, -1.5, 1.1])], wrt: [0, 1]) { g, x in
            try g.floorMod(x[0], x[1])
        })
        c.append(Case(name: "Add (v1) broadcast", inputs: [try r.tensor([2, 3]), try r.tensor([3])], wrt: [0, 1]) { g, x in
            try g.addOperation("Add", inputs: [x[0], x[1]], attrs: ["T": .type(.float64)]).output()
        })
        c.append(Case(name: "Div (float) broadcast", inputs: [try r.tensor([2, 3]), try r.tensor([2, 1], 0.5, 2)], wrt: [0, 1]) { g, x in
            try g.addOperation("Div", inputs: [x[0], x[1]], attrs: ["T": .type(.float64)]).output()
        })
        // Reductions.
        c.append(Case(name: "Sum axis 1", inputs: [try r.tensor([3, 4])], wrt: [0]) { g, x in try g.reduceSum(x[0], axes: [1]) })
        c.append(Case(name: "Sum all keepDims", inputs: [try r.tensor([2, 3, 2])], wrt: [0]) { g, x in try g.reduceSum(x[0], keepDims: true) })
        c.append(Case(name: "Sum negative axes", inputs: [try r.tensor([2, 3, 2])], wrt: [0]) { g, x in try g.reduceSum(x[0], axes: [-1, 0]) })
        c.append(Case(name: "Max axis 0", inputs: [try r.distinct([3, 4])], wrt: [0]) { g, x in try g.reduceMax(x[0], axes: [0]) })
        c.append(Case(name: "Min axes [0,2] keepDims", inputs: [try r.distinct([2, 3, 2])], wrt: [0]) { g, x in
            try g.reduceMin(x[0], axes: [0, 2], keepDims: true)
        })
        c.append(Case(name: "Prod axis 1 no zeros", inputs: [try r.tensor([3, 4], 0.5, 1.5)], wrt: [0]) { g, x in try g.reduceProd(x[0], axes: [1]) })
        // Row 0 has one zero, row 1 two zeros, row 2 none: the three branches of the zero-safe gradient.
        c.append(Case(name: "Prod with one and two zeros", inputs: [try Tensor(shape: [3, 4], scalars: [0.7, 0, 1.3, -0.9, 0, 1.1, 0, 0.6, 0.8, -1.2, 0.5, 1.4])],
                      wrt: [0]) { g, x in try g.reduceProd(x[0], axes: [1]) })
        c.append(Case(name: "Prod all axes, one zero", inputs: [try Tensor(shape: [2, 2], scalars: [0.7, 0, 1.3, -0.9])], wrt: [0]) { g, x in
            try g.reduceProd(x[0])
        })
        // An unknown batch dimension: the gradient's shapes come from the fed tensor at run time.
        c.append(Case(name: "Mean keepDims axis 0, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.reduceMean(x[0], axes: [0], keepDims: true)
        })
        c.append(Case(name: "Mean keepDims axis 1, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.reduceMean(x[0], axes: [1], keepDims: true)
        })
        c.append(Case(name: "Mean all, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.reduceMean(x[0], axes: [0, 1])
        })
        c.append(Case(name: "Sum axis 0, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.reduceSum(x[0], axes: [0])
        })
        c.append(Case(name: "AddN of three", inputs: [try r.tensor([2, 3]), try r.tensor([2, 3]), try r.tensor([2, 3])], wrt: [0, 1, 2]) { g, x in
            try g.addN(x)
        })
        // The same tensor used twice: AddN's gradient accumulation into one input.
        c.append(Case(name: "AddN same input twice", inputs: [try r.tensor([2, 2])], wrt: [0]) { g, x in try g.addN([x[0], x[0]]) })
        // Shapes and data movement.
        c.append(Case(name: "Pack axis 1", inputs: [try r.tensor([2, 3]), try r.tensor([2, 3]), try r.tensor([2, 3])], wrt: [0, 1, 2]) { g, x in
            try g.stack(x, axis: 1)
        })
        c.append(Case(name: "Pack axis -1", inputs: [try r.tensor([2, 3]), try r.tensor([2, 3])], wrt: [0, 1]) { g, x in try g.stack(x, axis: -1) })
        c.append(unary("ExpandDims axis -1", try r.tensor([2, 3])) { g, x in try g.expandDims(x, axis: -1) })
        c.append(unary("ExpandDims axis 0", try r.tensor([2, 3])) { g, x in try g.expandDims(x, axis: 0) })
        c.append(unary("Squeeze axis 1", try r.tensor([2, 1, 3, 1])) { g, x in try g.squeeze(x, axes: [1]) })
        c.append(unary("Squeeze all", try r.tensor([2, 1, 3, 1])) { g, x in try g.squeeze(x) })
        // Dyadic inputs and step: every cast and product is exact in float32, so the f32 detour
        // costs no precision and the check stays at 1e-6.
        c.append(Case(name: "Cast f64->f32->f64", inputs: [try Tensor(shape: [2, 3], scalars: [0.5, -1.25, 2.0, 0.375, -0.75, 1.5])], wrt: [0],
                      eps: 1.0 / 1024) { g, x in
            try g.cast(g.square(g.cast(x[0], to: .float32)), to: .float64)
        })
        c.append(Case(name: "Cast f32->f64", inputs: [try Tensor(shape: [3], scalars: [0.5, -1.25, 2.0] as [Float])], wrt: [0], eps: 1.0 / 1024) { g, x in
            try g.square(g.cast(x[0], to: .float64))
        })
        c.append(Case(name: "Select v1 vector condition", inputs: [try Tensor(shape: [3], scalars: [true, false, true]), try r.tensor([3, 2]), try r.tensor([3, 2])],
                      wrt: [1, 2]) { g, x in try g.select(x[0], x[1], x[2]) })
        c.append(Case(name: "SelectV2 broadcast", inputs: [try Tensor(shape: [2, 1], scalars: [true, false]), try r.tensor([3]), try r.tensor([2, 3])],
                      wrt: [1, 2]) { g, x in try g.where(x[0], x[1], x[2]) })
        c.append(Case(name: "BroadcastTo [3,1] -> [2,3,4]", inputs: [try r.tensor([3, 1])], wrt: [0]) { g, x in
            try g.broadcastTo(x[0], shapeTensor: g.constant(int32s([3], [2, 3, 4])))
        })
        c.append(Case(name: "Fill value", inputs: [Tensor(0.7)], wrt: [0]) { g, x in
            try g.addOperation("Fill", inputs: [g.constant(int32s([2], [2, 3])), x[0]], attrs: ["T": .type(.float64), "index_type": .type(.int32)]).output()
        })
        c.append(unary("Pad CONSTANT", try r.tensor([2, 3])) { g, x in try g.pad(x, paddings: [[1, 0], [2, 1]]) })
        c.append(unary("PadV2 value 1.5", try r.tensor([2, 3])) { g, x in try g.pad(x, paddings: [[1, 2], [0, 1]], constantValue: 1.5) })
        c.append(unary("MirrorPad SYMMETRIC", try r.tensor([3, 4])) { g, x in try g.pad(x, paddings: [[1, 2], [2, 1]], mode: .symmetric) })
        c.append(unary("MirrorPad SYMMETRIC full width", try r.tensor([2, 3])) { g, x in try g.pad(x, paddings: [[2, 2], [3, 0]], mode: .symmetric) })
        c.append(unary("MirrorPad REFLECT 3-D", try r.tensor([2, 3, 4])) { g, x in try g.pad(x, paddings: [[1, 0], [0, 2], [3, 1]], mode: .reflect) })
        // x[1, ..., ::-2]: shrink, ellipsis and a negative stride.
        c.append(unary("StridedSlice shrink+ellipsis+negative stride", try r.tensor([3, 4, 5])) { g, x in
            try g.stridedSlice(x, begin: [1, 0, 0], end: [2, 0, 0], strides: [1, 1, -2], beginMask: 4, endMask: 4, ellipsisMask: 2, shrinkAxisMask: 1)
        })
        // x[tf.newaxis, 2:0:-1, 3, 1:5:2]: new axis, negative stride, shrink.
        c.append(unary("StridedSlice newaxis+negative stride+shrink", try r.tensor([3, 4, 5])) { g, x in
            try g.stridedSlice(x, begin: [0, 2, 3, 1], end: [0, 0, 4, 5], strides: [1, -1, 1, 2], newAxisMask: 1, shrinkAxisMask: 4)
        })
        // x[..., tf.newaxis, -1]: ellipsis then a new axis, then a negative index shrunk.
        c.append(unary("StridedSlice ellipsis+newaxis+negative index", try r.tensor([2, 3, 4])) { g, x in
            try g.stridedSlice(x, begin: [0, 0, -1], end: [0, 0, 0], strides: [1, 1, 1], ellipsisMask: 1, newAxisMask: 2, shrinkAxisMask: 4)
        })
        c.append(unary("Tile [2,1,3]", try r.tensor([2, 3, 1])) { g, x in try g.tile(x, multiples: [2, 1, 3]) })
        c.append(unary("Transpose [2,0,1]", try r.tensor([2, 3, 4])) { g, x in try g.transpose(x, perm: [2, 0, 1]) })
        c.append(unary("Reshape to [-1,2,6]", try r.tensor([4, 3])) { g, x in try g.reshape(x, [-1, 2, 6]) })
        c.append(Case(name: "GatherV2 repeated indices", inputs: [try r.tensor([5, 3]), try int32s([6], [4, 0, 4, 2, 4, 0])], wrt: [0]) { g, x in
            try g.gather(x[0], x[1])
        })
        c.append(Case(name: "GatherV2 2-D indices", inputs: [try r.tensor([4, 2]), try int32s([2, 3], [3, 3, 1, 0, 3, 2])], wrt: [0]) { g, x in
            try g.gather(x[0], x[1])
        })
        c.append(Case(name: "ConcatV2 axis -1", inputs: [try r.tensor([2, 3]), try r.tensor([2, 1]), try r.tensor([2, 2])], wrt: [0, 1, 2]) { g, x in
            try g.concat(x, axis: -1)
        })
        c.append(Case(name: "PlaceholderWithDefault", inputs: [try r.tensor([2, 3])], wrt: [0]) { g, x in
            try g.square(g.placeholderWithDefault(x[0], shape: Shape([2, 3])))
        })
        // Matrix products.
        c.append(Case(name: "MatMul transposeA", inputs: [try r.tensor([3, 2]), try r.tensor([3, 4])], wrt: [0, 1]) { g, x in
            try g.matmul(x[0], x[1], transposeA: true)
        })
        c.append(Case(name: "MatMul transposeB", inputs: [try r.tensor([2, 3]), try r.tensor([4, 3])], wrt: [0, 1]) { g, x in
            try g.matmul(x[0], x[1], transposeB: true)
        })
        c.append(Case(name: "BatchMatMulV2 broadcast batch dims", inputs: [try r.tensor([2, 1, 3, 4]), try r.tensor([3, 4, 2])], wrt: [0, 1]) { g, x in
            try g.batchMatmul(x[0], x[1])
        })
        c.append(Case(name: "BatchMatMulV2 broadcast, adjoints", inputs: [try r.tensor([2, 4, 3]), try r.tensor([1, 2, 4])], wrt: [0, 1]) { g, x in
            try g.batchMatmul(x[0], x[1], adjointA: true, adjointB: true)
        })
        c.append(Case(name: "BatchMatMul (v1) adjointB", inputs: [try r.tensor([2, 2, 3]), try r.tensor([2, 4, 3])], wrt: [0, 1]) { g, x in
            try g.addOperation("BatchMatMul", inputs: [x[0], x[1]], attrs: ["T": .type(.float64), "adj_x": .bool(false), "adj_y": .bool(true)]).output()
        })
        // Neural-network ops.
        c.append(unary("Softmax axis 0", try r.tensor([3, 4], -2, 2)) { g, x in try g.softmax(x, axis: 0) })
        c.append(unary("Softmax axis 1 of 3-D", try r.tensor([2, 3, 2], -2, 2)) { g, x in try g.softmax(x, axis: 1) })
        c.append(unary("LogSoftmax axis 0", try r.tensor([3, 4], -2, 2)) { g, x in try g.logSoftmax(x, axis: 0) })
        c.append(Case(name: "BiasAdd NCHW", inputs: [try r.tensor([2, 3, 2, 2]), try r.tensor([3])], wrt: [0, 1]) { g, x in
            try g.biasAdd(x[0], x[1], dataFormat: "NCHW")
        })
        for (stride, dilation) in [(2, 1), (1, 2), (1, 1)] {
            for padding in ["SAME", "VALID"] {
                c.append(Case(name: "Conv2D stride \(stride) dilation \(dilation) \(padding)", inputs: [try r.tensor([2, 6, 5, 2]), try r.tensor([3, 2, 2, 3])],
                              wrt: [0, 1]) { g, x in
                    try g.conv2d(x[0], x[1], strides: [1, stride, stride, 1], padding: padding, dilations: [1, dilation, dilation, 1])
                })
            }
        }
        c.append(unary("MaxPool 3x3 stride 2 SAME, padded", try r.distinct([1, 6, 5, 2], gap: 0.03)) { g, x in
            try g.maxPool(x, ksize: [1, 3, 3, 1], strides: [1, 2, 2, 1], padding: "SAME")
        })
        c.append(unary("MaxPool 2x2 stride 1 SAME", try r.distinct([2, 3, 3, 1], gap: 0.1)) { g, x in
            try g.maxPool(x, ksize: [1, 2, 2, 1], strides: [1, 1, 1, 1], padding: "SAME")
        })
        c.append(unary("AvgPool 2x2 stride 2 VALID, odd size", try r.tensor([2, 5, 5, 2])) { g, x in
            try g.avgPool(x, ksize: [1, 2, 2, 1], strides: [1, 2, 2, 1], padding: "VALID")
        })
        c.append(unary("AvgPool 3x2 stride 1 VALID", try r.tensor([1, 4, 4, 2])) { g, x in
            try g.avgPool(x, ksize: [1, 3, 2, 1], strides: [1, 1, 1, 1], padding: "VALID")
        })
        c.append(Case(name: "FusedBatchNormV3 training", inputs: [try r.tensor([2, 3, 2, 3], -2, 2), try r.tensor([3], 0.5, 1.5), try r.tensor([3])],
                      wrt: [0, 1, 2]) { g, x in
            try g.fusedBatchNorm(x[0], scale: x[1], offset: x[2], epsilon: 0.01, isTraining: true).y
        })
        c.append(Case(name: "FusedBatchNormV3 inference", inputs: [try r.tensor([2, 2, 2, 3], -2, 2), try r.tensor([3], 0.5, 1.5), try r.tensor([3]),
                                                                  try r.tensor([3]), try r.tensor([3], 0.5, 2)], wrt: [0, 1, 2]) { g, x in
            try g.fusedBatchNorm(x[0], scale: x[1], offset: x[2], mean: x[3], variance: x[4], epsilon: 0.01, isTraining: false).y
        })
        c.append(Case(name: "FusedBatchNorm (v1) training", inputs: [try r.tensor([4, 1, 2, 2], -2, 2), try r.tensor([2], 0.5, 1.5), try r.tensor([2])],
                      wrt: [0, 1, 2]) { g, x in
            let empty = try g.constant(Tensor(zeros: .float64, shape: [0]))
            return try g.addOperation("FusedBatchNorm", inputs: [x[0], x[1], x[2], empty, empty],
                                      attrs: ["T": .type(.float64), "epsilon": .float(0.01), "is_training": .bool(true), "data_format": .string("NHWC")]).output()
        })
        // Variables: the gradient with respect to the variable itself, through its reads.
        c.append(Case(name: "VariableV2 read (Identity of a ref) times x", inputs: [try r.tensor([2, 3]), try r.tensor([2, 3])], wrt: [0, 1], variables: [0]) { g, x in
            try g.multiply(g.identity(x[0]), x[1])
        })
        if OpRegistry.def("ReadVariableOp") != nil {
            c.append(Case(name: "ReadVariableOp", inputs: [try r.tensor([3, 2])], wrt: [0], variables: [0]) { g, x in
                try g.square(g.addOperation("ReadVariableOp", inputs: [x[0]], attrs: ["dtype": .type(.float64)]).output())
            })
        }
        // Gradients whose shapes come from a fed tensor with an unknown batch dimension.
        c.append(Case(name: "MirrorPad, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.pad(x[0], paddings: [[1, 0], [0, 2]], mode: .reflect)
        })
        c.append(Case(name: "StridedSlice, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.stridedSlice(x[0], begin: [0, 1], end: [0, 3], beginMask: 1, endMask: 1)
        })
        c.append(Case(name: "Max, unknown batch", inputs: [try r.distinct([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.reduceMax(x[0], axes: [1])
        })
        c.append(Case(name: "Prod, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.reduceProd(x[0], axes: [0])
        })
        c.append(Case(name: "Softmax axis 0, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: [Shape(dims: [nil, 3])]) { g, x in
            try g.softmax(x[0], axis: 0)
        })
        // Appended last so the random inputs of the cases above stay as they were.
        c.append(unary("Softsign", try r.tensor([3, 4], -4, 4)) { g, x in try g.softsign(x) })
        return try c + shapeDependentCases()
    }

    /// Gradients TensorFlow writes with shapes known only at run time (an unknown batch), and the
    /// gathers along any axis.
    static func shapeDependentCases() throws -> [Case] {
        var r = TestRandom(7)
        let unknownBatch = [Shape(dims: [nil, 3])]
        return [
            // ScatterNd of the gradient in TensorFlow; repeated index rows accumulate.
            Case(name: "GatherNd", inputs: [try r.tensor([3, 4]), try int32s([3, 2], [0, 1, 2, 3, 0, 1])], wrt: [0]) { g, x in try g.gatherNd(x[0], x[1]) },
            Case(name: "GatherNd, partial index depth", inputs: [try r.tensor([3, 2, 2]), try int32s([2, 2, 1], [2, 0, 2, 1])], wrt: [0]) { g, x in try g.gatherNd(x[0], x[1]) },
            Case(name: "GatherV2 axis 2", inputs: [try r.tensor([2, 2, 3]), try int32s([2, 2], [2, 0, 2, 2])], wrt: [0]) { g, x in try g.gather(x[0], x[1], axis: 2) },
            Case(name: "GatherV2 axis -1", inputs: [try r.tensor([2, 3]), try int32s([2], [1, 1])], wrt: [0]) { g, x in try g.gather(x[0], x[1], axis: -1) },
            Case(name: "Pad, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: unknownBatch) { g, x in
                try g.pad(x[0], paddings: [[1, 0], [0, 2]])
            },
            Case(name: "Slice, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: unknownBatch) { g, x in
                try g.slice(x[0], begin: [1, 1], size: [-1, 2])
            },
            Case(name: "Tile, unknown batch", inputs: [try r.tensor([4, 3])], wrt: [0], shapes: unknownBatch) { g, x in
                try g.tile(x[0], multiples: [1, 2])
            },
            Case(name: "ConcatV2, unknown batch", inputs: [try r.tensor([4, 3]), try r.tensor([4, 3])], wrt: [0, 1], shapes: unknownBatch + unknownBatch) { g, x in
                try g.concat(x, axis: 1)
            },
            Case(name: "Pack, unknown batch", inputs: [try r.tensor([4, 3]), try r.tensor([4, 3])], wrt: [0, 1], shapes: unknownBatch + unknownBatch) { g, x in
                try g.stack(x, axis: 1)
            },
            Case(name: "BroadcastTo, unknown batch", inputs: [try r.tensor([4, 1])], wrt: [0], shapes: [Shape(dims: [nil, 1])]) { g, x in
                try g.broadcastTo(x[0], shapeTensor: g.concat([g.slice(g.shape(x[0]), begin: [0], size: [1]), g.constant(Self.int32s([1], [3]))], axis: 0))
            },
            // TensorFlow's GatherV2 gradient handles any axis (and batch_dims).
            Case(name: "GatherV2 axis 1", inputs: [try r.tensor([3, 4]), try int32s([3], [3, 0, 3])], wrt: [0]) { g, x in try g.gather(x[0], x[1], axis: 1) },
        ]
    }

    func runCases(_ cases: [Case], label: String, config: SessionConfig = SessionConfig()) -> (passed: Int, failed: Int) {
        var passed = 0, failed = 0
        for c in cases {
            var problems: [String]
            do { problems = try Self.check(c, config: config) } catch { problems = ["threw \(error)"] }
            if problems.isEmpty { passed += 1 } else {
                failed += 1
                XCTFail("\(c.name): \(problems.count) problem(s): \(problems.prefix(4).joined(separator: "; "))")
            }
        }
        print("\(label): \(passed) passed, \(failed) failed")
        return (passed, failed)
    }

    func testSymbolicGradientsMatchCentralDifferences() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThan(cases.count, 60)
        _ = runCases(cases, label: "numeric gradients")
    }

    /// The same cases with every op on /gpu:0 (where the session has one).
    func testSymbolicGradientsMatchCentralDifferencesOnGPU() throws {
        let config = try TestGPU.required("numeric gradients")
        _ = runCases(try Self.cases(), label: "numeric gradients on /gpu:0", config: config)
    }

    /// The check itself must be able to fail: a gradient off by one part in 10⁴ is reported
    /// for every element.
    func testTheCheckCatchesASlightlyWrongGradient() throws {
        var r = TestRandom(3)
        // y = x² + 1e-4·x·(x - stop(x)): the value is x², the symbolic gradient 2x + 1e-4·x.
        let wrong = Self.unary("slightly wrong", try r.tensor([4], 0.5, 1.5)) { g, x in
            try g.add(g.square(x), g.multiply(g.multiply(g.stopGradient(x), g.subtract(x, g.stopGradient(x))), g.constant(1e-4, dtype: .float64)))
        }
        let problems = try Self.check(wrong)
        XCTAssertEqual(problems.count, 4, "\(problems)")
        XCTAssertTrue(problems.allSatisfy { $0.contains("symbolic") && $0.contains("numeric") }, "\(problems)")
        let right = Self.unary("square", try r.tensor([4], 0.5, 1.5)) { g, x in try g.square(x) }
        XCTAssertEqual(try Self.check(right), [])
    }

    /// Every op type with a registry gradient is exercised by a golden `grad:` case or by a case
    /// here; a new op with a gradient and no check fails this test.
    func testEveryRegistryGradientIsCheckedByGoldenOrNumericCases() throws {
        var covered = Set<String>()
        func opTypes(_ g: Graph) -> Set<String> { Set(g.operations.map(\.type)) }
        for c in try Golden.lines("ops.jsonl") where (c["op"] as! String).hasPrefix("grad:") {
            let op = String((c["op"] as! String).dropFirst(5))
            var attrs = c["attrs"] as? [String: Any] ?? [:]
            attrs["wrt"] = nil
            let inputs = try (c["inputs"] as! [[String: Any]]).map(Golden.tensor)
            let n = (attrs.removeValue(forKey: "grad_ys") as? String) == "last_input" ? inputs.count - 1 : inputs.count
            let g = Graph()
            let ph = try inputs.prefix(n).enumerated().map { i, t in try g.placeholder(t.dtype, shape: Shape(t.shape), name: "in\(i)") }
            _ = try GoldenOpsTests.builders[op]!(g, ph, attrs)
            covered.formUnion(opTypes(g))
        }
        for c in try Self.cases() + HelperOpGradientTests.cases() {
            let g = Graph()
            _ = try c.build(g, Self.makeInputs(g, c))
            covered.formUnion(opTypes(g))
        }
        let withGradient = OpRegistry.registeredTypes.filter { OpRegistry.def($0)?.gradient != nil }
        // PreventGradient's entry only throws; testGradientThroughPreventGradientThrows checks it.
        // HorovodAllreduce's needs a collective engine: CollectiveRoundTests checks it.
        let unchecked = withGradient.filter { !covered.contains($0) && !["PreventGradient", "HorovodAllreduce"].contains($0) }
        XCTAssertEqual(unchecked, [], "ops with a gradient entry but no golden or numeric check")
    }
}
