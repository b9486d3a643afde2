import KilnIR

/// `NAME.swift`: a Swift type (NAME in UpperCamelCase) over the artifact's C functions, with an
/// array per feed and fetch (named by their identifiers, typed by dtype, sized to their element
/// counts), a throwing `run()` and `setThreads`. It imports the C declarations from the module
/// `C<Type>` when there is one (a SwiftPM C target holding NAME.h), or finds them already
/// visible (`swiftc -import-objc-header NAME.h`).
enum SwiftWrapper {
    /// `NAME.swift`.
    static func source(_ layout: ArtifactLayout) -> String {
        let spec = layout.spec, name = spec.name
        let type = typeName(name), module = "C" + type
        let (feedNames, fetchNames) = memberNames(feeds: spec.feeds.map(\.identifier), fetches: spec.fetches.map(\.identifier))
        var s: [String] = []
        let code: [String]
        switch layout.emit {
        case .c:
            code = ["whose sources are \(name).c (beside include/), which SwiftPM builds;"]
        case .object:
            code = ["an empty shim.c (a C target needs a source), and that links the object: e.g.",
                    "`ar rcs lib\(name).a \(name).o`, then in that target",
                    "linkerSettings: [.unsafeFlags([\"-L<that folder>\", \"-l\(name)\"])], adding the path of",
                    "\(name)_runtime.a when kiln compile wrote one, and -lpthread;"]
        }
        s.append("""
            // \(name).swift: a Swift interface to the graph compiled ahead of time by `kiln compile` (Kiln).
            // Origin: \(oneLine(spec.origin))
            //
            // It calls the C functions \(name).h declares. In a Swift package: a C target named \(module)
            // holding include/\(name).h (SwiftPM makes its module map) and
            """ + "\n" + code.map { "//   " + $0 }.joined(separator: "\n") + "\n" + """
            // then this file in a Swift target that depends on \(module) (it imports \(module) when that
            // module exists). Without a package:
            //   swiftc -import-objc-header \(name).h main.swift \(name).swift \(layout.emit == .c ? "\(name).o (from cc -O2 -std=c99 -c \(name).c)" : "\(name).o\(" [\(name)_runtime.a] -lpthread")")
            #if canImport(\(module))
            import \(module)
            #endif

            /// The graph compiled ahead of time as `\(name)`: set the feeds, call `run()`, read the fetches.
            /// Each feed and fetch is a dense row-major array of exactly its element count. Values of
            /// this type may run on several threads at once (each call is independent).
            public struct \(type) {
            """)
        for (k, t) in spec.feeds.enumerated() {
            s.append("    /// Feed \(k): `\(oneLine(t.name))`, \(ArtifactCText.signature(t.type)), \(t.type.elementCount) elements, row-major.")
            s.append("    public var \(feedNames[k]): [\(swiftType(t.type.dtype))] = \(zeros(t.type))")
        }
        for (k, t) in spec.fetches.enumerated() {
            s.append("    /// Fetch \(k): `\(oneLine(t.name))`, \(ArtifactCText.signature(t.type)), \(t.type.elementCount) elements, row-major; `run()` writes it.")
            s.append("    public private(set) var \(fetchNames[k]): [\(swiftType(t.type.dtype))] = \(zeros(t.type))")
        }
        s.append("""

                /// Bytes of the arena each run uses (\(name)_run keeps one; a run made while another
                /// is running allocates its own).
                public static let arenaBytes = \(layout.arenaBytes)

                /// Feeds set to zeros (false for bool), fetches to zeros until a run.
                public init() {}

                /// A failed run: `code` is TensorFlow's status code (3 INVALID_ARGUMENT: a run-time check
                /// failed or a feed has the wrong element count; 8 RESOURCE_EXHAUSTED: the arena could not
                /// be allocated), `message` what went wrong, in TensorFlow's words.
                public struct Error: Swift.Error, CustomStringConvertible {
                    public let code: Swift.Int32
                    public let message: Swift.String
                    public var description: Swift.String { message }
                }

                /// Runs the graph on the feeds, writing the fetches. On error the fetches hold
                /// unspecified values.
                public mutating func run() throws {
            """)
        for (k, t) in spec.feeds.enumerated() {
            s.append("""
                        guard self.\(feedNames[k]).count == \(t.type.elementCount) else {
                            throw Error(code: 3, message: "feed \(k) '\(swiftLiteralText(t.name))' (\(feedNames[k])) has \\(self.\(feedNames[k]).count) elements, \(name) takes \(t.type.elementCount)")
                        }
                """)
        }
        // The fetch arrays move into locals for the call (no copy, no overlapping access to self);
        // members are spelled `self.` so no local shadows them.
        for (k, _) in spec.fetches.enumerated() {
            s.append("        var kilnFetch\(k) = [\(swiftType(spec.fetches[k].type.dtype))](); Swift.swap(&kilnFetch\(k), &self.\(fetchNames[k]))")
        }
        if !spec.fetches.isEmpty {
            s.append("        defer { " + spec.fetches.indices.map { "Swift.swap(&kilnFetch\($0), &self.\(fetchNames[$0]))" }.joined(separator: "; ") + " }")
        }
        // Nested closures give every buffer's address for the one call.
        var indent = "        "
        var call = "let kilnCode: Swift.Int32 = "
        for (k, _) in spec.feeds.enumerated() {
            s.append("\(indent)\(call)self.\(feedNames[k]).withUnsafeBytes { kilnFeed\(k) in")
            call = ""
            indent += "    "
        }
        for (k, _) in spec.fetches.enumerated() {
            s.append("\(indent)\(call)kilnFetch\(k).withUnsafeMutableBytes { kilnFetchBytes\(k) in")
            call = ""
            indent += "    "
        }
        let feedList = spec.feeds.indices.map { "kilnFeed\($0).baseAddress" }.joined(separator: ", ")
        let fetchList = spec.fetches.indices.map { "kilnFetchBytes\($0).baseAddress" }.joined(separator: ", ")
        s.append("\(indent)\(call)\(name)_run([\(feedList)] as [Swift.UnsafeRawPointer?], [\(fetchList)] as [Swift.UnsafeMutableRawPointer?])")
        for _ in 0..<(spec.feeds.count + spec.fetches.count) {
            indent.removeLast(4)
            s.append("\(indent)}")
        }
        s.append("""
                    if kilnCode != 0 { throw Self.lastError(kilnCode) }
                }

                /// The thread's last error as `Error` (\(name)_last_error).
                static func lastError(_ code: Swift.Int32) -> Error {
                    var buffer = [Swift.CChar](repeating: 0, count: 4096)
                    let last = buffer.withUnsafeMutableBufferPointer { \(name)_last_error($0.baseAddress, $0.count) }
                    let message = buffer.withUnsafeBufferPointer { Swift.String(cString: $0.baseAddress!) }
                    return Error(code: last == 0 ? code : last, message: message)
                }

                /// Asks for `threads` threads (the caller included; <= 0: one per online CPU) for the work
                /// a run splits. Takes effect only before the first run that splits work; returns the number
                /// of threads runs use\(layout.emit == .c ? " (always 1: a C artifact runs on the calling thread)" : " (1 when the artifact never splits work)").
                @discardableResult
                public static func setThreads(_ threads: Swift.Int) -> Swift.Int {
                    Swift.Int(\(name)_set_threads(Swift.Int32(clamping: threads)))
                }
            }

            """)
        return s.joined(separator: "\n")
    }

