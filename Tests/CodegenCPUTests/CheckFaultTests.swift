import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// `check` in compiled code: failures reach the fault record and become the same error the
/// reference evaluator throws, fused or not, split across the pool or not.
final class CheckFaultTests: XCTestCase {
    func compile(_ text: String, fuse: Bool = true) throws -> (Function, any Executable) {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        return (f, try LLVMBackend().compile(f, options: CompileOptions(fuse: fuse)))
    }

    /// Both evaluators throw `message`, or both give the same results and variables.
    func assertSame(_ text: String, _ params: [Tensor], fuse: Bool = true, throws message: String?, file: StaticString = #filePath, line: UInt = #line) throws {
        let (f, exe) = try compile(text, fuse: fuse)
        var jitParams = params
        let compiled = Result { try exe.run(&jitParams) }
        let reference = Result { try ReferenceEvaluator.run(f, parameters: params) }
        switch (compiled, reference) {
        case (.failure(let c), .failure(let r)):
            XCTAssertEqual(c as? KilnError, r as? KilnError, file: file, line: line)
            XCTAssertEqual((c as? KilnError)?.message, message, file: file, line: line)
        case (.success(let got), .success(let want)):
            XCTAssertNil(message, "expected a fault", file: file, line: line)
            XCTAssertEqual(got + jitParams, want.results + want.parameters, file: file, line: line)
        default:
            XCTFail("compiled \(compiled), reference \(reference)", file: file, line: line)
        }
    }

    let gatherText = """
    func @m(%0: f32[6,4] feed "p", %1: i32[3,2] feed "i") {
      %2 = check.index %1 bounds=[6] node="emb/lookup" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
      %3 = gather %0, %2 axis=0 batch_dims=0
      %4 = constant f32[] 2.0
      %5 = broadcast %4 shape=[3,2,4] dims=[]
      %6 = mul %3, %5
      return %6
    }
    """
    let table = try! Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init))

    func testGatherFusedIntoItsConsumerReportsTheFirstBadIndexLikeTheReference() throws {
        let (_, exe) = try compile(gatherText)
        XCTAssertEqual(exe.plan.kernels.count, 1, "check, gather and mul are one loop")
        for fuse in [true, false] {
            try assertSame(gatherText, [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 6, 2, -1] as [Int32])], fuse: fuse,
                           throws: "indices[1,1] = 6 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')")
            try assertSame(gatherText, [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, -7, 3] as [Int32])], fuse: fuse,
                           throws: "indices[2,0] = -7 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')")
            try assertSame(gatherText, [table, try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, 4, 3] as [Int32])], fuse: fuse, throws: nil)
        }
    }

    func testOneHotSegmentSumThroughAProductReportsTheBadId() throws {
        // UnsortedSegmentSum's lowering: a one-hot matrix from compare(ids, iota) times the data.
        let text = """
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
        try assertSame(text, [data, try Tensor(shape: [4], scalars: [0, 4, 9, 7] as [Int64])], throws: "segment_ids[2] = 9 is out of range [0, 5) for 'seg' (op: 'UnsortedSegmentSum')")
        try assertSame(text, [data, try Tensor(shape: [4], scalars: [0, 4, -1, 4] as [Int64])], throws: nil)
    }

    func testDivisionByZeroInEveryIntegerTypeAndTheFirstOfTwoChecksWins() throws {
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
            try assertSame(text, [t([0, 1, 2, 3, 4, 5]), t([1, 1, 1, 0, 1, 1])], throws: "Integer division by zero for 'a' (op: 'FloorDiv')")
            try assertSame(text, [t([0, 1, 2, 3, 4, 5]), t([1, 1, 1, 2, 1, 1])], throws: "Integer division by zero for 'b' (op: 'FloorMod')")
            try assertSame(text, [t([7, 1, 2, 3, 4, 5]), t([2, 1, 1, 2, 1, 3])], throws: nil)
        }
    }

    func testParallelKernelReportsTheLowestBadPositionWhicheverPartFoundIt() throws {
        let text = """
        func @m(%0: f32[10,16] feed "p", %1: i32[4096] feed "i") {
          %2 = check.index %1 bounds=[10] node="g" op="GatherV2" message="indices{index} = {value} is not in [0, 10)"
          %3 = gather %0, %2 axis=0 batch_dims=0
          %4 = tanh %3
          return %4
        }
        """
        XCTAssertGreaterThanOrEqual(4096 * 16, LLVMBackend().target.parallelThreshold, "the kernel is split across the pool")
        var idx = (0..<4096).map { Int32($0 % 10) }
        idx[4000] = 10
        idx[3000] = 11
        let p = try Tensor(shape: [10, 16], scalars: (0..<160).map { Float($0) / 160 })
        try assertSame(text, [p, try Tensor(shape: [4096], scalars: idx)], throws: "indices[3000] = 11 is not in [0, 10) for 'g' (op: 'GatherV2')")
        idx[3] = -2
        try assertSame(text, [p, try Tensor(shape: [4096], scalars: idx)], throws: "indices[3] = -2 is not in [0, 10) for 'g' (op: 'GatherV2')")
    }

    func testACheckInsideAVariableWriteRunsFirstSoTheVariableIsUntouched() throws {
        // v += w[i] (a sparse update): the write's loop would evaluate the check row by row.
        let text = """
        func @m(%0: f32[6,4] var "v", %1: i32[6] feed "i", %2: f32[6,4] feed "w") {
          %3 = check.index %1 bounds=[6] node="g" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
          %4 = var.read %0
          %5 = gather %2, %3 axis=0 batch_dims=0
          %6 = add %4, %5
          %7 = var.write %0, %6
          return
        }
        """
        let (f, exe) = try compile(text)
        XCTAssertEqual(exe.plan.reasons[f.body[0].id], .checkBeforeWrite, "the check is a kernel of its own")
        let w = try Tensor(shape: [6, 4], scalars: [Float](repeating: 1, count: 24))
        var params = [table, try Tensor(shape: [6], scalars: [0, 1, 2, 3, 9, 5] as [Int32]), w]
        XCTAssertThrowsError(try exe.run(&params))
        XCTAssertEqual(params[0], table)
        try assertSame(text, [table, try Tensor(shape: [6], scalars: [5, 4, 3, 2, 1, 0] as [Int32]), w], throws: nil)
    }

    func testAWriteReadingItsVariableThroughAGatherReadsTheOldValues() throws {
        // v = v + v[reversed]: the gather reads rows the write's loop has already overwritten
        // unless the sum gets a buffer first.
        try assertSame("""
        func @m(%0: f32[6,4] var "v", %1: i32[6] feed "i") {
          %2 = var.read %0
          %3 = gather %2, %1 axis=0 batch_dims=0
          %4 = add %2, %3
          %5 = var.write %0, %4
          return
        }
        """, [table, try Tensor(shape: [6], scalars: [5, 4, 3, 2, 1, 0] as [Int32])], throws: nil)
    }

    func testGatherNdBoundsPerComponent() throws {
        let text = """
        func @m(%0: i64[3,2] feed "i") {
          %1 = check.index %0 bounds=[2,3] node="nd" op="GatherNd" message="indices{index} = {value} does not index into param shape [2,3]"
          return %1
        }
        """
        try assertSame(text, [try Tensor(shape: [3, 2], scalars: [1, 2, 0, 0, 2, 0] as [Int64])], throws: "indices[2,0] = 2 does not index into param shape [2,3] for 'nd' (op: 'GatherNd')")
        try assertSame(text, [try Tensor(shape: [3, 2], scalars: [1, 2, 0, 0, 1, 1] as [Int64])], throws: nil)
    }
}
