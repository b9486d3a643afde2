import Foundation

/// File names of a V2 checkpoint (TensorFlow's tensor_bundle naming.cc): for a prefix P, the
/// index `P.index` and the data shards `P.data-00000-of-00001`, ...
public enum CheckpointPaths {
    public static func index(prefix: String) -> String { prefix + ".index" }

    public static func data(prefix: String, shard: Int = 0, numShards: Int = 1) -> String {
        prefix + ".data-" + pad5(shard) + "-of-" + pad5(numShards)
    }

    /// Whether a checkpoint with this prefix exists (its index does; TensorFlow's checkpoint_exists).
    public static func exists(prefix: String) -> Bool { FileManager.default.fileExists(atPath: index(prefix: prefix)) }

    /// The index and every data shard of `prefix` present on disk: what deleting the checkpoint
    /// removes (a Saver adds its `P.meta`).
    public static func existingFiles(prefix: String) -> [String] {
        let dir = (prefix as NSString).deletingLastPathComponent
        let base = (prefix as NSString).lastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? []
        let shards = names.filter { name in
            guard name.hasPrefix(base + ".data-") else { return false }
            let rest = name.dropFirst(base.count + 6)
            let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
            return parts.count == 3 && parts[1] == "of" && parts[0].count == 5 && parts[2].count == 5
                && parts[0].allSatisfy(\.isNumber) && parts[2].allSatisfy(\.isNumber)
        }.sorted()
        let join = { (name: String) in dir.isEmpty ? name : (dir as NSString).appendingPathComponent(name) }
        return (exists(prefix: prefix) ? [index(prefix: prefix)] : []) + shards.map(join)
    }

    private static func pad5(_ n: Int) -> String {
        let s = String(n)
        return s.count >= 5 ? s : String(repeating: "0", count: 5 - s.count) + s
    }
}
