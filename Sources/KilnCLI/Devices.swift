import ArgumentParser
import Kiln

/// `kiln devices`: the CPU and the OpenCL devices Kiln can see.
struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the CPU and OpenCL devices Kiln can see.")

    func run() throws {
        print("/device:CPU:0  \(MachineLimits.cpuName), OpenBLAS core \(MachineLimits.blasCoreName), \(MachineLimits.blasThreads) BLAS thread(s)")
        print("    compiled for \(MachineLimits.cpuTarget)")
        for line in try OpenCLDeviceList.lines() { print(line) }
    }
}
