import KilnOpenCL

/// The OpenCL devices present, for tools (the backend itself is not yet used by sessions).
public enum OpenCLDeviceList {
    public static func all() throws -> [String] { try OpenCL.devices().map(\.description) }
}
