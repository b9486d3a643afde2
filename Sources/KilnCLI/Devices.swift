import Kiln

enum Devices {
    static func print() throws {
        Swift.print("/device:CPU:0  \(MachineLimits.cpuName), OpenBLAS core \(MachineLimits.blasCoreName), \(MachineLimits.blasThreads) BLAS thread(s)")
        for line in try OpenCLDeviceList.lines() { Swift.print(line) }
    }
}
