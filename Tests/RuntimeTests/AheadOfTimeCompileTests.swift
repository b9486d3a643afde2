import Foundation
import XCTest
import Kiln
import KilnTestSupport

/// `kiln compile` end to end: graphs compiled ahead of time, linked into a C program with a C
/// compiler alone, run, and compared with Session.run of the same graph and feeds.
final class AheadOfTimeCompileTests: AheadOfTimeTestCase {
    private var frozen: String { Golden.directory.appendingPathComponent("frozen/frozen_mlp.pb").path }

    /// Compiles in-process (the CLI's own path is in testFrozenMLPObject...); returns the directory.
    @discardableResult
    private func compile(_ graph: String, feeds: [String], fetches: [String], name: String, emit: String = "object",
                         checkpoint: String? = nil, triple: String? = nil, dir: String? = nil) throws -> String {
        let out = dir ?? path("\(name)-\(emit)-\(triple ?? "host")")
        _ = try ArtifactCompiler.compile(.init(graph: graph, feeds: feeds, fetches: fetches, name: name, directory: out,
                                               checkpoint: checkpoint, triple: triple, emit: emit))
        return out
    }

    /// Runs a linked harness (under `runner`, e.g. qemu) on `feeds` and returns its fetches.
    private func execute(_ program: String, feeds: [Tensor], types: [(DType, [Int])], runner: [String] = []) throws -> [Tensor] {
        let input = program + ".feeds", output = program + ".fetches"
        try writeFeeds(feeds, to: input)
        try ToolRunner.succeed(runner + [program, input, output])
        return try readFetches(output, types: types)
    }

    // MARK: the golden frozen MLP

    private func mlpSession(_ x: Tensor) throws -> Tensor {
        let g = Graph()
        try g.importGraphDef(GraphDefFile.read(path: frozen), prefix: "")
        return try Session(graph: g).run(g.tensor(named: "probs:0"), feeds: [g.tensor(named: "x:0"): x])
    }

    func testFrozenMLPObjectLinkedWithCCAloneEqualsSessionRunWithin1e6AndNeedsOnlyLibcLibmPthreads() throws {
        let dir = path("mlp")
        let r = try run(["compile", frozen, "--feed", "x:0=float32[3,784]", "--fetch", "probs:0", "--name", "mlp", "--out", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        for file in ["mlp.o", "mlp.h", "mlp.swift"] {
            let bytes = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir + "/" + file)[.size] as? Int)
            XCTAssertTrue(r.stdout.contains("wrote \(dir)/\(file) (\(bytes) bytes)"), r.stdout)
        }
        XCTAssertTrue(r.stdout.contains("compiled in "), r.stdout)
        let program = try link(name: "mlp", dir: dir, feeds: 1, fetches: 1)
        let x = try randomFloats([3, 784], seed: 1)
        let got = try execute(program, feeds: [x], types: [(.float32, [3, 10])])
        assertClose(got, [try mlpSession(x)], tolerance: 1e-6, "mlp.o")

        // Nothing beyond the C library, libm and pthreads (and the loader, the vDSO).
        let ldd = try ToolRunner.succeed([try ToolRunner.required("ldd", package: "libc-bin"), program])
        let allowed = ["linux-vdso.so", "libc.so", "libm.so", "libpthread.so", "ld-linux"]
        for line in ldd.split(separator: "\n") {
            let library = line.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
            XCTAssertTrue(allowed.contains { library.contains($0) }, "the program links \(library): \(ldd)")
        }
    }

