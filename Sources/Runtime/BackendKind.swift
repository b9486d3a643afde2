import Foundation
import KilnIR
import KilnKernels
import KilnCPU
import KilnC

/// The code generators a session can compile with: LLVM's JIT (the default) or C99 built by the
/// system C compiler. `KILN_BACKEND` (`llvm` or `c`) chooses for every session whose config does
/// not, as `KILN_DEBUG` sets the debug level.
public enum BackendKind: String, CaseIterable, Sendable {
    case llvm
    case c

    /// The kind `name` spells; another name is an invalidArgument error naming the choices.
    public init(named name: String) throws {
        guard let kind = BackendKind(rawValue: name.lowercased()) else {
            throw KilnError.invalidArgument("unknown backend '\(name)': the backends are \(BackendKind.allCases.map { "'\($0.rawValue)'" }.joined(separator: " and ")) (KILN_BACKEND, SessionConfig.backend, --backend)")
        }
        self = kind
    }

    /// `KILN_BACKEND` in `environment`, LLVM when it is unset or empty.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> BackendKind {
        guard let name = environment["KILN_BACKEND"], !name.isEmpty else { return .llvm }
        return try BackendKind(named: name)
    }

    /// A backend of this kind for this machine; the C backend is unavailable without a C compiler.
    public func make() throws -> any Backend {
        switch self {
        case .llvm: return LLVMBackend()
        case .c: return try CBackend()
        }
    }
}
