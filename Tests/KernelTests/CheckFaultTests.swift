import XCTest
import KilnIR
import KilnPasses
import KilnKernels

/// `check` in compiled code: failures reach the fault record and become the same error the
/// reference evaluator throws, fused or not, split across the pool or not, on every backend.
final class CheckFaultTests: XCTestCase {
    var cases: [KernelCase] = []

    /// Adds `text` on `inputs`, fused and unfused: both evaluators throw `message`, or both give
    /// the same results and variables. `splitJobs` and `inspect` apply to the fused plan (unfused,
    /// a check is a small kernel of its own, and a failed one stops the run before the large one).
    func add(_ name: String, _ text: String, _ inputs: [Tensor], throws message: String?, fusedOnly: Bool = false,
             variablesUntouchedOnFault: Bool = false, splitJobs: (@Sendable (TargetDescription) -> Int)? = nil,
             inspect: (@Sendable (any Executable, TargetDescription) -> String?)? = nil) throws {
        let f = try KernelCase.parse(text)
        for fuse in fusedOnly ? [true] : [true, false] {
            cases.append(KernelCase(name, f, inputs, fuse: fuse, agreement: .exact, throwsMessage: message,
                                    variablesUntouchedOnFault: variablesUntouchedOnFault, splitJobs: fuse ? splitJobs : nil,
                                    inspect: fuse ? inspect : nil))
        }
    }

