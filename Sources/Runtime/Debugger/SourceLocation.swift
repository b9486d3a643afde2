import Foundation
import KilnIR
import KilnC
import KilnFrontend
#if canImport(Glibc)
import Glibc
#endif

/// Where a node was made in the user's Swift code: the call stack `Graph.addOperation` recorded
/// (raw return addresses) symbolized on demand with `llvm-symbolizer` (KILN_SYMBOLIZER, else
/// llvm-symbolizer-15 or llvm-symbolizer on PATH), the first frame outside Kiln's own sources.
/// Addresses are made relative to the object that holds them (`dladdr`), so position-independent
/// executables and shared objects resolve. Without debug info, or for nodes an importer made,
/// there is no such frame and the location is nil ("unknown").
public enum SourceLocation {
    /// Kiln's `Sources/` directory as the compiler saw it (this file is in Sources/Runtime/Debugger).
    static let kilnSources: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/"
    }()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [UInt: [String]] = [:]

    /// "File.swift:42" (the full path as the debug info has it) of `op`'s creation, or nil.
    public static func of(_ op: KilnFrontend.Operation) -> String? {
        let frames = op.creationStack
        guard !frames.isEmpty else { return nil }
        let resolved = symbolize(frames)
        for frame in frames {
            for location in resolved[frame] ?? [] where !isLibrary(location) { return location }
        }
        return nil
    }

    /// Not the user's Swift: Kiln's own code, the packages it was built with (SwiftPM's
    /// checkouts), the Swift toolchain's libraries and anything not Swift (libc's start code).
    static func isLibrary(_ location: String) -> Bool {
        let file = location.split(separator: ":").dropLast().joined(separator: ":")
        return !file.hasSuffix(".swift") || file.hasPrefix(kilnSources) || ["/.build/checkouts/", "/.build/repositories/", "/swift/stdlib/",
                                                                              "/swift-corelibs-", "/swift-foundation"].contains { file.contains($0) }
    }

    /// `path:line` of each address (innermost inlined frame first), symbolizing each object's
    /// addresses with one call of the symbolizer; addresses without line info map to [].
    static func symbolize(_ addresses: [UInt]) -> [UInt: [String]] {
        lock.lock()
        defer { lock.unlock() }
        var byObject: [String: [(UInt, UInt)]] = [:]
        for a in addresses where cache[a] == nil {
            guard let (name, base) = object(containing: a) else {
                cache[a] = []
                continue
            }
            // A return address is the instruction after the call: look up the call itself.
            byObject[name, default: []].append((a, a - 1 - base))
        }
        if !byObject.isEmpty, let tool = symbolizer() {
            for (object, entries) in byObject {
                let argv = [tool, "--obj=\(object)", "--functions=none", "--inlining=true"] + entries.map { "0x" + String($0.1, radix: 16) }
                let output = (try? ToolProcess.run(argv))?.output ?? ""
                // One block per address, blank-line separated: "path:line:column" per inlined frame.
                let blocks = output.components(separatedBy: "\n\n").map { $0.split(separator: "\n").map(String.init) }
                for (k, entry) in entries.enumerated() {
                    let lines = k < blocks.count ? blocks[k] : []
                    cache[entry.0] = lines.compactMap { line in
                        let parts = line.split(separator: ":")
                        guard parts.count >= 2, !line.hasPrefix("??"), let n = Int(parts[parts.count - 2]), n > 0 else { return nil }
                        return parts.dropLast(2).joined(separator: ":") + ":\(n)"
                    }
                }
            }
        }
        var out: [UInt: [String]] = [:]
        for a in addresses { out[a] = cache[a] ?? [] }
        return out
    }

    /// glibc's `dladdr` (dlfcn.h declares it only under _GNU_SOURCE, which the Glibc module
    /// does not set); its `Dl_info` is four pointers: file name, load base, symbol, address.
    private static let glibcDladdr: (@convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?) -> Int32)? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "dladdr") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?) -> Int32).self)
    }()

    /// The file of the object loaded at `address` and its load base.
    static func object(containing address: UInt) -> (String, UInt)? {
        guard let dladdr = glibcDladdr else { return nil }
        return withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: 4) { info -> (String, UInt)? in
            info.initialize(repeating: nil)
            guard dladdr(UnsafeRawPointer(bitPattern: address), UnsafeMutableRawPointer(info.baseAddress!)) != 0,
                  let name = info[0], let base = info[1] else { return nil }
            return (String(cString: name.assumingMemoryBound(to: CChar.self)), UInt(bitPattern: base))
        }
    }

    static func symbolizer() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        if let explicit = ProcessInfo.processInfo.environment["KILN_SYMBOLIZER"], !explicit.isEmpty {
            return ToolProcess.find(explicit, path: path)
        }
        return ToolProcess.find("llvm-symbolizer-15", path: path + ":/usr/bin:/usr/lib/llvm-15/bin") ?? ToolProcess.find("llvm-symbolizer", path: path)
    }
}
