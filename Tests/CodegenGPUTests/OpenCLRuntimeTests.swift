import XCTest
import Foundation
import COpenCL
import KilnIR
import KilnPasses
import KilnKernels
@testable import KilnOpenCL

/// The OpenCL runtime on the first device `/gpu:0` can be (PoCL here and in CI): program caches,
/// the device memory pool, variable residency and fault errors. Without a driver every test
/// says so and is skipped.
final class OpenCLRuntimeTests: XCTestCase {
    static func device() throws -> OpenCLDevice {
        guard let d = try OpenCL.gpus(allowCPU: true).first else {
            print("OpenCLRuntimeTests: SKIPPED, no OpenCL device on this machine (install pocl-opencl-icd: make setup)")
            throw XCTSkip("no OpenCL device (install pocl-opencl-icd: make setup)")
        }
        return d
    }

    static func function(_ text: String) throws -> Function {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        return f
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-opencl-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    // MARK: program caches

    func testProgramsAreBuiltOnceThenComeFromMemoryThenFromDiskAndCorruptFilesAreRewritten() throws {
        let context = try OpenCLContext.shared(try Self.device())
        let cache = context.programs
        let saved = (cache.directory, cache.memoryCacheEnabled)
        defer { cache.directory = saved.0; cache.memoryCacheEnabled = saved.1 }
        let dir = try temporaryDirectory()
        cache.directory = dir
        cache.memoryCacheEnabled = true
        // A source no earlier run can have cached.
        let source = "// \(UUID().uuidString)\n__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2.0f; }\n"
        let start = (cache.compiles, cache.memoryHits, cache.diskHits, cache.rejectedFiles)

        let first = try cache.program(source: source, options: OpenCLBackend.buildOptions)
        XCTAssertEqual(cache.compiles - start.0, 1, "the first build compiles")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".clbin") }
        XCTAssertEqual(files.count, 1, "one binary written: \(files)")

        let second = try cache.program(source: source, options: OpenCLBackend.buildOptions)
        XCTAssertEqual(cache.memoryHits - start.1, 1)
        XCTAssertEqual(cache.compiles - start.0, 1, "a memory hit does not compile")
        XCTAssertTrue(first == second, "the memory cache returns the same program")

        // As a second process would: no program in memory, the binary on disk.
        cache.memoryCacheEnabled = false
        let fromDisk = try cache.program(source: source, options: OpenCLBackend.buildOptions)
        XCTAssertEqual(cache.diskHits - start.2, 1, "the binary comes from disk")
        XCTAssertEqual(cache.compiles - start.0, 1, "a disk hit skips the driver's compile")
        try assertTwice(fromDisk, context)

        // Other build options are another program.
        _ = try cache.program(source: source, options: OpenCLBackend.buildOptions + " -cl-mad-enable")
        XCTAssertEqual(cache.compiles - start.0, 2)

