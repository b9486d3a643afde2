import ArgumentParser
import Foundation
import Kiln

/// `kiln inspect FILE [--json]`: what a GraphDef, MetaGraphDef, checkpoint, TFRecord, events or
/// .npy file holds (FileInspector); a corrupt file is an error naming the file and the offset.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what a GraphDef, MetaGraphDef, checkpoint, TFRecord, events or .npy file holds.",
        discussion: """
            The kind is told from the content (and the name). GraphDef and MetaGraphDef: nodes by op type, likely feeds and \
            fetches, ops Kiln does not support. Checkpoint (its prefix, .index or data file): variables, dtypes, shapes, every \
            checksum verified. TFRecord: the record count and the first records decoded as tf.train.Example. Events: tags, \
            steps and last values. .npy: dtype, shape, min, max and mean.
            """)

    @Argument(help: ArgumentHelp("The file (a checkpoint by its prefix, e.g. model.ckpt-20).", valueName: "file"))
    var file: String

    @Flag(help: "Print one JSON object instead, for tools.")
    var json = false

    func run() throws {
        let report = try FileInspector.inspect(path: file)
        if json {
            FileHandle.standardOutput.write(try report.jsonData() + Data("\n".utf8))
        } else {
            print(report.text, terminator: "")
        }
    }
}
