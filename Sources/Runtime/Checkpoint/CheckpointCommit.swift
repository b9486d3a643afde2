import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KilnIR

/// Makes a checkpoint save atomic as a whole, although it replaces several files (the index, the
/// data shard, and for a Saver the .meta and the `checkpoint` state file, and old checkpoints it
/// deletes). A rename is atomic for one file only, so a kill between two renames would leave an
/// index that does not match its data. The commit is therefore a small redo log:
///
/// 1. every new file is complete and fsynced under its temporary name (locked, see AtomicFile);
/// 2. under the directory's lock, leftovers of killed saves are repaired (`recover`);
/// 3. a commit record `<prefix>.kiln-commit` naming each rename and deletion is written, fsynced,
///    renamed into place and the directory fsynced: this is the commit point;
/// 4. the renames, then the deletions, are done and the directory fsynced;
/// 5. the record is removed.
///
/// A kill before step 3 leaves the old files untouched and only unlocked temporaries, which the
/// next save or open in the directory deletes. A kill after it leaves a complete record, and the
/// next save or open rolls it forward: each rename whose temporary still exists is redone (a
/// temporary's name is random and never reused, so a missing one was already renamed), each
/// deletion repeated. A record whose checksum fails (torn by a power loss before its fsync took
/// effect) was never a commit point and is discarded. Readers take the same lock, so they see a
/// checkpoint before or after a commit, never during one.
enum CheckpointCommit {
    static let recordSuffix = ".kiln-commit"
    private static let recordFormat = "kiln_checkpoint_commit"

    /// The points of the commit sequence, after each of which a test hook may simulate a kill.
    enum Step: Hashable, CustomStringConvertible {
        /// Every new file is complete and fsynced under its temporary name.
        case temporariesSynced
        /// The commit record is complete and fsynced under its temporary name.
        case recordSynced
        /// The record is in place and the directory fsynced: the commit point.
        case recordCommitted
        /// After the i-th rename or deletion (renames first).
        case applied(Int)
        /// Every rename and deletion is done and the directory fsynced.
        case directorySynced

        var description: String {
            switch self {
            case .temporariesSynced: "temporariesSynced"
            case .recordSynced: "recordSynced"
            case .recordCommitted: "recordCommitted"
            case .applied(let i): "applied(\(i))"
            case .directorySynced: "directorySynced"
            }
        }

        /// Every step of a commit of `operations` renames and deletions, in order.
        static func sequence(operations: Int) -> [Step] {
            [.temporariesSynced, .recordSynced, .recordCommitted] + (0..<operations).map { .applied($0) } + [.directorySynced]
        }
    }

    typealias Hook = (Step) throws -> Void

    /// Thrown by a test hook to stop a commit as a kill would: nothing is cleaned up, every file
    /// is left as it is and every lock released.
    struct SimulatedKill: Error {}

    /// Renames every file of `files` into place and deletes `removing`, all or nothing. All paths
    /// must lie in one directory, where the record `<name>.kiln-commit` is written. An error
    /// before the commit point deletes the temporaries and changes nothing; one after it leaves
    /// the record for the next save or open to complete.
    static func commit(_ files: [AtomicFile], removing: [String], name: String, hook: Hook? = nil) throws {
        let dir = parent(name)
        let targets = Set(files.map(\.path))
        let removals = removing.filter { !targets.contains($0) }
        for path in files.map(\.path) + removals where parent(path) != dir {
            files.forEach { $0.abort() }
            throw KilnError.invalidArgument("a checkpoint save in '\(dir)' cannot also write '\(path)': its files must share one directory")
        }
        // Before the commit point a failure undoes everything; a simulated kill leaves it as is.
        func fail(_ error: Error, record: AtomicFile? = nil) -> Error {
            let all = files + (record.map { [$0] } ?? [])
            if error is SimulatedKill { all.forEach { $0.release() } } else { all.forEach { $0.abort() } }
            return error
        }
        do {
            for f in files { try f.sync() }
            try hook?(.temporariesSynced)
        } catch { throw fail(error) }

        let lock: DirectoryHandle
        do {
            lock = try DirectoryHandle(dir)
            try lock.lock()
            try recoverLocked(lock)
        } catch { throw fail(error) }

        let recordPath = name + recordSuffix
        let record: AtomicFile
        do {
            record = try AtomicFile.complete(encode(renames: files.map { (base($0.temporaryPath), base($0.path)) },
                                                    removals: removals.map(base)), path: recordPath)
        } catch { throw fail(error) }
        do {
            try hook?(.recordSynced)
            if rename(record.temporaryPath, recordPath) != 0 { throw KilnError.io(errno, "cannot rename '\(record.temporaryPath)' to", recordPath) }
        } catch { throw fail(error, record: record) }
        record.release()
        // From here on the save has happened: a failure (or a simulated kill) leaves the record
        // and the temporaries it names for recovery.
        defer { files.forEach { $0.release() } }
        try lock.sync()
        try hook?(.recordCommitted)
        var step = 0
        for f in files {
            if rename(f.temporaryPath, f.path) != 0 { throw KilnError.io(errno, "cannot rename '\(f.temporaryPath)' to", f.path) }
            try hook?(.applied(step))
            step += 1
        }
        for path in removals {
            try remove(path)
            try hook?(.applied(step))
            step += 1
        }
        try lock.sync()
        try hook?(.directorySynced)
        // A record that outlives this (a kill, or an unlink lost with a power loss) is replayed
        // harmlessly: its temporaries are gone and its deletions are done.
        unlink(recordPath)
    }

