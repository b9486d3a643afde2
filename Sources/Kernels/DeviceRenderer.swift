// What a device's kernels need beyond `KernelRenderer`: work-item ids, work-group local memory
// and barriers (reduction trees), one atomic for the fault record, and the device's own error
// function. Only a renderer for a device (OpenCL C) conforms; the writer asks for it only when
// writing a `DeviceProgram`, so native renderers never see these calls.

/// Ids of the work item running the current kernel, per NDRange dimension.
public enum WorkItemID: Hashable, Sendable {
    /// get_global_id(dim)
    case global(Int)
    /// get_local_id(dim)
    case local(Int)
    /// get_group_id(dim)
    case group(Int)
}

public protocol DeviceRenderer: KernelRenderer {
    /// The id as an i64.
    func workItem(_ id: WorkItemID) -> RValue
    /// An array of `count` elements in work-group local memory, shared by the work-group.
    func localArray(_ t: ScalarType, count: Int, name: String) -> RValue
    /// Every work item of the work-group reaches this point, and their local-memory writes before
    /// it are visible after it. Only where all work items of the group get there (not inside a
    /// branch some of them skip).
    func barrier()
    /// `p[index] = max(p[index], v)` atomically, unsigned 64-bit, on global memory.
    func atomicMaxUnsigned(_ p: RValue, _ index: RValue, _ v: RValue)
    /// erf(x) or erfc(x) by the device's own function (OpenCL: at most 16 ulp in float).
    func errorFunction(_ x: RValue, complement: Bool) -> RValue
    /// What each parameter of the last function ended receives, in order.
    var lastFunctionParameters: [DeviceArgument] { get }
}
