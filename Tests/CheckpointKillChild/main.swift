// Saves checkpoint after checkpoint to one place until it is killed: the child process of
// CheckpointKillTests, which SIGKILLs it at random moments and checks what is left.
//
//   CheckpointKillChild writer|saver|savev2 DIRECTORY FIRST
//
// Save number i (FIRST, FIRST+1, ...) stores i in every tensor, so a reader can tell whether all
// values come from one save. After each save returns, "saved i" is printed; after the first,
// the child waits for a line on stdin, so the test can look at what that save left.
//   writer  CheckpointWriter.write to DIRECTORY/model, the same prefix every time
//   saver   Saver.save to DIRECTORY/model.ckpt with globalStep i (maxToKeep 2)
//   savev2  the SaveV2 op of the saver's save/ subgraph, run through a session, to DIRECTORY/model
import Foundation
import Kiln

let args = CommandLine.arguments
guard args.count == 4, let first = Int(args[3]) else {
    FileHandle.standardError.write(Data("usage: CheckpointKillChild writer|saver|savev2 DIRECTORY FIRST\n".utf8))
    exit(2)
}
let mode = args[1], directory = args[2]

func values(_ i: Int) throws -> [String: Tensor] {
    [
        "a/weights": try Tensor(shape: [64, 64], scalars: [Float](repeating: Float(i), count: 64 * 64)),
        "b/step": Tensor(Int64(i)),
        "c/name": Tensor("save-\(i)"),
        "d/table": try Tensor(shape: [3, 500], scalars: [Double](repeating: Double(i), count: 1500)),
    ]
}

func saved(_ i: Int) {
    // Unbuffered, so the line is out before the next save begins.
    FileHandle.standardOutput.write(Data("saved \(i)\n".utf8))
    if i == first { _ = readLine() }
}

do {
    switch mode {
    case "writer":
        for i in first... {
            try CheckpointWriter.write(values(i), prefix: directory + "/model")
            saved(i)
        }
    case "saver", "savev2":
        let g = Graph()
        var variables: [String: Variable] = [:]
        for (key, t) in try values(0) where t.dtype != .string {
            variables[key] = try g.variable(t, name: key)
        }
        let saver = try Saver(graph: g, maxToKeep: 2)
        // As a restarted trainer does, so maxToKeep counts the checkpoints of earlier runs.
        if let state = try CheckpointState.read(directory: directory) { saver.recoverLastCheckpoints(state.allModelCheckpointPaths) }
        let sess = try Session(graph: g)
        let filename = try g.tensor(named: saver.saverDef.filenameTensorName)
        let saveTensor = try g.tensor(named: saver.saverDef.saveTensorName)
        for i in first... {
            let v = try values(i)
            for (key, variable) in variables { try sess.setValue(v[key]!, of: variable) }
            if mode == "saver" {
                try saver.save(sess, prefix: directory + "/model.ckpt", globalStep: i)
            } else {
                _ = try sess.run(saveTensor, feeds: [filename: Tensor(directory + "/model")])
            }
            saved(i)
        }
    default:
        FileHandle.standardError.write(Data("unknown mode '\(mode)'\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("CheckpointKillChild: \(error)\n".utf8))
    exit(1)
}