    /// Completes or discards what killed saves left in `directory` (see the type's comment).
    /// A directory that does not exist has nothing to recover.
    static func recover(directory: String) throws {
        let dir: DirectoryHandle
        do { dir = try DirectoryHandle(directory) } catch let e as KilnError where e.code == .notFound { return }
        try dir.lock()
        try recoverLocked(dir)
    }

    /// `recover`, with the directory's lock already held.
    static func recoverLocked(_ dir: DirectoryHandle) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        for name in names.sorted() where name.hasSuffix(recordSuffix) {
            let path = join(dir.path, name)
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            if let (renames, removals) = decode([UInt8](bytes)) {
                for (from, to) in renames where rename(join(dir.path, from), join(dir.path, to)) != 0 && errno != ENOENT {
                    throw KilnError.io(errno, "cannot complete checkpoint commit '\(path)': cannot rename '\(join(dir.path, from))' to", join(dir.path, to))
                }
                for r in removals { try remove(join(dir.path, r)) }
                // The renames must be on disk before the record that redoes them disappears.
                try dir.sync()
            }
            unlink(path)
        }
        sweepTemporaries(in: dir.path, names: names)
    }

    /// Deletes the temporaries of checkpoint files that no live writer holds locked.
    private static func sweepTemporaries(in directory: String, names: [String]) {
        for name in names where isCheckpointTemporary(name) {
            let path = join(directory, name)
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
            close(fd)
        }
    }

    /// `X.index.tempstateN`, `X.data-00000-of-00001.tempstateN`, `X.meta.tempstateN`,
    /// `X.kiln-commit.tempstateN` and `checkpoint.tempstateN`: the temporaries a checkpoint save
    /// makes. Other AtomicFile temporaries (an .npy being written) are not the sweep's business.
    static func isCheckpointTemporary(_ name: String) -> Bool {
        guard let r = name.range(of: ".tempstate", options: .backwards) else { return false }
        let digits = name[r.upperBound...]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        let file = String(name[..<r.lowerBound])
        if file == CheckpointState.defaultFilename { return true }
        for suffix in [".index", ".meta", recordSuffix] where file.hasSuffix(suffix) && file.count > suffix.count { return true }
        return isDataShardName(file)
    }

    private static func isDataShardName(_ file: String) -> Bool {
        // ....data-NNNNN-of-NNNNN
        let tail = file.suffix(20)
        guard tail.count == 20, file.count > 20, tail.hasPrefix(".data-") else { return false }
        let parts = tail.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[1] == "of" && parts[0].count == 5 && parts[2].count == 5
            && parts[0].allSatisfy { $0.isASCII && $0.isNumber } && parts[2].allSatisfy { $0.isASCII && $0.isNumber }
    }

    // MARK: the record

    /// One JSON line naming the renames (temporary, final) and deletions by base name, then a
    /// line with the CRC32C of the first.
    static func encode(renames: [(String, String)], removals: [String]) throws -> [UInt8] {
        let object: [String: Any] = [recordFormat: 1, "rename": renames.map { [$0.0, $0.1] }, "remove": removals]
        let json = [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        let crc = String(CRC32C.checksum(json), radix: 16)
        return json + Array("\ncrc32c \(crc)\n".utf8)
    }

    /// nil for a record that is torn, corrupt or not one of ours.
    static func decode(_ bytes: [UInt8]) -> (renames: [(String, String)], removals: [String])? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let json = Array(bytes[..<newline])
        guard String(decoding: bytes[(newline + 1)...], as: UTF8.self) == "crc32c \(String(CRC32C.checksum(json), radix: 16))\n",
              let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
              object[recordFormat] as? Int == 1,
              let renames = object["rename"] as? [[String]], renames.allSatisfy({ $0.count == 2 }),
              let removals = object["remove"] as? [String] else { return nil }
        let plain = { (n: String) in !n.isEmpty && !n.contains("/") && n != "." && n != ".." }
        guard renames.joined().allSatisfy(plain), removals.allSatisfy(plain) else { return nil }
        return (renames.map { ($0[0], $0[1]) }, removals)
    }

    private static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw KilnError.io(errno, "cannot delete", path) }
    }

    private static func parent(_ path: String) -> String {
        let d = (path as NSString).deletingLastPathComponent
        return d.isEmpty ? "." : d
    }

    private static func base(_ path: String) -> String { (path as NSString).lastPathComponent }

    private static func join(_ dir: String, _ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
}