        // A truncated file and a file of garbage are ignored and rewritten, never a crash.
        let file = dir.appendingPathComponent(files[0])
        /// The file was rewritten whole: the next build (nothing in memory) loads it. (Not the
        /// same bytes: PoCL's binaries grow with the work-group sizes its kernels have run with.)
        func assertRewritten() throws {
            let hits = cache.diskHits, compiles = cache.compiles
            try assertTwice(try cache.program(source: source, options: OpenCLBackend.buildOptions), context)
            XCTAssertEqual(cache.diskHits, hits + 1, "the rewritten file is read back")
            XCTAssertEqual(cache.compiles, compiles)
        }
        let whole = try Data(contentsOf: file)
        for damaged in [whole.prefix(whole.count / 2), Data("not a program".utf8), whole.prefix(8)] {
            try damaged.write(to: file)
            let compiles = cache.compiles, rejected = cache.rejectedFiles
            let p = try cache.program(source: source, options: OpenCLBackend.buildOptions)
            XCTAssertEqual(cache.compiles, compiles + 1, "a damaged file means a compile")
            XCTAssertEqual(cache.rejectedFiles, rejected + 1, "the damaged file is counted")
            try assertTwice(p, context)
            try assertRewritten()
        }
        // A flipped byte inside the binary fails the checksum.
        var flipped = whole
        flipped[flipped.count - 1] ^= 0xff
        try flipped.write(to: file)
        let rejected = cache.rejectedFiles
        _ = try cache.program(source: source, options: OpenCLBackend.buildOptions)
        XCTAssertEqual(cache.rejectedFiles, rejected + 1)
        try assertRewritten()
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: dir.path).allSatisfy { !$0.hasSuffix(".tmp") }, "no temporary file left")
    }

    func testTheDiskCacheStaysWithinItsLimitDroppingTheLeastRecentlyUsed() throws {
        let cache = try OpenCLContext.shared(try Self.device()).programs
        let saved = (cache.directory, cache.diskLimitBytes)
        defer { cache.directory = saved.0; cache.diskLimitBytes = saved.1 }
        let dir = try temporaryDirectory()
        cache.directory = dir
        func binaries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".clbin") } }
        let sources = (0..<3).map { "// \(UUID().uuidString) \($0)\n__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2.0f; }\n" }
        for s in sources { _ = try cache.program(source: s, options: OpenCLBackend.buildOptions) }
        XCTAssertEqual(try binaries().count, 3, "within the default limit every binary stays")
        // A limit below two files: each write keeps only the file just written.
        cache.diskLimitBytes = 1
        _ = try cache.program(source: sources[0] + " ", options: OpenCLBackend.buildOptions)
        let left = try binaries()
        XCTAssertEqual(left.count, 1, "\(left)")
    }

    func testThreadsAskingForOneProgramAtOnceBuildItOnce() throws {
        let cache = try OpenCLContext.shared(try Self.device()).programs
        let saved = cache.directory
        defer { cache.directory = saved }
        cache.directory = try temporaryDirectory()
        let source = "// \(UUID().uuidString)\n__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2.0f; }\n"
        let compiles = cache.compiles, hits = cache.memoryHits
        let errors = Errors()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { _ = try cache.program(source: source, options: OpenCLBackend.buildOptions) } catch { errors.add(error) }
        }
        XCTAssertEqual(errors.all, [])
        XCTAssertEqual(cache.compiles - compiles, 1, "one compile, the other threads wait for it")
        XCTAssertEqual(cache.memoryHits - hits, 3)
    }

    func testABuildFailureShowsTheBuildLog() throws {
        let context = try OpenCLContext.shared(try Self.device())
        let source = "// \(UUID().uuidString)\n__kernel void broken(__global float *x) { x[0] = undeclared_name; }\n"
        XCTAssertThrowsError(try context.programs.program(source: source, options: OpenCLBackend.buildOptions)) { e in
            let message = "\(e)"
            XCTAssertTrue(message.contains("build log") && message.contains("undeclared_name"), message)
        }
    }

    /// Runs the test kernel `twice` of `p` on [1, 2, 3, 4].
    func assertTwice(_ p: cl_program, _ context: OpenCLContext) throws {
        var status: cl_int = 0
        let k = clCreateKernel(p, "twice", &status)
        XCTAssertEqual(status, CL_SUCCESS)
        defer { clReleaseKernel(k) }
        var values: [Float] = [1, 2, 3, 4]
        let pool = try OpenCLMemoryPool(context, options: OpenCLMemoryOptions(allowGrowth: true), limit: 1 << 20)
        let b = try pool.allocate(16, for: "test")
        try context.check(clEnqueueWriteBuffer(context.queue, b.mem, cl_bool(CL_TRUE), 0, 16, &values, 0, nil, nil), "write")
        var m: cl_mem? = b.mem
        try context.check(clSetKernelArg(k, 0, MemoryLayout<cl_mem?>.size, &m), "arg")
        var global = 4
        try context.check(clEnqueueNDRangeKernel(context.queue, k, 1, nil, &global, nil, 0, nil, nil), "launch")
        try context.check(clEnqueueReadBuffer(context.queue, b.mem, cl_bool(CL_TRUE), 0, 16, &values, 0, nil, nil), "read")
        XCTAssertEqual(values, [2, 4, 6, 8])
    }

    // MARK: device memory

    func testMemoryLimitsFollowTensorFlowsGPUOptions() {
        let gib: UInt64 = 1 << 30
        // Unset fraction: all but max(300 MiB, 5%) of 16 GiB; 225 MiB below 2 GiB.
        XCTAssertEqual(OpenCLMemoryOptions().limit(globalMemoryBytes: 16 * gib), Int(16 * gib) - Int(Double(16 * gib) * 0.05))
        XCTAssertEqual(OpenCLMemoryOptions().limit(globalMemoryBytes: 4 * gib), Int(4 * gib) - 314_572_800)
        XCTAssertEqual(OpenCLMemoryOptions().limit(globalMemoryBytes: gib), Int(gib) - (225 << 20))
        XCTAssertEqual(OpenCLMemoryOptions(memoryFraction: 0.25).limit(globalMemoryBytes: 16 * gib), Int(4 * gib))
        XCTAssertEqual(OpenCLMemoryOptions(allowGrowth: true, memoryFraction: 0.5).limit(globalMemoryBytes: 16 * gib), Int(8 * gib))
    }

    func testAllowGrowthTakesMemoryOnDemandAndAReservedPoolHoldsItAllUpFront() throws {
        let context = try OpenCLContext.shared(try Self.device())
        let growth = try OpenCLMemoryPool(context, options: OpenCLMemoryOptions(allowGrowth: true), limit: 1 << 20)
        XCTAssertFalse(growth.committed)
        XCTAssertEqual(growth.bytesHeld, 0, "allow_growth holds nothing before the first buffer")
        let reserved = try OpenCLMemoryPool(context, options: OpenCLMemoryOptions(memoryFraction: 0.001), limit: 1 << 20, commit: true)
        XCTAssertTrue(reserved.committed)
        XCTAssertEqual(reserved.bytesHeld, 1 << 20, "a reserved pool holds its limit before the first buffer")

        for pool in [growth, reserved] {
            var a: OpenCLBuffer? = try pool.allocate(600 << 10, for: "tensor a")
            XCTAssertEqual(pool.bytesInUse, 600 << 10)
            XCTAssertThrowsError(try pool.allocate(600 << 10, for: "tensor with shape[600,256] and type float for node 'big'")) { e in
                let k = e as? KilnError
                XCTAssertEqual(k?.code, .resourceExhausted)
                XCTAssertTrue(k?.message.contains("node 'big'") == true && k?.message.contains("\(1 << 20)") == true, "\(e)")
            }
            a = nil
            XCTAssertEqual(pool.bytesInUse, 0, "a buffer's memory goes back to the pool")
            // Four quarters, freed out of order, merge back into one range of the whole pool.
            var quarters: [OpenCLBuffer?] = try (0..<4).map { try pool.allocate(256 << 10, for: "quarter \($0)") }
            for i in [1, 3, 0, 2] { quarters[i] = nil }
            let whole = try pool.allocate(1 << 20, for: "whole")
            // Data goes through a buffer carved from the reservation as through any other.
            var values = (0..<16).map(Float.init), back = [Float](repeating: 0, count: 16)
            try context.check(clEnqueueWriteBuffer(context.queue, whole.mem, cl_bool(CL_TRUE), 0, 64, &values, 0, nil, nil), "write")
            try context.check(clEnqueueReadBuffer(context.queue, whole.mem, cl_bool(CL_TRUE), 0, 64, &back, 0, nil, nil), "read")
            XCTAssertEqual(back, values)
            XCTAssertEqual(pool.peakBytesInUse, 1 << 20)
            withExtendedLifetime((a, quarters)) {}
        }
        XCTAssertEqual(growth.bytesHeld, 0)
        XCTAssertEqual(reserved.bytesHeld, 1 << 20)
    }

    func testABufferOverTheLargestAllocationIsResourceExhausted() throws {
        let device = try Self.device()
        let pool = try OpenCLMemoryPool(try OpenCLContext.shared(device), options: OpenCLMemoryOptions(allowGrowth: true), limit: .max)
        XCTAssertThrowsError(try pool.allocate(Int(device.maxAllocBytes) + 1, for: "tensor for node 'huge'")) { e in
            XCTAssertEqual((e as? KilnError)?.code, .resourceExhausted)
            XCTAssertTrue("\(e)".contains("CL_DEVICE_MAX_MEM_ALLOC_SIZE") && "\(e)".contains("node 'huge'"), "\(e)")
        }
    }

    func testATensorOverTheLargestAllocationNamesItsValueAtCompileTime() throws {
        let device = try Self.device()
        let n = Int(device.maxAllocBytes / 4) + 16
        let f = try Self.function("""
        func @big(%0: f32[\(n)] feed "x:0") {
          %1 = exp %0
          return %1
        }
        """)
        XCTAssertThrowsError(try OpenCLBackend(device: device).compile(f, options: CompileOptions())) { e in
            XCTAssertEqual((e as? KilnError)?.code, .resourceExhausted)
            XCTAssertTrue("\(e)".contains("feed 'x:0'") && "\(e)".contains("CL_DEVICE_MAX_MEM_ALLOC_SIZE"), "\(e)")
        }
    }

    // MARK: executables

    let accumulate = """
    func @step(%0: f32[4] var "v", %1: f32[4] feed "x") {
      %2 = var.read %0
      %3 = add %2, %1
      %4 = var.write %0, %3
      return %3
    }
    """

    func testAPlainRunUploadsEverythingAndCopiesWrittenVariablesBack() throws {
        let exe = try OpenCLBackend(device: try Self.device()).compile(try Self.function(accumulate), options: CompileOptions())
        XCTAssertEqual(exe.backendName, "opencl")
        var params = [try Tensor(shape: [4], scalars: [1, 2, 3, 4] as [Float]), try Tensor(shape: [4], scalars: [10, 20, 30, 40] as [Float])]
        let out = try exe.run(&params)
        XCTAssertEqual(try out[0].scalars(as: Float.self), [11, 22, 33, 44])
        XCTAssertEqual(try params[0].scalars(as: Float.self), [11, 22, 33, 44], "the written variable is back in its host bytes")
        _ = try exe.run(&params)
        XCTAssertEqual(try params[0].scalars(as: Float.self), [21, 42, 63, 84])
    }

    func testAVariableWrittenOnTheDeviceStaysThereUntilTheHostNeedsIt() throws {
        let backend = OpenCLBackend(device: try Self.device())
        let step = try XCTUnwrap(try backend.compile(try Self.function(accumulate), options: CompileOptions()) as? OpenCLExecutable)
        let read = try XCTUnwrap(try backend.compile(try Self.function("""
        func @read(%0: f32[4] var "v") {
          %1 = var.read %0
          %2 = mul %1, %1
          return %2
        }
        """), options: CompileOptions()) as? OpenCLExecutable)
        let residence = VariableResidence()
        var v: [Float] = [1, 2, 3, 4], x: [Float] = [1, 1, 1, 1], out = [Float](repeating: 0, count: 4)
        func run(_ e: OpenCLExecutable, _ residences: [VariableResidence?], _ params: [UnsafeMutableRawPointer]) throws {
            var inputs: [UnsafeMutableRawPointer?] = params
            try out.withUnsafeMutableBytes { o in
                var outputs: [UnsafeMutableRawPointer?] = [o.baseAddress]
                try e.run(inputs: &inputs, outputs: &outputs, residences: residences)
            }
        }
        try v.withUnsafeMutableBytes { vb in
            try x.withUnsafeMutableBytes { xb in
                let vp = vb.baseAddress!, xp = xb.baseAddress!
                try run(step, [residence, nil], [vp, xp])
                XCTAssertEqual(out, [2, 3, 4, 5])
                XCTAssertFalse(residence.hostCurrent, "the device wrote the variable: the host bytes are stale")
                XCTAssertTrue(residence.deviceCurrent)
                XCTAssertEqual(Array(vb.bindMemory(to: Float.self)), [1, 2, 3, 4], "nothing was copied back")
                // The device copy is current, so the (stale) host bytes are not uploaded again.
                vb.bindMemory(to: Float.self).update(repeating: -100)
                try run(step, [residence, nil], [vp, xp])
                XCTAssertEqual(out, [3, 4, 5, 6])
                // Another executable on the device reads the same copy.
                try run(read, [residence], [vp])
                XCTAssertEqual(out, [9, 16, 25, 36])
                // The host needs it: one read brings it back.
                try residence.syncToHost(vp, bytes: 16)
                XCTAssertTrue(residence.hostCurrent)
                XCTAssertEqual(Array(vb.bindMemory(to: Float.self)), [3, 4, 5, 6])
                // A host write (a restore, an assignment on the CPU) makes the device copy stale: uploaded again.
                vb.bindMemory(to: Float.self).update(repeating: 10)
                residence.hostWritten()
                try run(step, [residence, nil], [vp, xp])
                XCTAssertEqual(out, [11, 11, 11, 11])
                XCTAssertEqual(residence.deviceCopy?.deviceName, step.deviceName)
            }
        }
    }

    func testAFailedCheckIsTheCPUsErrorAndWritesNothing() throws {
        let f = try Self.function("""
        func @m(%0: f32[6,4] var "v", %1: i32[6] feed "i", %2: f32[6,4] feed "w") {
          %3 = check.index %1 bounds=[6] node="g" op="GatherV2" message="indices{index} = {value} is not in [0, 6)"
          %4 = var.read %0
          %5 = gather %2, %3 axis=0 batch_dims=0
          %6 = add %4, %5
          %7 = var.write %0, %6
          return
        }
        """)
        let exe = try OpenCLBackend(device: try Self.device()).compile(f, options: CompileOptions())
        let table = try Tensor(shape: [6, 4], scalars: (0..<24).map(Float.init))
        let ones = try Tensor(shape: [6, 4], scalars: [Float](repeating: 1, count: 24))
        var params = [table, try Tensor(shape: [6], scalars: [0, 1, 2, 3, 9, -5] as [Int32]), ones]
        XCTAssertThrowsError(try exe.run(&params)) { e in
            XCTAssertEqual(e as? KilnError, KilnError(.invalidArgument, "indices[4] = 9 is not in [0, 6) for 'g' (op: 'GatherV2')"))
        }
        XCTAssertEqual(try params[0].scalars(as: Float.self), (0..<24).map(Float.init), "the variable is untouched")
        // The record is cleared before each run: a good run after a failed one succeeds.
        params[1] = try Tensor(shape: [6], scalars: [5, 4, 3, 2, 1, 0] as [Int32])
        _ = try exe.run(&params)
        XCTAssertEqual(try params[0].scalars(as: Float.self), (0..<24).map { Float($0) + 1 }, "v += w[i] with w all ones")
    }

    func testProfiledRunsTimeEveryPlanKernel() throws {
        var options = CompileOptions()
        options.profile = true
        options.fuse = false
        let exe = try OpenCLBackend(device: try Self.device()).compile(try Self.function(accumulate), options: options)
        var params = [try Tensor(shape: [4], scalars: [1, 2, 3, 4] as [Float]), try Tensor(shape: [4], scalars: [1, 1, 1, 1] as [Float])]
        _ = try exe.run(&params)
        _ = try exe.run(&params)
        XCTAssertEqual(exe.profiledRuns, 2)
        XCTAssertEqual(exe.kernelNanoseconds.count, exe.plan.kernels.count)
        XCTAssertGreaterThan(exe.kernelNanoseconds.reduce(0, +), 0)
    }

    func testKeepSourceKeepsTheProgramAsBuilt() throws {
        var options = CompileOptions()
        options.keepSource = true
        let exe = try OpenCLBackend(device: try Self.device()).compile(try Self.function(accumulate), options: options)
        XCTAssertTrue(exe.stats.source?.contains("__kernel") == true)
    }
}

/// Errors collected from several threads.
final class Errors: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ e: any Error) { lock.withLock { list.append("\(e)") } }
    var all: [String] { lock.withLock { list } }
}
