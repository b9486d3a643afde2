/// The one error type of Kiln. Codes follow TensorFlow's status codes so that users who know
/// TensorFlow's errors recognise ours; the message names the node, op, dtypes and shapes involved.
public struct KilnError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Code: String, Sendable {
        case cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists
        case permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange
        case unimplemented, `internal`, unavailable, dataLoss, unauthenticated
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    public static func invalidArgument(_ m: String) -> KilnError { KilnError(.invalidArgument, m) }
    public static func failedPrecondition(_ m: String) -> KilnError { KilnError(.failedPrecondition, m) }
    public static func notFound(_ m: String) -> KilnError { KilnError(.notFound, m) }
    public static func unimplemented(_ m: String) -> KilnError { KilnError(.unimplemented, m) }
    public static func internalError(_ m: String) -> KilnError { KilnError(.internal, m) }
    public static func alreadyExists(_ m: String) -> KilnError { KilnError(.alreadyExists, m) }
    public static func dataLoss(_ m: String) -> KilnError { KilnError(.dataLoss, m) }
    public static func outOfRange(_ m: String) -> KilnError { KilnError(.outOfRange, m) }
    public static func resourceExhausted(_ m: String) -> KilnError { KilnError(.resourceExhausted, m) }
}
