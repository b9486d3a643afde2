import Foundation
import XCTest
@testable import KilnAOT
import KilnCPU
import KilnIR
import KilnKernels
import KilnTestSupport

/// Objects that call the C runtime (products, kernels split over the pool, checks), linked with
/// the `NAME_runtime.a` built for them: outputs as in-process, errors worded as in-process.
final class ObjectRuntimeTests: XCTestCase {
    static let products = """
    func @p(%0: f32[64,48] feed "a", %1: f32[48,40] feed "b", %2: f64[9,7] feed "c", %3: f64[7,5] feed "d") {
      %4 = dot %0, %1
      %5 = tanh %4
      %6 = dot %2, %3
      %7 = dot %0, %0 transpose_b=true
      return %5, %6, %7
    }
    """

    /// Large enough (64 x 1024 elements) that its kernels split by rows over the pool.
    static let split = """
    func @s(%0: f32[64,1024] feed "x") {
      %1 = tanh %0
      %2 = exp %1
      %3 = reduce.sum %2 axes=[1]
      return %2, %3
    }
    """

    static let gather = """
    func @g(%0: f32[6,4] feed "p", %1: i32[3,2] feed "i") {
      %2 = check.index %1 bounds=[6] node="emb/lookup" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
      %3 = gather %0, %2 axis=0 batch_dims=0
      return %3
    }
    """

    /// Float32 products of 48 terms up to 4 in size, summed in another order than in-process
    /// (OpenBLAS or the AVX-512 tile there; the artifact's own kernel, or the portable tile on
    /// aarch64): a few float32 roundings of the terms' magnitude apart.
    static let productTolerance = 1e-5

    func testProductsOnKilnsOwnKernelsMatchTheInProcessBackend() throws {
        let program = try ObjectProgram(Self.products, name: "prod")
        defer { program.remove() }
        XCTAssertTrue(program.callsRuntime)
        let undefined = try ToolRunner.run(["nm", "-u", program.objectPath]).output
        XCTAssertTrue(undefined.contains("prod_kiln_"), undefined)
        XCTAssertFalse(undefined.split(separator: "\n").contains { $0.hasSuffix(" kiln_sgemm") || $0.hasSuffix(" kiln_parallel_for") }, undefined)
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        XCTAssertGreaterThanOrEqual(result.threads, 1)
        try assertClose(result.fetches, try program.expected(), tolerance: Self.productTolerance)
    }

    func testSplitKernelsRunOnAPoolOfTheSizeAskedFor() throws {
        let program = try ObjectProgram(Self.split, name: "split", threads: 3, concurrentRuns: 20)
        defer { program.remove() }
        XCTAssertTrue(program.callsRuntime)
        let undefined = try ToolRunner.run(["nm", "-u", program.objectPath]).output
        XCTAssertTrue(undefined.contains("split_kiln_parallel_for"), undefined)
        XCTAssertTrue(undefined.contains("split_kiln_pool_configure"), undefined)
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        XCTAssertEqual(result.threads, 3, "NAME_set_threads before the first run sets the pool's size")
        XCTAssertEqual(result.concurrentFailures, 0, "runs from four threads at once (own and temporary arenas) agree")
        // Nothing beyond the C library, libm and pthreads (and the loader).
        let libraries = try ToolRunner.run(["ldd", program.executable]).output
        for line in libraries.split(separator: "\n") {
            let lib = line.trimmingCharacters(in: .whitespaces)
            XCTAssertTrue(["linux-vdso", "libc.so", "libm.so", "libpthread", "ld-linux"].contains { lib.hasPrefix($0) || lib.contains("/" + $0) }, libraries)
        }
        try assertClose(result.fetches, try program.expected(), tolerance: 1e-6)
    }

