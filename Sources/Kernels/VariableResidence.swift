// Variables may live on a device between runs (OpenCL): the session keeps one
// `VariableResidence` per variable and every executable that reads or writes the variable sees
// it, so a value crosses between host and device only when someone on the other side needs it.

/// A copy of a variable's bytes that a device runtime owns.
public protocol DeviceCopy: AnyObject, Sendable {
    /// Which device holds it (`/device:GPU:0`), for messages and for telling devices apart.
    var deviceName: String { get }
    /// Copies the device's bytes to `host` (`bytes` long), waiting for every queued write first.
    func read(into host: UnsafeMutableRawPointer, bytes: Int) throws
}

/// Where a variable's current value is.
public final class VariableResidence: @unchecked Sendable {
    /// The session's host bytes hold the current value.
    public var hostCurrent = true
    /// The device copy, if a device runtime made one (kept to be reused across runs).
    public var deviceCopy: (any DeviceCopy)?
    /// The device copy holds the current value.
    public var deviceCurrent = false

    public init() {}

    /// Makes the host bytes current (before the host, the CPU or another device reads them).
    public func syncToHost(_ host: UnsafeMutableRawPointer, bytes: Int) throws {
        guard !hostCurrent else { return }
        guard let copy = deviceCopy, deviceCurrent else {
            preconditionFailure("a variable whose host bytes are stale has no current device copy")
        }
        try copy.read(into: host, bytes: bytes)
        hostCurrent = true
    }

    /// The host bytes were just written (restore, assignment by host or CPU code): the device
    /// copy is stale.
    public func hostWritten() {
        hostCurrent = true
        deviceCurrent = false
    }

    /// A device run wrote `copy`: the host bytes are stale.
    public func deviceWritten(_ copy: any DeviceCopy) {
        deviceCopy = copy
        deviceCurrent = true
        hostCurrent = false
    }
}

/// An executable that runs on a device and keeps variables resident there. `residences` has one
/// entry per IR parameter: nil for a feed, the variable's residence for a variable. The
/// executable uploads a variable only when its device copy is not current, and after a run
/// marks every variable it wrote as `deviceWritten`. Host pointers in `inputs` are valid for
/// every parameter, so a stale device copy can be refreshed from them.
public protocol DeviceExecutable: Executable {
    /// `/device:GPU:0` as TensorFlow names it.
    var deviceName: String { get }
    func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
             residences: [VariableResidence?]) throws
}
