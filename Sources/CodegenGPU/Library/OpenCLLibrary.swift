import KilnIR

/// Kiln's device library: OpenCL C kernels the backend links into a program beside the plan's
/// own kernels (matrix products, the copy the bench measures bandwidth with). Their tile sizes
/// are `#define`s chosen here from the device's limits, so the text and the NDRange of a launch
/// always agree: ask `source` and `ndRange` with the same `OpenCLLibrary.Limits`.
public enum OpenCLLibrary {
    /// What the library's choices depend on (CL_DEVICE_MAX_WORK_GROUP_SIZE,
    /// CL_DEVICE_LOCAL_MEM_SIZE, CL_DEVICE_TYPE).
    public struct Limits: Hashable, Sendable {
        public var maxWorkGroupSize: Int
        public var localMemoryBytes: Int
        /// A CPU device (PoCL) runs a work group as loops over its items: it prefers smaller
        /// tiles than a GPU, whose work items are threads.
        public var isCPU: Bool

        public init(maxWorkGroupSize: Int, localMemoryBytes: Int, isCPU: Bool) {
            self.maxWorkGroupSize = maxWorkGroupSize
            self.localMemoryBytes = localMemoryBytes
            self.isCPU = isCPU
        }

        public init(device: OpenCLDevice) {
            self.init(maxWorkGroupSize: device.maxWorkGroupSize, localMemoryBytes: device.localMemoryBytes, isCPU: device.kind == .cpu)
        }
    }

    /// `kiln_gemm_f32`, `kiln_gemm_f64`: C[b] = alpha * op(A[b]) op(B[b]) (+ C[b] when accumulate
    /// != 0), row-major, offsets and strides in elements. Logical range [n, m, batch].
    public static let gemmF32 = "kiln_gemm_f32"
    public static let gemmF64 = "kiln_gemm_f64"
    /// `kiln_copy_f32(src, dst, count)`: float4 loads and stores. Logical range [count].
    public static let copyF32 = "kiln_copy_f32"

    public static let kernels: Set<String> = [gemmF32, gemmF64, copyF32]

    /// The OpenCL C of `kernels` (library names; others are an error), to append to a program.
    /// `float64` must be true when `kiln_gemm_f64` is asked for (the device has cl_khr_fp64).
    public static func source(for kernels: Set<String>, float64: Bool, limits: Limits) throws -> String {
        if let unknown = kernels.subtracting(Self.kernels).sorted().first {
            throw KilnError(.internal, "the OpenCL device library has no kernel \(unknown)")
        }
        if kernels.contains(gemmF64) && !float64 {
            throw KilnError(.internal, "\(gemmF64) needs a device with cl_khr_fp64")
        }
        var parts: [String] = []
        if kernels.contains(gemmF32) { parts.append(GEMMKernel.source(float64: false, tiles: GEMMKernel.tiles(float64: false, limits: limits))) }
        if kernels.contains(gemmF64) { parts.append(GEMMKernel.source(float64: true, tiles: GEMMKernel.tiles(float64: true, limits: limits))) }
        if kernels.contains(copyF32) { parts.append(CopyKernel.source(groupSize: CopyKernel.groupSize(limits: limits))) }
        return parts.joined(separator: "\n")
    }

    /// The NDRange to enqueue a library kernel with, from the launch's logical range ([n, m,
    /// batch] for a product, [count] for the copy). A 0 anywhere in `global` means there is
    /// nothing to compute: the caller enqueues nothing (OpenCL 1.2 refuses empty ranges).
    public static func ndRange(kernel: String, logical: [Int], limits: Limits) throws -> (global: [Int], local: [Int]?) {
        switch kernel {
        case gemmF32, gemmF64:
            guard logical.count == 3 else { throw KilnError(.internal, "\(kernel) takes a logical range [n, m, batch], not \(logical)") }
            let t = GEMMKernel.tiles(float64: kernel == gemmF64, limits: limits)
            let (n, m, batch) = (logical[0], logical[1], logical[2])
            return (global: [groups(n, t.tn) * t.threadsN, groups(m, t.tm) * t.threadsM, batch], local: [t.threadsN, t.threadsM, 1])
        case copyF32:
            guard logical.count == 1 else { throw KilnError(.internal, "\(kernel) takes a logical range [count], not \(logical)") }
            let g = CopyKernel.groupSize(limits: limits)
            // One work item per float4; the last items also copy the 1-3 elements past it.
            let items = logical[0] == 0 ? 0 : max((logical[0] + 3) / 4, 1)
            return (global: [groups(items, g) * g], local: [g])
        default:
            throw KilnError(.internal, "the OpenCL device library has no kernel \(kernel)")
        }
    }

    static func groups(_ count: Int, _ size: Int) -> Int { (count + size - 1) / size }
}
