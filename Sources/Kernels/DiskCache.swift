import Foundation
import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// One directory of cache files that outlive the process (compiled objects, OpenCL program
/// binaries), each named by a key (a SHA-256 in hex) and holding a magic word, the payload's
/// length and its SHA-256, then the payload. A file that is short, corrupt or of another kind
/// reads as a miss; files are written to a temporary name and renamed, so a killed process or
/// two processes writing at once never leave a torn file; past `limitBytes` the least recently
/// used files (a hit refreshes a file's time) are removed.
public struct DiskCacheFiles: Sendable {
    public let directory: URL
    public let fileExtension: String
    public let limitBytes: Int
    let magic: [UInt8]

    /// `magic` is 8 ASCII characters naming the kind and version of the payload.
    public init(directory: URL, fileExtension: String, magic: String, limitBytes: Int) {
        precondition(magic.utf8.count == 8, "a cache file's magic word is 8 bytes")
        self.directory = directory
        self.fileExtension = fileExtension
        self.magic = Array(magic.utf8)
        self.limitBytes = limitBytes
    }

    public enum Lookup {
        case hit([UInt8])
        case absent
        /// There is a file, but not a whole, intact one of this kind (why).
        case rejected(String)
    }

    public func file(_ key: String) -> URL { directory.appendingPathComponent(key + "." + fileExtension) }

    /// The payload stored under `key`; a hit marks the file used now.
    public func read(_ key: String) -> Lookup {
        let url = file(key)
        guard let data = FileManager.default.contents(atPath: url.path) else { return .absent }
        let bytes = [UInt8](data)
        let header = magic.count + 8 + 32
        guard bytes.count >= header, Array(bytes[0..<magic.count]) == magic else { return .rejected("not a Kiln cache file of this kind") }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[magic.count + i]) << UInt64(8 * i) }
        guard length > 0, UInt64(bytes.count - header) == length else { return .rejected("truncated (\(bytes.count - header) of \(length) bytes)") }
        let payload = Array(bytes[header...])
        guard SHA256.digest(payload) == Array(bytes[(magic.count + 8)..<header]) else { return .rejected("checksum mismatch") }
        try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: url.path)
        return .hit(payload)
    }

    /// Stores `payload` under `key` (atomically replacing what was there), then trims the
    /// directory to `limitBytes` unless `trimming` is false; returns the bytes the file takes.
    @discardableResult
    public func write(_ key: String, _ payload: [UInt8], trimming: Bool = true) throws -> Int {
        var contents = magic
        for i in 0..<8 { contents.append(UInt8(truncatingIfNeeded: UInt64(payload.count) >> UInt64(8 * i))) }
        contents += SHA256.digest(payload)
        contents += payload
        let url = file(key)
        let temp = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(contents).write(to: temp)
            if rename(temp.path, url.path) != 0 { throw KilnError.internalError("rename failed: \(String(cString: strerror(errno)))") }
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw error
        }
        if trimming { trim(keeping: url) }
        return contents.count
    }

    /// Removes the least recently used files until the directory is within `limitBytes` (never
    /// `keeping`, the file just written), and returns the bytes left. Another process may
    /// remove the same files: a file that is already gone is not an error.
    @discardableResult
    public func trim(keeping: URL) -> Int {
        let keys: [URLResourceKey] = [.fileSizeKey, .contentModificationDateKey]
        guard let urls = try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: keys) else { return 0 }
        var files = urls.filter { $0.pathExtension == fileExtension }.compactMap { url -> (URL, Int, Date)? in
            guard let v = try? url.resourceValues(forKeys: Set(keys)) else { return nil }
            return (url, v.fileSize ?? 0, v.contentModificationDate ?? .distantPast)
        }
        var total = files.reduce(0) { $0 + $1.1 }
        guard total > limitBytes else { return total }
        files.sort { $0.2 < $1.2 }
        for (url, size, _) in files where total > limitBytes && url.lastPathComponent != keeping.lastPathComponent {
            try? FileManager.default.removeItem(at: url)
            total -= size
        }
        return total
    }

    /// Where Kiln's disk caches live: `KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else
    /// `~/.cache/kiln`; nil (no disk caching) when `KILN_CACHE_DIR` is empty or `off`, or
    /// there is no home.
    public static func root(_ env: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let d = env["KILN_CACHE_DIR"] {
            let t = d.trimmingCharacters(in: .whitespaces)
            return t.isEmpty || t.lowercased() == "off" ? nil : URL(fileURLWithPath: t)
        }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("kiln") }
        if let h = env["HOME"], !h.isEmpty { return URL(fileURLWithPath: h).appendingPathComponent(".cache/kiln") }
        return nil
    }

    /// `KILN_CACHE_MAX_BYTES` (a byte count), else 1 GiB: the most each cache directory keeps.
    public static func limit(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        env["KILN_CACHE_MAX_BYTES"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.flatMap { $0 >= 0 ? $0 : nil } ?? 1 << 30
    }
}