    let table = try! Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init))

    func testChecksFaultLikeTheReference() throws {
        let gather = """
        func @m(%0: f32[6,4] feed "p", %1: i32[3,2] feed "i") {
          %2 = check.index %1 bounds=[6] node="emb/lookup" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
          %3 = gather %0, %2 axis=0 batch_dims=0
          %4 = constant f32[] 2.0
          %5 = broadcast %4 shape=[3,2,4] dims=[]
          %6 = mul %3, %5
          return %6
        }
        """
        let oneKernel: @Sendable (any Executable, TargetDescription) -> String? = { exe, _ in
            exe.plan.kernels.count == 1 ? nil : "check, gather and mul are \(exe.plan.kernels.count) kernels, expected one loop"
        }
        try add("gather fused into its consumer, index too large", gather, [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 6, 2, -1] as [Int32])],
                throws: "indices[1,1] = 6 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')", inspect: oneKernel)
        try add("gather fused into its consumer, negative index", gather, [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, -7, 3] as [Int32])],
                throws: "indices[2,0] = -7 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')")
        try add("gather fused into its consumer, good indices", gather, [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, 4, 3] as [Int32])], throws: nil)

        // UnsortedSegmentSum's lowering: a one-hot matrix from compare(ids, iota) times the data.
        let segments = """
        func @m(%0: f32[4,3] feed "data", %1: i64[4] feed "ids") {
          %2 = check.below %1 bound=5 node="seg" op="UnsortedSegmentSum" message="segment_ids{index} = {value} is out of range [0, 5)"
          %3 = broadcast %2 shape=[4,5] dims=[0]
          %4 = iota dtype=i64 shape=[4,5] axis=1
          %5 = eq %3, %4
          %6 = cast %5 to=f32
          %7 = dot %6, %0 transpose_a=true transpose_b=false
          return %7
        }
        """
        let data = try Tensor(shape: [4, 3], scalars: (0..<12).map(Float.init))
        try add("one-hot segment sum through a product, bad id", segments, [data, try Tensor(shape: [4], scalars: [0, 4, 9, 7] as [Int64])],
                throws: "segment_ids[2] = 9 is out of range [0, 5) for 'seg' (op: 'UnsortedSegmentSum')")
        try add("one-hot segment sum through a product, negative ids drop", segments, [data, try Tensor(shape: [4], scalars: [0, 4, -1, 4] as [Int64])], throws: nil)

        for d in ["i32", "i64", "u8"] {
            let text = """
            func @m(%0: \(d)[2,3] feed "x", %1: \(d)[2,3] feed "y") {
              %2 = check.nonzero %1 node="a" op="FloorDiv" message="Integer division by zero"
              %3 = floordiv %0, %2
              %4 = check.nonzero %0 node="b" op="FloorMod" message="Integer division by zero"
              %5 = floormod %3, %4
              return %5
            }
            """
            func t(_ v: [Int]) throws -> Tensor {
                switch d {
                case "i32": return try Tensor(shape: [2, 3], scalars: v.map(Int32.init))
                case "i64": return try Tensor(shape: [2, 3], scalars: v.map(Int64.init))
                default: return try Tensor(shape: [2, 3], scalars: v.map(UInt8.init))
                }
            }
            try add("\(d) division by zero", text, [t([0, 1, 2, 3, 4, 5]), t([1, 1, 1, 0, 1, 1])], throws: "Integer division by zero for 'a' (op: 'FloorDiv')")
            try add("\(d) the first of two checks wins", text, [t([0, 1, 2, 3, 4, 5]), t([1, 1, 1, 2, 1, 1])], throws: "Integer division by zero for 'b' (op: 'FloorMod')")
            try add("\(d) no division by zero", text, [t([7, 1, 2, 3, 4, 5]), t([2, 1, 1, 2, 1, 3])], throws: nil)
        }

        // A kernel split across the pool reports the lowest bad position, whichever part found it.
        let parallel = """
        func @m(%0: f32[10,16] feed "p", %1: i32[4096] feed "i") {
          %2 = check.index %1 bounds=[10] node="g" op="GatherV2" message="indices{index} = {value} is not in [0, 10)"
          %3 = gather %0, %2 axis=0 batch_dims=0
          %4 = tanh %3
          return %4
        }
        """
        var idx = (0..<4096).map { Int32($0 % 10) }
        idx[4000] = 10
        idx[3000] = 11
        let p = try Tensor(shape: [10, 16], scalars: (0..<160).map { Float($0) / 160 })
        let splitWhenFused: @Sendable (TargetDescription) -> Int = { 4096 * 16 >= $0.parallelThreshold ? 1 : 0 }
        try add("split kernel, two bad indices", parallel, [p, try Tensor(shape: [4096], scalars: idx)],
                throws: "indices[3000] = 11 is not in [0, 10) for 'g' (op: 'GatherV2')", splitJobs: splitWhenFused)
        idx[3] = -2
        try add("split kernel, three bad indices", parallel, [p, try Tensor(shape: [4096], scalars: idx)],
                throws: "indices[3] = -2 is not in [0, 10) for 'g' (op: 'GatherV2')", splitJobs: splitWhenFused)

        // v += w[i] (a sparse update): the write's loop would evaluate the check row by row, so
        // the check runs first and a failed run leaves the variable untouched.
        let update = """
        func @m(%0: f32[6,4] var "v", %1: i32[6] feed "i", %2: f32[6,4] feed "w") {
          %3 = check.index %1 bounds=[6] node="g" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
          %4 = var.read %0
          %5 = gather %2, %3 axis=0 batch_dims=0
          %6 = add %4, %5
          %7 = var.write %0, %6
          return
        }
        """
        let checkId = try KernelCase.parse(update).body[0].id
        let ones = try Tensor(shape: [6, 4], scalars: [Float](repeating: 1, count: 24))
        try add("a check inside a variable write runs first", update, [table, try Tensor(shape: [6], scalars: [0, 1, 2, 3, 9, 5] as [Int32]), ones],
                throws: "indices[4] = 9 is not in [0, 6) for 'g' (op: 'GatherV2')", variablesUntouchedOnFault: true,
                inspect: { exe, _ in
                    exe.plan.reasons[checkId] == .checkBeforeWrite ? nil : "the check is not a kernel of its own: \(exe.plan.reasons[checkId].map { "\($0)" } ?? "fused")"
                })
        try add("a checked variable write", update, [table, try Tensor(shape: [6], scalars: [5, 4, 3, 2, 1, 0] as [Int32]), ones], throws: nil)

        // v = v + v[reversed]: the gather reads rows the write's loop has already overwritten
        // unless the sum gets a buffer first.
        try add("a write reading its variable through a gather reads the old values", """
        func @m(%0: f32[6,4] var "v", %1: i32[6] feed "i") {
          %2 = var.read %0
          %3 = gather %2, %1 axis=0 batch_dims=0
          %4 = add %2, %3
          %5 = var.write %0, %4
          return
        }
        """, [table, try Tensor(shape: [6], scalars: [5, 4, 3, 2, 1, 0] as [Int32])], throws: nil)

        let nd = """
        func @m(%0: i64[3,2] feed "i") {
          %1 = check.index %0 bounds=[2,3] node="nd" op="GatherNd" message="indices{index} = {value} does not index into param shape [2,3]"
          return %1
        }
        """
        try add("GatherNd bounds per component, bad", nd, [try Tensor(shape: [3, 2], scalars: [1, 2, 0, 0, 2, 0] as [Int64])],
                throws: "indices[2,0] = 2 does not index into param shape [2,3] for 'nd' (op: 'GatherNd')")
        try add("GatherNd bounds per component, good", nd, [try Tensor(shape: [3, 2], scalars: [1, 2, 0, 0, 1, 1] as [Int64])], throws: nil)

        BackendRunner.run("check faults", cases, batch: 16)
    }
}
