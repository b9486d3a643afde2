import Foundation
import Kiln

/// `kiln`: the command-line front of Kiln.
let usage = """
usage: kiln <command>
  bench [--quick] [--only NAME[,NAME...]] [--json FILE]
                    run the standard workloads; print medians, minima, rates, the ratio to
                    fusion off and to the machine's limits measured in the same run
  bench GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--quick] [--json FILE]
                    the same for a user's graph
  bench --device /gpu:N [--quick] [--json FILE]
                    the device's limits (copy bandwidth, the GEMM library's GFLOP/s), measured
                    in the same run as the standard workloads on the device
  scale [--sizes N[,N...]] [--only chain|gradient|concat[,...]]
                    time graph construction, gradients and the first run (compile) of long
                    elementwise chains, their gradients and wide concats at each size
  devices           list the CPU and OpenCL devices Kiln can see
  run GRAPH.(pb|pbtxt) [--feed NAME=FILE.npy]... --fetch NAME... [--out DIR]
                    import a GraphDef, feed .npy files, print name, dtype, shape, min, max and
                    mean of each fetch (and write it to DIR/<name, ':' as '_'>.npy)
  compile GRAPH.(pb|pbtxt|meta) --feed NAME=DTYPE[d0,d1,...]... --fetch NAME... --name NAME --out DIR
          [--checkpoint PREFIX] [--target TRIPLE] [--cpu CPU] [--emit object|c]
                    compile the graph ahead of time: DIR/NAME.o (or NAME.c with --emit c), the
                    runtime library it calls (if any), DIR/NAME.h and DIR/NAME.swift; variables
                    become constants from the checkpoint; links with `cc ... -lm -lpthread`
  help              this text
"""

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "bench": try Bench.run(Array(args.dropFirst()))
    case "devices": try Devices.print()
    case "scale": try Scale.run(Array(args.dropFirst()))
    case "run": try Run.run(Array(args.dropFirst()))
    case "compile": try Compile.run(Array(args.dropFirst()))
    case "help", "-h", "--help", nil: print(usage)
    default:
        FileHandle.standardError.write(Data("kiln: unknown command '\(args[0])'\n\(usage)\n".utf8))
        exit(2)
    }
} catch let e as UsageError {
    FileHandle.standardError.write(Data("kiln \(e.command): \(e.message)\n\(e.command == "bench" ? Bench.usage : e.command == "scale" ? Scale.usage : e.command == "compile" ? Compile.usage : Run.usage)\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("kiln: \(error)\n".utf8))
    exit(1)
}
