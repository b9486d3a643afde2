import ArgumentParser
import Foundation

/// The digits example's flags, TensorFlow's training-script names (`--train-dir`, `--max-steps`,
/// ...) and the tutorial's `--self-test`. A ParsableCommand only for its name and abstract in
/// `--help`: main.swift parses it (`parseOrExit`) and never calls `run`.
struct DigitsOptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Digits",
        abstract: "Train the digits CNN TensorFlow-1 style, read through the tutorial's queue pipeline, and evaluate it.")

    @Option(help: ArgumentHelp("Holds data/ and the checkpoints.", valueName: "DIR"))
    var trainDir: String = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-digits").path

    @Option(help: ArgumentHelp("Where the TensorBoard events go (default: <train-dir>/logs).", valueName: "DIR"))
    var logDir: String?

    @Option(help: ArgumentHelp("Write summaries every N steps (0: none).", valueName: "N"))
    var logEvery: Int = 20

    @Option(help: ArgumentHelp("Stop after N training steps (default: 30 epochs of the training digits; 10 with --self-test).", valueName: "N"))
    var maxSteps: Int?

    @Option(help: "Digits per training step.")
    var batchSize: Int = 64

    @Option(help: "Adam's initial learning rate (decayed by 0.9 every 100 steps).")
    var learningRate: Double = 3e-3

    @Option(help: ArgumentHelp("Place the model there, e.g. /gpu:0 (the input pipeline stays on the CPU).", valueName: "DEVICE"))
    var device: String = ""

    @Option(help: ArgumentHelp("Also write what `kiln compile` and Examples/DigitsC need: the graph, checkpoint and test digits.", valueName: "DIR"))
    var export: String?

    @Flag(help: "Train on batches fed as arrays instead of the queue pipeline, for comparison.")
    var feedArrays = false

    @Flag(help: "Train data-parallel under `mpirun -np N`: each rank reads its shard of the digits, takes 1/N of every --batch-size batch, and averages gradients with the others; rank 0 prints, writes checkpoints and summaries.")
    var distributed = false

    @Flag(help: "Use half floats instead of full floats: float16 weights and activations in the forward and backward pass, float32 master weights updated by the optimizer, a loss scale.")
    var useFp16 = false

    @Flag(help: "A quick run on a small part of the data that checks the pipeline delivers every digit and the model learns; exits 0 or 1.")
    var selfTest = false

    func validate() throws {
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps takes a positive number of steps, got \(maxSteps)") }
        guard logEvery >= 0 else { throw ValidationError("--log-every takes a number of steps (0 for no summaries), got \(logEvery)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size takes a positive number of digits, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate takes a positive number, got \(learningRate)") }
    }

    var logDirectory: String { logDir ?? trainDir + "/logs" }

    /// The digits the run trains on: the first 1500 (the self-test: the first 320).
    var trainDigits: Range<Int> { selfTest ? 0..<320 : 0..<1500 }

    /// The epochs the input pipeline delivers: enough for --max-steps, else 30 (the self-test: 10).
    func epochs(trainCount: Int) -> Int {
        guard let maxSteps else { return selfTest ? 10 : 30 }
        return (maxSteps * batchSize + trainCount - 1) / trainCount
    }
}