    func testFrozenMLPAsOneC99FileBuiltWithCCEqualsSessionRunWithin1e5() throws {
        let dir = try compile(frozen, feeds: ["x:0=float32[2,784]"], fetches: ["probs:0"], name: "mlp_c", emit: "c")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/mlp_c.c"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/mlp_c.o"))
        let program = try link(name: "mlp_c", dir: dir, feeds: 1, fetches: 1, emitC: true)
        let x = try randomFloats([2, 784], seed: 2)
        assertClose(try execute(program, feeds: [x], types: [(.float32, [2, 10])]), [try mlpSession(x)], tolerance: 1e-5, "mlp_c.c")
    }

    // MARK: the digits CNN (Examples/Digits' model), from a Kiln checkpoint

    /// The digits model for inference (conv 3x3x16 + batch norm + relu, conv 3x3x32 + batch norm
    /// + relu, max-pool, dense 64 relu, dense 10) with small random weights and moving
    /// statistics, saved as a Kiln checkpoint with its .meta.
    private func digitsCNN() throws -> (session: Session, images: Output, logits: Output, prefix: String) {
        let g = Graph()
        g.seed = 11
        let images = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
        let bn = Normalizer.batchNorm(decay: 0.9, isTraining: false)
        let logits = try g.variableScope("model") {
            try g.argScope(LayerDefaults(activation: .relu, padding: "SAME")) { () throws -> Output in
                var h = try g.convolution2d(images, 16, kernelSize: [3], normalizer: bn, scope: "conv1")
                h = try g.convolution2d(h, 32, kernelSize: [3], normalizer: bn, scope: "conv2")
                h = try g.maxPool2d(h, kernelSize: [2], stride: 2)
                h = try g.fullyConnected(g.flatten(h), 64, scope: "fc1")
                return try g.fullyConnected(h, 10, activation: .identity, scope: "logits")
            }
        }
        let out = try g.identity(logits, name: "eval_logits")
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        // Moving statistics away from 0 and 1, so batch norm is no identity.
        for (k, v) in g.globalVariables.enumerated() where v.name.contains("moving_") {
            let t = try XCTUnwrap(sess.value(of: v))
            let r = try randomFloats(t.shape, seed: UInt64(100 + k))
            let values = r.doubles.map { Float(v.name.contains("variance") ? 1 + $0 * 0.5 : $0 * 0.3) }
            try sess.setValue(try Tensor(shape: t.shape, scalars: values), of: v)
        }
        try FileManager.default.createDirectory(atPath: path("cnn"), withIntermediateDirectories: true)
        let prefix = try Saver(graph: g).save(sess, prefix: path("cnn/model.ckpt"))
        return (sess, images, out, prefix)
    }

    func testDigitsCNNObjectFromAKilnCheckpointEqualsSessionRunWithin1e6() throws {
        let cnn = try digitsCNN()
        let dir = try compile(cnn.prefix + ".meta", feeds: ["images=float32[5,8,8,1]"], fetches: ["eval_logits"], name: "digits_cnn",
                              checkpoint: cnn.prefix)
        let program = try link(name: "digits_cnn", dir: dir, feeds: 1, fetches: 1)
        let x = try randomFloats([5, 8, 8, 1], seed: 3)
        let want = try cnn.session.run(cnn.logits, feeds: [cnn.images: x])
        assertClose(try execute(program, feeds: [x], types: [(.float32, [5, 10])]), [want], tolerance: 1e-6, "digits_cnn.o")
    }

    func testDigitsCNNAsOneC99FileEqualsSessionRunWithin1e5() throws {
        let cnn = try digitsCNN()
        let dir = try compile(cnn.prefix + ".meta", feeds: ["images=float32[4,8,8,1]"], fetches: ["eval_logits"], name: "digits_c", emit: "c",
                              checkpoint: cnn.prefix)
        let program = try link(name: "digits_c", dir: dir, feeds: 1, fetches: 1, emitC: true)
        let x = try randomFloats([4, 8, 8, 1], seed: 4)
        let want = try cnn.session.run(cnn.logits, feeds: [cnn.images: x])
        assertClose(try execute(program, feeds: [x], types: [(.float32, [4, 10])]), [want], tolerance: 1e-5, "digits_c.c")
    }

    /// `make demo`'s last steps: the Digits example trains and exports (graph, checkpoint, test
    /// digits), `kiln compile` builds the model, Examples/DigitsC/main.c is linked with cc alone,
    /// and the program prints the test accuracy the session printed, in the same words and digits.
    func testDigitsDemoProgramPrintsTheAccuracyTheSessionPrinted() throws {
        let export = path("demo")
        let trained = try run(binary: "Digits", ["--export", export])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let accuracy = try XCTUnwrap(trained.stdout.split(separator: "\n").first { $0.hasPrefix("digits: test_accuracy=") }?
            .split(separator: " ")[1], trained.stdout)
        let compiled = try run(["compile", export + "/digits.meta", "--checkpoint", export + "/digits", "--feed", "images=float32[64,8,8,1]",
                                "--fetch", "eval_logits", "--name", "digits", "--out", export + "/artifact"])
        XCTAssertEqual(compiled.status, 0, compiled.stderr)
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Examples/DigitsC/main.c").path
        let dir = export + "/artifact"
        let libraries = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".a") }.map { dir + "/" + $0 }
        try ToolRunner.succeed([try ToolRunner.required("cc", package: "gcc"), "-O2", "-o", export + "/digits", "-I", dir, source, dir + "/digits.o"] + libraries + ["-lm", "-lpthread"])
        let printed = try ToolRunner.succeed([export + "/digits", export + "/test_images.f32", export + "/test_labels.i64"])
        XCTAssertTrue(printed.hasSuffix(": \(accuracy)\n"), "the session printed \(accuracy), the artifact: \(printed)")
    }

    // MARK: a TensorFlow checkpoint

    /// golden/checkpoint: TensorFlow 2.21's Saver folder (resource variables, conv + dense);
    /// two fetches, the logits and the (fed-through) input.
    func testTensorFlowCheckpointAndMetaGraphCompileToAnObjectEqualToSessionRunWithin1e6() throws {
        let prefix = Golden.checkpointDirectory + "/model.ckpt-20"
        let dir = try compile(prefix + ".meta", feeds: ["x:0=float32[2,4,4,1]"], fetches: ["fc/logits:0", "conv1/Relu:0"], name: "tf_cnn",
                              checkpoint: prefix)
        let program = try link(name: "tf_cnn", dir: dir, feeds: 1, fetches: 2)
        let g = Graph()
        let (_, saver) = try importMetaGraph(contentsOf: prefix + ".meta", into: g)
        let sess = try Session(graph: g)
        try XCTUnwrap(saver).restore(sess, prefix: prefix)
        let x = try randomFloats([2, 4, 4, 1], seed: 5)
        let want = try sess.run([g.tensor(named: "fc/logits:0"), g.tensor(named: "conv1/Relu:0")], feeds: [g.tensor(named: "x:0"): x])
        let got = try execute(program, feeds: [x], types: want.map { ($0.dtype, $0.shape) })
        assertClose(got, want, tolerance: 1e-6, "tf_cnn.o")
    }

    // MARK: another CPU

    func testAarch64ObjectsLinkedWithTheCrossCompilerGiveTheSameOutputsUnderQemuWithin1e6() throws {
        let qemu = try ToolRunner.required("qemu-aarch64", package: "qemu-user")
        _ = try ToolRunner.required("aarch64-linux-gnu-gcc", package: "gcc-aarch64-linux-gnu")
        let mlp = try compile(frozen, feeds: ["x:0=float32[3,784]"], fetches: ["probs:0"], name: "mlp_arm", triple: "aarch64-linux-gnu")
        let x = try randomFloats([3, 784], seed: 6)
        let mlpProgram = try link(name: "mlp_arm", dir: mlp, feeds: 1, fetches: 1, compiler: "aarch64-linux-gnu-gcc")
        assertClose(try execute(mlpProgram, feeds: [x], types: [(.float32, [3, 10])], runner: [qemu, "-L", "/usr/aarch64-linux-gnu"]),
                    [try mlpSession(x)], tolerance: 1e-6, "mlp_arm.o under qemu")

        let cnn = try digitsCNN()
        let dir = try compile(cnn.prefix + ".meta", feeds: ["images=float32[3,8,8,1]"], fetches: ["eval_logits"], name: "cnn_arm",
                              checkpoint: cnn.prefix, triple: "aarch64-linux-gnu")
        let program = try link(name: "cnn_arm", dir: dir, feeds: 1, fetches: 1, compiler: "aarch64-linux-gnu-gcc")
        let images = try randomFloats([3, 8, 8, 1], seed: 7)
        assertClose(try execute(program, feeds: [images], types: [(.float32, [3, 10])], runner: [qemu, "-L", "/usr/aarch64-linux-gnu"]),
                    [try cnn.session.run(cnn.logits, feeds: [cnn.images: images])], tolerance: 1e-6, "cnn_arm.o under qemu")
    }

    // MARK: run-time checks

    /// A gather whose index is out of range fails the artifact's run with TensorFlow's
    /// INVALID_ARGUMENT (3) and the message Session.run throws; in range, it gathers, and a fed
    /// int32 tensor fetched back comes back unchanged.
    func testAnIndexOutOfRangeFailsTheRunWithSessionsMessageAndCode3() throws {
        let g = Graph()
        let table = try g.constant(try Tensor(shape: [5, 2], scalars: (0..<10).map { Float($0) * 1.5 }), name: "table")
        let indices = try g.placeholder(.int32, shape: [3], name: "indices")
        let rows = try g.gather(table, indices, name: "rows")
        let file = path("gather.pb")
        try g.graphDef().serializedData().write(to: URL(fileURLWithPath: file))
        let sess = try Session(graph: g)
        for emit in ["object", "c"] {
            let dir = try compile(file, feeds: ["indices=int32[3]"], fetches: ["rows", "indices"], name: "rows_\(emit)", emit: emit)
            let program = try link(name: "rows_\(emit)", dir: dir, feeds: 1, fetches: 2, emitC: emit == "c")
            let good = try Tensor(shape: [3], scalars: [Int32(4), 0, 2])
            let got = try execute(program, feeds: [good], types: [(.float32, [3, 2]), (.int32, [3])])
            XCTAssertEqual(got, try sess.run([rows, indices], feeds: [indices: good]), emit)

            let bad = try Tensor(shape: [3], scalars: [Int32(0), 7, 1])
            var message = ""
            do { _ = try sess.run(rows, feeds: [indices: bad]) } catch let e as KilnError { message = e.message }
            XCTAssertTrue(message.contains("indices[1] = 7 is not in [0, 5)"), message)
            try writeFeeds([bad], to: program + ".bad")
            let r = try ToolRunner.run([program, program + ".bad", program + ".out"])
            XCTAssertEqual(r.status, 3, "\(emit): \(r.output)")
            XCTAssertTrue(r.output.contains("run failed with 3 (last_error 3): \(message)\n"), "\(emit): \(r.output) vs \(message)")
        }
    }

    // MARK: determinism

    func testCompilingTwiceGivesByteIdenticalFiles() throws {
        let cnn = try digitsCNN()
        for emit in ["object", "c"] {
            let a = try compile(cnn.prefix + ".meta", feeds: ["images=float32[2,8,8,1]"], fetches: ["eval_logits"], name: "same", emit: emit,
                                checkpoint: cnn.prefix, dir: path("first-\(emit)"))
            let b = try compile(cnn.prefix + ".meta", feeds: ["images=float32[2,8,8,1]"], fetches: ["eval_logits"], name: "same", emit: emit,
                                checkpoint: cnn.prefix, dir: path("second-\(emit)"))
            let files = try FileManager.default.contentsOfDirectory(atPath: a).sorted()
            XCTAssertEqual(files, try FileManager.default.contentsOfDirectory(atPath: b).sorted())
            XCTAssertTrue(files.contains(emit == "object" ? "same.o" : "same.c"), "\(files)")
            for f in files {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a + "/" + f)), try Data(contentsOf: URL(fileURLWithPath: b + "/" + f)),
                               "\(emit): \(f) differs between two compiles")
            }
        }
    }
}
