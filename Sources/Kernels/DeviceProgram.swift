import KilnIR
import KilnPasses

// What the kernel writer hands a device backend (OpenCL): kernels cannot call each other, the
// C runtime or a worker pool there, so an executable is one program's source plus the launches
// the host enqueues in order. Native backends render the same launches as an entry function.

/// A value a launch passes to one kernel parameter, in the kernel's parameter order.
public enum DeviceArgument: Hashable, Sendable {
    /// The buffer of parameter `i` of the IR function (a feed or a variable).
    case input(Int)
    /// The buffer of result `i`.
    case output(Int)
    /// The plan's constant `k` (`KernelPlan.constants`), uploaded once per executable.
    case constant(Int)
    /// The executable's arena (one device buffer; kernels add their own byte offsets, the fault
    /// record included).
    case arena
    /// A scalar argument (`int` and `long` parameters; the library product's flags are `int`).
    case int32(Int32)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    /// Work-group local memory of this many bytes (a `__local` parameter).
    case local(bytes: Int)
}

/// One kernel launch: `kernel` (a function of the program, or of the device library the backend
/// links in, such as the matrix product) over an NDRange.
public struct DeviceLaunch: Hashable, Sendable {
    public var kernel: String
    public var arguments: [DeviceArgument]
    /// Global work size per dimension (1 to 3 dimensions), a multiple of `local` where given.
    public var global: [Int]
    /// Work-group size per dimension; nil lets the driver choose.
    public var local: [Int]?
    /// The plan kernel this launch belongs to (profiles and errors name it).
    public var planKernel: Int
    /// Whether this launch evaluates a check and may record a fault in the arena's record.
    public var mayFault: Bool

    public init(kernel: String, arguments: [DeviceArgument], global: [Int], local: [Int]?, planKernel: Int, mayFault: Bool) {
        self.kernel = kernel
        self.arguments = arguments
        self.global = global
        self.local = local
        self.planKernel = planKernel
        self.mayFault = mayFault
    }
}

/// An executable for a device: one translation unit and its launches, in order.
public struct DeviceProgram: Sendable {
    /// The rendered kernels (OpenCL C); the backend appends its device library.
    public var source: String
    public var launches: [DeviceLaunch]
    /// Device library kernels the launches use (the backend links exactly these in).
    public var libraryKernels: Set<String>
    /// Whether the source needs `cl_khr_fp64`.
    public var usesFloat64: Bool

    public init(source: String, launches: [DeviceLaunch], libraryKernels: Set<String>, usesFloat64: Bool) {
        self.source = source
        self.launches = launches
        self.libraryKernels = libraryKernels
        self.usesFloat64 = usesFloat64
    }
}
