import XCTest
import Foundation
import Kiln
@testable import KilnRuntime
import KilnOpenCL

/// TensorFlow's placement rules and device segments. A stand-in `/gpu:0` (a native backend the
/// session treats as a second device: `SessionConfig.gpuStandIns`) checks placement, the
/// segments and the values crossing between them without an OpenCL driver; the OpenCL device
/// itself is checked by DeviceGoldenTests.
final class PlacementTests: XCTestCase {
    /// A session with one stand-in GPU (LLVM-compiled, like the CPU).
    func standIn(soft: Bool = false, log: Bool = false) -> SessionConfig {
        var c = SessionConfig(allowSoftPlacement: soft, logDevicePlacement: log)
        c.gpuStandIns = [.llvm]
        return c
    }

    /// A session with no GPU at all (OpenCL CPU devices do not count).
    func noGPU(soft: Bool = false) -> SessionConfig {
        SessionConfig(allowSoftPlacement: soft, openCLAllowCPU: false)
    }

    func testDeviceSpecificationsParseInEveryTensorFlowSpelling() {
        let gpu0 = PlacementDevice.gpu(0), gpu1 = PlacementDevice.gpu(1), cpu = PlacementDevice.cpu
        let cases: [(String, String, [PlacementDevice])] = [
            ("/gpu:0", "/device:GPU:0", [gpu0]), ("/GPU:1", "/device:GPU:1", [gpu1]), ("gpu:1", "/device:GPU:1", [gpu1]),
            ("/device:GPU:0", "/device:GPU:0", [gpu0]), ("/device:gpu:1", "/device:GPU:1", [gpu1]),
            ("/job:localhost/replica:0/task:0/device:GPU:0", "/job:localhost/replica:0/task:0/device:GPU:0", [gpu0]),
            ("/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:0", [cpu]),
            ("/cpu:0", "/device:CPU:0", [cpu]), ("/device:GPU:*", "/device:GPU:*", [gpu0, gpu1]), ("/device:GPU", "/device:GPU:*", [gpu0, gpu1]),
            ("/job:localhost", "/job:localhost", [cpu, gpu0, gpu1]), ("", "", [cpu, gpu0, gpu1]),
            ("/job:worker/device:GPU:0", "/job:worker/device:GPU:0", []), ("/task:1/cpu:0", "/task:1/device:CPU:0", []),
            ("/device:TPU:0", "/device:TPU:0", []),
        ]
        for (text, canonical, matches) in cases {
            guard let spec = DeviceSpec(text) else { XCTFail("'\(text)' did not parse"); continue }
            XCTAssertEqual(spec.canonical, canonical, text)
            XCTAssertEqual([cpu, gpu0, gpu1].filter { spec.matches($0) }, matches, text)
        }
        for bad in ["/gpu:x", "/device:GPU:0:1", "/job:", "/replica:a", "/a:b:c", "/gpu:-1"] {
            XCTAssertNil(DeviceSpec(bad), bad)
        }
    }

