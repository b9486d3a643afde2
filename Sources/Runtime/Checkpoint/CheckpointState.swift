import Foundation
import KilnIR
import KilnFrontend
import SwiftProtobuf

/// The `checkpoint` file a TF1 Saver keeps beside its checkpoints (text-format
/// CheckpointState): the latest prefix and the kept ones, oldest first.
public struct CheckpointState: Equatable, Sendable {
    public static let defaultFilename = "checkpoint"

    public var modelCheckpointPath: String
    /// Oldest first; the last one is normally `modelCheckpointPath`.
    public var allModelCheckpointPaths: [String]
    /// Unix seconds, one per entry of `allModelCheckpointPaths` (older files have none).
    public var allModelCheckpointTimestamps: [Double]
    public var lastPreservedTimestamp: Double

    public init(modelCheckpointPath: String, allModelCheckpointPaths: [String]? = nil,
                allModelCheckpointTimestamps: [Double] = [], lastPreservedTimestamp: Double = 0) {
        self.modelCheckpointPath = modelCheckpointPath
        self.allModelCheckpointPaths = allModelCheckpointPaths ?? [modelCheckpointPath]
        self.allModelCheckpointTimestamps = allModelCheckpointTimestamps
        self.lastPreservedTimestamp = lastPreservedTimestamp
    }

    /// Parses the text format (`model_checkpoint_path: "model.ckpt-20"` ...).
    public init(text: String, source: String = "checkpoint state") throws {
        let p: Tensorflow_CheckpointState
        do { p = try Tensorflow_CheckpointState(textFormatString: text) } catch {
            throw KilnError.dataLoss("\(source) is not a valid text-format CheckpointState: \(error)")
        }
        self.init(modelCheckpointPath: p.modelCheckpointPath, allModelCheckpointPaths: p.allModelCheckpointPaths,
                  allModelCheckpointTimestamps: p.allModelCheckpointTimestamps, lastPreservedTimestamp: p.lastPreservedTimestamp)
    }

    /// The text format, as TensorFlow's Python text_format writes it: one line per value.
    /// (swift-protobuf would print the packed timestamps as one `[a, b]` list, which readers
    /// accept but TensorFlow never writes; Swift's shortest float spelling matches Python's repr.)
    public var text: String {
        var p = Tensorflow_CheckpointState()
        p.modelCheckpointPath = modelCheckpointPath
        p.allModelCheckpointPaths = allModelCheckpointPaths
        var out = p.textFormatString()
        for t in allModelCheckpointTimestamps { out += "all_model_checkpoint_timestamps: \(t)\n" }
        if lastPreservedTimestamp != 0 { out += "last_preserved_timestamp: \(lastPreservedTimestamp)\n" }
        return out
    }

    /// Reads `directory/filename`, with relative paths resolved against `directory` (as
    /// TensorFlow's get_checkpoint_state does); nil when there is no such file.
    public static func read(directory: String, filename: String = defaultFilename) throws -> CheckpointState? {
        let path = (directory as NSString).appendingPathComponent(filename)
        // A save a kill interrupted after its commit point is completed first, so the state
        // read is the one that save wrote (best effort: a read-only directory is read as it is).
        try? CheckpointCommit.recover(directory: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError(.permissionDenied, "cannot read checkpoint state file '\(path)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KilnError.dataLoss("checkpoint state file '\(path)' is not UTF-8 text")
        }
        var state = try CheckpointState(text: text, source: "'\(path)'")
        guard !state.modelCheckpointPath.isEmpty else {
            throw KilnError.dataLoss("checkpoint state file '\(path)' has no model_checkpoint_path")
        }
        let resolve = { (p: String) in p.hasPrefix("/") ? p : (directory as NSString).appendingPathComponent(p) }
        state.modelCheckpointPath = resolve(state.modelCheckpointPath)
        state.allModelCheckpointPaths = state.allModelCheckpointPaths.map(resolve)
        return state
    }

    /// Writes `directory/filename` atomically; paths inside `directory` are stored relative to
    /// it, so the folder can be moved.
    public func write(directory: String, filename: String = defaultFilename) throws {
        try temporaryFile(directory: directory, filename: filename).commit()
    }

    /// The state file, complete under a temporary name, for a Saver to commit with its checkpoint.
    func temporaryFile(directory: String, filename: String = defaultFilename) throws -> AtomicFile {
        let dir = (directory as NSString).standardizingPath
        let relativize = { (p: String) -> String in
            let full = (p as NSString).standardizingPath
            let parent = (full as NSString).deletingLastPathComponent
            return parent == dir ? (full as NSString).lastPathComponent : p
        }
        var stored = self
        stored.modelCheckpointPath = relativize(modelCheckpointPath)
        stored.allModelCheckpointPaths = allModelCheckpointPaths.map(relativize)
        return try AtomicFile.complete(Array(stored.text.utf8), path: (directory as NSString).appendingPathComponent(filename))
    }
}

/// The prefix of the newest checkpoint recorded in `directory`'s state file (TensorFlow's
/// tf.train.latest_checkpoint); nil when there is no state file or its checkpoint is gone.
public func latestCheckpoint(directory: String, filename: String = CheckpointState.defaultFilename) throws -> String? {
    guard let state = try CheckpointState.read(directory: directory, filename: filename) else { return nil }
    return CheckpointPaths.exists(prefix: state.modelCheckpointPath) ? state.modelCheckpointPath : nil
}
