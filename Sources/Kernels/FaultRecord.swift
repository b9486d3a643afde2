import KilnIR
import KilnPasses

/// The error a run's fault record stands for: one mapping for every backend, so a failed check
/// reads the same on the CPU and on a device.
public enum FaultRecord {
    /// `site` (check number + 1, never 0), the failing element's `position` in the checked tensor
    /// and its `value`, as `kiln_fault` holds them.
    public static func error(site: Int64, position: Int64, value: Int64, function: Function, plan: KernelPlan) -> KilnError {
        guard site > 0, Int(site) <= plan.checks.count else {
            return KilnError.internalError("fault record names check \(site), which \(function.name) does not have")
        }
        let check = plan.checks[Int(site) - 1]
        guard let i = function.body.first(where: { $0.id == check }), case .check(let c) = i.op, let t = i.type else {
            return KilnError.internalError("fault record names check \(site), which \(function.name) does not have")
        }
        return c.error(position: Int(position), value: value, shape: t.shape)
    }
}
