import Foundation

/// The places in Kiln's sources that still name op types in code rather than reading the op's
/// registry entry: comparisons (`op.type == "Identity"`, a NodeDef's `n.op == ...`), the cases
/// of a `switch` on an op type, ops built by name (`addOperation("Const"`, `apply("TanhGrad"`),
/// and op-name literals in `[...].contains(op.type)`. The op-table consistency tests check that
/// each names a registered op, so a misspelt or removed name fails a test instead of silently
/// never matching.
public enum OpNameSites {
    public struct Site: Equatable, CustomStringConvertible {
        public let file: String
        public let line: Int
        public let name: String
        public var description: String { "\(file):\(line) names \"\(name)\"" }
    }

    /// The repository's Sources/<module> folder, found from this file's path.
    public static func sourceFolder(_ module: String, file: String = #filePath) -> URL {
        URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources").appendingPathComponent(module)
    }

    /// Every site in the Swift files under `folder` (generated protobuf code excluded).
    public static func scan(folder: URL) throws -> [Site] {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return [] }
        var sites: [Site] = []
        for case let url as URL in walker where url.pathExtension == "swift" && !url.lastPathComponent.hasSuffix(".pb.swift") {
            let text = try String(contentsOf: url, encoding: .utf8)
            sites += scan(text, file: url.path.replacingOccurrences(of: folder.deletingLastPathComponent().path + "/", with: ""))
        }
        return sites
    }

    private static let opName = #""([A-Z][A-Za-z0-9]*)""#
    /// Patterns whose first capture is an op name.
    private static let patterns: [NSRegularExpression] = [
        #"(?:\$\d|[oO]p)\.type\s*[!=]=\s*"# + opName,      // op.type == "X", $0.type != "X", variableOp.type
        #"\bn\.op\s*[!=]=\s*"# + opName,                 // a NodeDef's op
        #"\b(?:addOperation|apply)\(\s*"# + opName,      // ops built by name
    ].map { try! NSRegularExpression(pattern: $0) }
    private static let nameSet = try! NSRegularExpression(pattern: #"Set<String> = \[((?:\s*"[A-Z][A-Za-z0-9]*",?)+)\s*\]"#)
    private static let containsList = try! NSRegularExpression(pattern: #"\[((?:\s*"[A-Z][A-Za-z0-9]*",?)+)\s*\]\.contains\((?:\w+\.)*type\)"#)
    private static let switchOnType = try! NSRegularExpression(pattern: #"^(\s*)switch (?:[\w$]+\.)*(?:op\.type|n\.op)\s*\{\s*$"#)
    private static let caseLine = try! NSRegularExpression(pattern: #"^\s*case ((?:"[A-Z][A-Za-z0-9]*"(?:,\s*)?)+)"#)
    private static let literal = try! NSRegularExpression(pattern: opName)

    /// The sites of one file's text.
    public static func scan(_ text: String, file: String) -> [Site] {
        var sites: [Site] = []
        var switchIndent: String?
        for (k, line) in text.components(separatedBy: "\n").enumerated() {
            let code = line.components(separatedBy: "//").first ?? line
            let range = NSRange(code.startIndex..., in: code)
            func add(_ r: NSRange) { if let s = Range(r, in: code) { sites.append(Site(file: file, line: k + 1, name: String(code[s]))) } }
            for p in patterns { for m in p.matches(in: code, range: range) { add(m.range(at: 1)) } }
            for m in containsList.matches(in: code, range: range) + nameSet.matches(in: code, range: range) {
                for n in literal.matches(in: code, range: m.range(at: 1)) { add(n.range(at: 1)) }
            }
            if let m = switchOnType.firstMatch(in: code, range: range), let r = Range(m.range(at: 1), in: code) {
                switchIndent = String(code[r])
            } else if let indent = switchIndent {
                if code.hasPrefix(indent + "}") { switchIndent = nil; continue }
                if let m = caseLine.firstMatch(in: code, range: range) {
                    for n in literal.matches(in: code, range: m.range(at: 1)) { add(n.range(at: 1)) }
                }
            }
        }
        return sites
    }
}
