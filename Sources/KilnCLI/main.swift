import Foundation
import Kiln

/// `kiln`: the command-line front of Kiln.
let usage = """
usage: kiln <command>
  bench [--quick]   run the standard benchmarks and print medians, rates and ratios
  devices           list the CPU and OpenCL devices Kiln can see
  run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR]
                    import a GraphDef, feed .npy files, print name, dtype, shape, min, max and
                    mean of each fetch (and write it to DIR/<name, ':' as '_'>.npy)
  help              this text
"""

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "bench": try Bench.run(quick: args.contains("--quick"))
    case "devices": try Devices.print()
    case "run": try Run.run(Array(args.dropFirst()))
    case "help", "-h", "--help", nil: print(usage)
    default:
        FileHandle.standardError.write(Data("kiln: unknown command '\(args[0])'\n\(usage)\n".utf8))
        exit(2)
    }
} catch let e as Run.UsageError {
    FileHandle.standardError.write(Data("kiln run: \(e.message)\n\(Run.usage)\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("kiln: \(error)\n".utf8))
    exit(1)
}