    /// `mnist_mlp` -> `MnistMlp`; names Swift gives a meaning of its own get `Artifact` appended.
    static func typeName(_ name: String) -> String {
        let camel = name.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        if camel.isEmpty { return "Artifact" }
        return ["Swift", "Self", "Any", "Type", "Protocol", "Error"].contains(camel) ? camel + "Artifact" : camel
    }

    /// Swift names for the feeds, then the fetches: the identifiers, unique across both and the
    /// type's own members (a later one gets `_2`, `_3`...), keywords in backticks.
    static func memberNames(feeds: [String], fetches: [String]) -> ([String], [String]) {
        // `Swift` too: a member of that name would hide the module the code qualifies names with.
        var used: Set<String> = ["run", "setThreads", "lastError", "arenaBytes", "Error", "init", "deinit", "self", "Self", "Type", "Protocol", "Swift"]
        func unique(_ base: String) -> String {
            var candidate = base, k = 2
            while used.contains(candidate) {
                candidate = "\(base)_\(k)"
                k += 1
            }
            used.insert(candidate)
            return keywords.contains(candidate) ? "`\(candidate)`" : candidate
        }
        let a = feeds.map(unique)
        return (a, fetches.map(unique))
    }

    static let keywords: Set<String> = ["associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
                                        "inout", "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public",
                                        "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "catch",
                                        "continue", "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat",
                                        "return", "throw", "switch", "where", "while", "Any", "as", "await", "false", "is", "nil", "super",
                                        "throws", "true", "try", "async", "some", "any"]

    static func swiftType(_ t: DType) -> String {
        switch t {
        case .float32: return "Swift.Float"
        case .float64: return "Swift.Double"
        case .int32: return "Swift.Int32"
        case .int64: return "Swift.Int64"
        case .uint8: return "Swift.UInt8"
        case .int16: return "Swift.Int16"
        case .float16: return "Swift.Float16"
        // Swift has no bfloat16: its bits, as the artifact's C header spells it (uint16_t).
        case .bfloat16: return "Swift.UInt16"
        case .bool: return "Swift.Bool"
        case .string: return "Swift.String"
        }
    }

    static func zeros(_ t: TensorType) -> String {
        "[\(swiftType(t.dtype))](repeating: \(t.dtype == .bool ? "false" : "0"), count: \(t.elementCount))"
    }

    static func oneLine(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : Character($0) })
    }

    /// `s` inside a Swift string literal: quotes, backslashes and control characters escaped.
    static func swiftLiteralText(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if u.value < 0x20 || u.value == 0x7f { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }
}