    func testAFailedCheckReadsAsTheInProcessError() throws {
        let table = try Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init))
        let bad = try Tensor(shape: [3, 2], scalars: [0, 5, 1, 6, 2, -1] as [Int32])
        let program = try ObjectProgram(Self.gather, name: "gath", inputs: [table, bad])
        defer { program.remove() }
        XCTAssertEqual(program.layout.checks.count, 1)
        let result = try program.run()
        XCTAssertEqual(result.code, 3, result.output)
        XCTAssertEqual(result.lastError, 3)
        XCTAssertEqual(result.arenaCode, 3)
        XCTAssertEqual(result.noBuffer, 3, "the code without a message buffer")
        var params = [table, bad]
        XCTAssertThrowsError(try LLVMBackend().compile(program.function).run(&params)) { error in
            guard let e = error as? KilnError else { return XCTFail("\(error)") }
            XCTAssertEqual(result.message, e.message)
            XCTAssertEqual(result.message, "indices[1,1] = 6 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')")
            XCTAssertEqual(result.truncated, String(e.message.prefix(7)), "truncated to size - 1 bytes")
        }

        // Good indices: the same program's artifact runs clean and clears the error.
        let good = try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, 4, 3] as [Int32])
        let clean = try ObjectProgram(Self.gather, name: "gath", inputs: [table, good])
        defer { clean.remove() }
        let ok = try clean.run()
        XCTAssertEqual(ok.code, 0, ok.output)
        XCTAssertEqual(ok.message, "")
        try assertClose(ok.fetches, try clean.expected(), tolerance: 0)
    }

    /// A small CNN with its weights compiled in: a convolution as a patch product, bias, ReLU,
    /// max pooling, a dense layer and a softmax (the digits demo's shape of graph).
    static let cnn: String = {
        func literal(_ shape: [Int], _ seed: Int) -> String {
            let values = (0..<shape.reduce(1, *)).map { Float(($0 * 7919 + seed) % 97) / 97 - 0.5 }
            func nest(_ dims: ArraySlice<Int>, _ start: Int) -> String {
                guard let d = dims.first else { return "\(values[start])" }
                let inner = dims.dropFirst().reduce(1, *)
                return "[" + (0..<d).map { nest(dims.dropFirst(), start + $0 * inner) }.joined(separator: ",") + "]"
            }
            return "constant f32\(shape) \(nest(shape[...], 0))"
        }
        return """
        func @cnn(%0: f32[8,14,14,3] feed "images") {
          %1 = patches %0 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %2 = reshape %1 shape=[1568,27]
          %3 = \(literal([27, 8], 1))
          %4 = dot %2, %3
          %5 = \(literal([8], 2))
          %6 = broadcast %5 shape=[1568,8] dims=[1]
          %7 = add %4, %6
          %8 = constant f32[] 0.0
          %9 = broadcast %8 shape=[1568,8] dims=[]
          %10 = max %7, %9
          %11 = reshape %10 shape=[8,14,14,8]
          %12 = reduce_window.max %11 window=[1,2,2,1] strides=[1,2,2,1] pad_low=[0,0,0,0] pad_high=[0,0,0,0]
          %13 = reshape %12 shape=[8,392]
          %14 = \(literal([392, 10], 3))
          %15 = dot %13, %14
          %16 = reduce.max %15 axes=[1]
          %17 = broadcast %16 shape=[8,10] dims=[0]
          %18 = sub %15, %17
          %19 = exp %18
          %20 = reduce.sum %19 axes=[1]
          %21 = broadcast %20 shape=[8,10] dims=[0]
          %22 = div %19, %21
          return %22, %15
        }
        """
    }()

    func testAConvolutionalNetworkMatchesTheInProcessBackend() throws {
        let program = try ObjectProgram(Self.cnn, name: "cnn", concurrentRuns: 5)
        defer { program.remove() }
        XCTAssertEqual(program.layout.plan.constants.count, 2, "the two weight matrices are table constants")
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
        XCTAssertEqual(result.concurrentFailures, 0)
        try assertClose(result.fetches, try program.expected(), tolerance: Self.productTolerance)
        guard ToolRunner.find("aarch64-linux-gnu-gcc") != nil, ToolRunner.find("qemu-aarch64") != nil else {
            let note = "SKIPPED (aarch64 part): install gcc-aarch64-linux-gnu and qemu-user (scripts/setup.sh does)"
            FileHandle.standardError.write(Data("\(note)\n".utf8))
            throw XCTSkip(note)
        }
        let arm = try ObjectProgram(Self.cnn, name: "arm_cnn", target: try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: nil),
                                    compiler: "aarch64-linux-gnu-gcc", inputs: program.inputs)
        defer { arm.remove() }
        let armResult = try arm.run(runner: ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
        XCTAssertEqual(armResult.code, 0, armResult.output)
        try assertClose(armResult.fetches, try program.expected(), tolerance: Self.productTolerance)
    }

    /// Each artifact's runtime is its own (`NAME_kiln_*`), so two link into one program.
    func testTwoArtifactsWithRuntimesLinkIntoOneProgram() throws {
        let first = try ObjectProgram(Self.split, name: "first", build: false)
        defer { first.remove() }
        let secondLibrary = first.directory.appendingPathComponent("first_runtime.a").path
        try ArtifactRuntime.buildLibrary(prefix: first.layout.runtimePrefix, target: first.layout.spec.target, to: secondLibrary,
                                         environment: ProcessInfo.processInfo.environment)
        let program = try ObjectProgram(Self.products, name: "second", libraries: [first.objectPath, secondLibrary])
        defer { program.remove() }
        let result = try program.run()
        XCTAssertEqual(result.code, 0, result.output)
    }

    func testAArch64RuntimeCallsUnderQemu() throws {
        for tool in [("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"), ("qemu-aarch64", "qemu-user")] where ToolRunner.find(tool.0) == nil {
            let note = "SKIPPED: \(tool.0) is missing; install it with `apt-get install \(tool.1)` (scripts/setup.sh does)"
            FileHandle.standardError.write(Data("\(note)\n".utf8))
            throw XCTSkip(note)
        }
        let target = try CPUTarget.resolve(triple: "aarch64-linux-gnu", cpu: nil)
        let qemu = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
        for (name, ir) in [("arm_prod", Self.products), ("arm_split", Self.split)] {
            let program = try ObjectProgram(ir, name: name, target: target, compiler: "aarch64-linux-gnu-gcc", threads: 2)
            defer { program.remove() }
            XCTAssertTrue(program.callsRuntime)
            let result = try program.run(runner: qemu)
            XCTAssertEqual(result.code, 0, result.output)
            try assertClose(result.fetches, try program.expected(), tolerance: name == "arm_prod" ? Self.productTolerance : 1e-6)
        }
        let table = try Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init))
        let bad = try Tensor(shape: [3, 2], scalars: [0, 5, 1, 2, -7, 3] as [Int32])
        let program = try ObjectProgram(Self.gather, name: "arm_gath", target: target, compiler: "aarch64-linux-gnu-gcc", inputs: [table, bad])
        defer { program.remove() }
        let result = try program.run(runner: qemu)
        XCTAssertEqual(result.code, 3, result.output)
        XCTAssertEqual(result.message, "indices[2,0] = -7 is not in [0, 6) for 'emb/lookup' (op: 'GatherV2')")
    }
}
