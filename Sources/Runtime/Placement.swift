import KilnIR
import KilnFrontend

/// Device names as TensorFlow spells them, reduced to what placement needs.
struct DeviceSpec: Equatable {
    var type: String   // "CPU", "GPU"
    var index: Int

    /// Parses "/cpu:0", "/device:GPU:1", "/job:localhost/replica:0/task:0/device:CPU:0", "".
    init?(_ s: String) {
        if s.isEmpty { type = "CPU"; index = 0; return }
        var type: String?
        var index = 0
        for part in s.split(separator: "/") {
            let f = part.split(separator: ":").map(String.init)
            switch f.first?.lowercased() {
            case "cpu", "gpu":
                type = f[0].uppercased()
                if f.count > 1 { guard let i = Int(f[1]) else { return nil }; index = i }
            case "device":
                guard f.count >= 2 else { return nil }
                type = f[1].uppercased()
                if f.count > 2 { guard let i = Int(f[2]) else { return nil }; index = i }
            case "job", "replica", "task": continue
            default: return nil
            }
        }
        guard let type else { return nil }
        self.type = type
        self.index = index
    }
}

enum Placement {
    /// Checks every op can run where it asked to. The CPU backend is the only one sessions use
    /// today; under soft placement other devices fall back to it.
    static func check(_ ops: [KilnFrontend.Operation], config: SessionConfig) throws {
        for op in ops where !op.device.isEmpty {
            guard let spec = DeviceSpec(op.device) else {
                throw KilnError.invalidArgument("Malformed device specification '\(op.device)' of operation '\(op.name)'")
            }
            if spec.type == "CPU" && spec.index == 0 { continue }
            if config.allowSoftPlacement { continue }
            throw KilnError.invalidArgument("Cannot assign a device for operation '\(op.name)': \(op.device) is not available (this session has /device:CPU:0); set allowSoftPlacement to place it on the CPU")
        }
        if config.logDevicePlacement {
            for op in ops { Debug.log("\(op.name): (\(op.type)): /job:localhost/replica:0/task:0/device:CPU:0") }
        }
    }
}