    func testOpsWithoutADeviceGoToTheGPUAndHostOpsToTheCPU() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let y = try g.exp(x, name: "y")
        let names = try g.constant(Tensor(shape: [1], strings: [Array("a".utf8)]), name: "names")
        let p = Placement(graph: g, devices: [.cpu, .gpu(0)], allowSoftPlacement: false)
        XCTAssertEqual(try p.device(of: y.op), .gpu(0))
        XCTAssertEqual(try p.device(of: names.op), .cpu)
        let cpuOnly = Placement(graph: g, devices: [.cpu], allowSoftPlacement: false)
        XCTAssertEqual(try cpuOnly.device(of: y.op), .cpu)
        XCTAssertTrue(cpuOnly.allOnCPU)
    }

    func testAnAbsentDeviceFailsWithTensorFlowsWordingUnlessSoftPlacement() throws {
        let g = Graph()
        let c = try g.constant([0, 1] as [Float])
        let y = try g.device("/gpu:1") { try g.exp(c, name: "y") }
        XCTAssertThrowsError(try Session(graph: g, config: standIn()).run(y)) { error in
            XCTAssertEqual((error as? KilnError)?.message, "Cannot assign a device for operation 'y': Could not satisfy explicit device specification '/device:GPU:1' because no devices matching that specification are registered in this process; available devices: /job:localhost/replica:0/task:0/device:CPU:0, /job:localhost/replica:0/task:0/device:GPU:0")
        }
        let err = try XCTUnwrap(captureStandardError {
            XCTAssertEqual(try Session(graph: g, config: standIn(soft: true, log: true)).run(y).scalars(as: Float.self), [1, Float(M_E)])
        })
        // Soft placement puts it where it would go without the request: the GPU that is present.
        XCTAssertTrue(err.contains("y: (Exp): /job:localhost/replica:0/task:0/device:GPU:0\n"), err)
        XCTAssertThrowsError(try Session(graph: g, config: noGPU()).run(y)) { error in
            XCTAssertTrue((error as? KilnError)?.message.hasSuffix("available devices: /job:localhost/replica:0/task:0/device:CPU:0") == true, "\(error)")
        }
        XCTAssertEqual(try Session(graph: g, config: noGPU(soft: true)).run(y).scalars(as: Float.self), [1, Float(M_E)])
    }

    func testAHostOpOnTheGPUHasNoKernelThereUnlessSoftPlacement() throws {
        let g = Graph()
        let s = try g.device("/gpu:0") { try g.constant(Tensor(shape: [1], strings: [Array("a".utf8)]), name: "s") }
        XCTAssertThrowsError(try Session(graph: g, config: standIn()).run(s)) { error in
            XCTAssertEqual((error as? KilnError)?.message, "Cannot assign a device for operation 's': Could not satisfy explicit device specification '/device:GPU:0' because no supported kernel for GPU devices is available.")
        }
        let err = try XCTUnwrap(captureStandardError {
            XCTAssertEqual(try Session(graph: g, config: standIn(soft: true, log: true)).run(s).shape, [1])
        })
        XCTAssertTrue(err.contains("s: (Const): /job:localhost/replica:0/task:0/device:CPU:0\n"), err)
    }

    func testAVariableIsColocatedWithItsReadsAndAssignsAndConflictsAreReported() throws {
        let g = Graph()
        let v = try g.device("/cpu:0") { try g.variable([1, 2] as [Float], name: "v") }
        let bump = try g.assign(v, try g.multiply(v, try g.constant([3, 3] as [Float], name: "three"), name: "times"), name: "bump")
        let err = try XCTUnwrap(captureStandardError {
            let sess = try Session(graph: g, config: standIn(log: true))
            try sess.run(try g.globalVariablesInitializer())
            XCTAssertEqual(try sess.run(bump).scalars(as: Float.self), [3, 6])
            XCTAssertEqual(try sess.value(of: v)?.scalars(as: Float.self), [3, 6])
        })
        // The variable, its read and its Assign are on the CPU (the variable asked for it); the
        // product, with no device, on the GPU.
        for line in ["v: (VariableV2): /job:localhost/replica:0/task:0/device:CPU:0", "v/read: (Identity): /job:localhost/replica:0/task:0/device:CPU:0",
                     "bump: (Assign): /job:localhost/replica:0/task:0/device:CPU:0", "times: (Mul): /job:localhost/replica:0/task:0/device:GPU:0"] {
            XCTAssertTrue(err.contains(line + "\n"), "missing '\(line)' in:\n\(err)")
        }
        XCTAssertEqual(err.components(separatedBy: "times: (Mul)").count, 2, "each node is logged once:\n\(err)")

        let h = Graph()
        let w = try h.device("/cpu:0") { try h.variable([1] as [Float], name: "w") }
        let set = try h.device("/gpu:0") { try h.assign(w, try h.constant([2] as [Float]), name: "set") }
        XCTAssertThrowsError(try Session(graph: h, config: standIn()).run(set)) { error in
            let m = (error as? KilnError)?.message ?? "\(error)"
            XCTAssertEqual(m, "Cannot colocate nodes 'w' and 'set': Cannot merge devices with incompatible types: '/device:CPU:0' and '/device:GPU:0'")
        }
        let soft = try Session(graph: h, config: standIn(soft: true))
        XCTAssertEqual(try soft.run(set).scalars(as: Float.self), [2])
    }

    func testImportedColocationAttributesJoinGroups() throws {
        let g = Graph()
        let c = try g.device("/cpu:0") { try g.constant([1] as [Float], name: "c") }
        let d = try g.addOperation("Exp", name: "d", inputs: [c], attrs: ["T": .type(.float32), "_class": .strings(["loc:@c"])])
        let p = Placement(graph: g, devices: [.cpu, .gpu(0)], allowSoftPlacement: false)
        XCTAssertEqual(try p.device(of: d), .cpu)
    }

    /// A network split over both devices, trained for a few steps, matches the CPU alone
    /// (variables on the GPU, the loss on the CPU, values crossing both ways every step).
    func testAGraphSplitAcrossCPUAndGPUEqualsTheCPUOnlyRun() throws {
        func train(_ config: SessionConfig, split: Bool) throws -> (losses: [Float], w: [Float], compiles: Int) {
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [4, 3], name: "x")
            let labels = try g.placeholder(.float32, shape: [4, 2], name: "labels")
            let gpu = split ? "/gpu:0" : ""
            let (w, h) = try g.device(gpu) { () throws -> (Variable, Output) in
                let w = try g.variable(Tensor(shape: [3, 2], scalars: [0.1, -0.2, 0.3, 0.05, -0.1, 0.2] as [Float]), name: "w")
                return (w, try g.tanh(try g.matmul(x, w)))
            }
            let loss = try g.device(split ? "/cpu:0" : "") { try g.reduceMean(try g.square(try g.subtract(h, labels))) }
            let train = try GradientDescentOptimizer(g, learningRate: 0.5).minimize(loss)
            let sess = try Session(graph: g, config: config)
            try sess.run(try g.globalVariablesInitializer())
            let xs = try Tensor(shape: [4, 3], scalars: (0..<12).map { Float($0 % 5) * 0.25 - 0.5 })
            let ys = try Tensor(shape: [4, 2], scalars: [1, 0, 0, 1, 1, 0, 0, 1] as [Float])
            var losses: [Float] = []
            for _ in 0..<5 {
                let r = try sess.run([loss], feeds: [x: xs, labels: ys], targets: [train])
                losses.append(try r[0].scalar(as: Float.self))
            }
            return (losses, try XCTUnwrap(sess.value(of: w)).scalars(as: Float.self), sess.compileCount)
        }
        let cpu = try train(noGPU(), split: false)
        let split = try train(standIn(), split: true)
        XCTAssertEqual(cpu.losses.count, 5)
        XCTAssertLessThan(cpu.losses[4], cpu.losses[0])
        for (a, b) in zip(cpu.losses + cpu.w, split.losses + split.w) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(a))) }
        // The split training step compiled more than one executable (one per segment).
        XCTAssertGreaterThan(split.compiles, cpu.compiles)
    }

    func testSegmentsFollowDependenciesBackAndForth() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [3], name: "x")
        let a = try g.device("/gpu:0") { try g.exp(x, name: "a") }
        let b = try g.device("/cpu:0") { try g.add(a, x, name: "b") }
        let c = try g.device("/gpu:0") { try g.multiply(b, a, name: "c") }
        let d = try g.device("/cpu:0") { try g.subtract(c, b, name: "d") }
        let feed = try Tensor(shape: [3], scalars: [0, 0.5, -1] as [Float])
        let sess = try Session(graph: g, config: standIn())
        let r = try sess.run([d, a], feeds: [x: feed])
        let cpu = try Session(graph: g, config: noGPU(soft: true)).run([d, a], feeds: [x: feed])
        XCTAssertEqual(try r[0].scalars(as: Float.self), try cpu[0].scalars(as: Float.self))
        XCTAssertEqual(try r[1].scalars(as: Float.self), try cpu[1].scalars(as: Float.self))
        XCTAssertEqual(sess.compileCount, 4, "GPU, CPU, GPU, CPU: four segments")
        XCTAssertEqual(sess.lastRunSegmentCount, 4)
        _ = try sess.run([d, a], feeds: [x: feed])
        XCTAssertEqual(sess.compileCount, 4, "the segments are cached with the run signature")
    }

    func testAGraphWithoutDevicesRunsAsOneExecutableOnTheCPU() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [3], name: "x")
        let y = try g.add(try g.exp(x), x)
        let sess = try Session(graph: g, config: noGPU())
        _ = try sess.run(y, feeds: [x: Tensor(shape: [3], scalars: [1, 2, 3] as [Float])])
        XCTAssertEqual(sess.compileCount, 1)
    }

    func testGPUOptionsBecomeTheDevicePoolsOptions() {
        XCTAssertEqual(GPUBackends.memoryOptions(GPUOptions()), OpenCLMemoryOptions(allowGrowth: false, memoryFraction: nil))
        XCTAssertEqual(GPUBackends.memoryOptions(GPUOptions(allowGrowth: true, perProcessGpuMemoryFraction: 0.25)),
                       OpenCLMemoryOptions(allowGrowth: true, memoryFraction: 0.25))
    }

    func testGPUMemoryFractionMustBePositive() throws {
        let g = Graph()
        for bad in [0, -0.5, Double.nan] {
            XCTAssertThrowsError(try Session(graph: g, config: SessionConfig(gpuOptions: GPUOptions(perProcessGpuMemoryFraction: bad)))) { error in
                XCTAssertTrue("\(error)".contains("gpuOptions.perProcessGpuMemoryFraction must be above 0"), "\(error)")
            }
        }
        XCTAssertNoThrow(try Session(graph: g, config: SessionConfig(gpuOptions: GPUOptions(allowGrowth: true, perProcessGpuMemoryFraction: 0.5))))
    }
}

/// What `body` writes to standard error (fd 2); standard error is restored afterwards.
func captureStandardError(_ body: () throws -> Void) throws -> String? {
    final class Box: @unchecked Sendable { var data = Data() }
    let pipe = Pipe()
    let saved = dup(2)
    dup2(pipe.fileHandleForWriting.fileDescriptor, 2)
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    let reader = pipe.fileHandleForReading
    Thread.detachNewThread { box.data = reader.readDataToEndOfFile(); done.signal() }
    var failure: (any Error)?
    do { try body() } catch { failure = error }
    dup2(saved, 2)
    close(saved)
    try? pipe.fileHandleForWriting.close()
    done.wait()
    if let failure { throw failure }
    return String(decoding: box.data, as: UTF8.self)
}
