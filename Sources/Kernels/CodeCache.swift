import Foundation
import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// Compiled machine code kept on disk between processes, so a second run of the same program
/// compiles nothing: LLVM's object files (`<root>/llvm`), the C backend's shared objects
/// (`<root>/c`). The backends key each entry by everything that determines its bytes (the
/// rendered code, the target, `formatVersion`, the compiler's version); this class only stores
/// and counts. One instance per directory per process (`shared`), so its counts are the
/// process's; an unusable directory disables caching with one warning at KILN_DEBUG>=1.
public final class CodeCache: @unchecked Sendable {
    /// Part of every key: bumped when what Kiln stores, or how it compiles what it stores (its
    /// LLVM pipeline, its C flags), changes in a way the rendered code does not show.
    public static let formatVersion = "kiln-code-1"

    public let files: DiskCacheFiles
    private let lock = NSLock()
    /// Entries found intact, entries looked for and not found, entries written, and files that
    /// were there but short or corrupt (then recompiled and rewritten).
    public private(set) var hits = 0, misses = 0, writes = 0, rejected = 0
    /// The directory's bytes as of the last scan plus what this process wrote since: listing a
    /// directory of thousands of entries after every compile would cost more than some compiles,
    /// so it is scanned (and trimmed) only when this estimate passes the limit.
    private var knownBytes: Int?

    public init(directory: URL, limitBytes: Int = DiskCacheFiles.limit()) {
        files = DiskCacheFiles(directory: directory, fileExtension: "kobj", magic: "KILNOBJ1", limitBytes: limitBytes)
    }

    /// The cache root of this process's environment (`DiskCacheFiles.root`), read once.
    public static let defaultRoot: URL? = DiskCacheFiles.root()

    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [String: CodeCache?] = [:]

    /// The cache of `kind` ("llvm", "c") under `root`, one per directory for the whole process;
    /// nil when `root` is nil or the directory cannot be made or written (warned about once).
    public static func shared(kind: String, root: URL?) -> CodeCache? {
        guard let root else { return nil }
        let dir = root.appendingPathComponent(kind)
        registryLock.lock()
        defer { registryLock.unlock() }
        if let known = registry[dir.path] { return known }
        var cache: CodeCache?
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            if access(dir.path, W_OK | X_OK) != 0 { throw KilnError.internalError(String(cString: strerror(errno))) }
            cache = CodeCache(directory: dir)
        } catch {
            debugWarn("the compiled-code cache \(dir.path) cannot be used (\(error)); compiling without it")
        }
        registry[dir.path] = cache
        return cache
    }

    /// The key of an entry: the SHA-256 of its parts (each part is what one input of the
    /// compile was, e.g. the target's feature string or the code's text), then of `code` (the
    /// code in a binary form, e.g. LLVM bitcode) where there is one.
    public static func key(_ parts: [String], code: UnsafeRawBufferPointer? = nil) -> String {
        var bytes: [UInt8] = []
        for p in parts {
            bytes += p.utf8
            bytes.append(0)
        }
        if let code { bytes += code }
        return SHA256.hex(bytes)
    }

    /// The bytes stored under `key`, or nil (a miss; a corrupt file counts as rejected too).
    public func load(_ key: String) -> [UInt8]? {
        switch files.read(key) {
        case .hit(let bytes):
            count(\.hits)
            return bytes
        case .absent:
            count(\.misses)
        case .rejected(let why):
            count(\.misses)
            count(\.rejected)
            debugWarn("ignoring the cached object \(files.file(key).path): \(why)")
        }
        return nil
    }

    /// Stores `bytes` under `key`; a failure to write only costs the next process a compile.
    public func store(_ key: String, _ bytes: [UInt8]) {
        do {
            let written = try files.write(key, bytes, trimming: false)
            lock.lock()
            let estimate = knownBytes.map { $0 + written }
            lock.unlock()
            var scanned: Int?
            if estimate == nil || estimate! > files.limitBytes { scanned = files.trim(keeping: files.file(key)) }
            lock.lock()
            knownBytes = scanned ?? estimate
            writes += 1
            lock.unlock()
        } catch {
            debugWarn("could not write the cached object \(files.file(key).path): \(error)")
        }
    }

    private func count(_ counter: ReferenceWritableKeyPath<CodeCache, Int>) {
        lock.lock()
        self[keyPath: counter] += 1
        lock.unlock()
    }

    private static func debugWarn(_ s: String) {
        if Debug.level >= 1 { Debug.log(s) }
    }
    private func debugWarn(_ s: String) { Self.debugWarn(s) }
}
