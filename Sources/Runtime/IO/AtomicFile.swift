import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KilnIR

extension KilnError {
    /// A failed system call on `path`, with the errno mapped to TensorFlow's status codes.
    static func io(_ err: Int32, _ what: String, _ path: String) -> KilnError {
        let code: KilnError.Code
        switch err {
        case ENOENT, ENOTDIR: code = .notFound
        case EACCES, EPERM, EROFS: code = .permissionDenied
        case ENOSPC, EDQUOT, ENOMEM: code = .resourceExhausted
        case EEXIST: code = .alreadyExists
        default: code = .unknown
        }
        return KilnError(code, "\(what) '\(path)': \(String(cString: strerror(err)))")
    }
}

private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, p, n)
    #else
    Darwin.write(fd, p, n)
    #endif
}

/// A file written under a temporary name (`<path>.tempstate<random>`, as TensorFlow names its
/// in-progress files) and renamed over `path` only by `commit()`, so readers see either the old
/// file or the complete new one. Dropped without a commit, it deletes the temporary file.
///
/// The temporary file stays locked (flock) while this object holds it: a checkpoint cleanup
/// sweep (CheckpointCommit) deletes only unlocked temporaries, i.e. those of killed processes.
final class AtomicFile {
    let path: String
    let temporaryPath: String
    private var fd: Int32
    private(set) var bytesWritten = 0
    private var finished = false
    private var synced = false

    /// Creates the parent directory when it is missing, as TensorFlow's bundle writer does.
    init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw KilnError(.permissionDenied, "cannot create directory '\(dir)' for '\(path)': \(error.localizedDescription)")
            }
        }
        (temporaryPath, fd) = try AtomicFile.createLocked(path)
    }

    /// A new, locked temporary file for `path`. A sweep may lock and delete a file between its
    /// creation and our flock; then the path no longer names our file, and we make another.
    private static func createLocked(_ path: String) throws -> (String, Int32) {
        while true {
            let temporary = "\(path).tempstate\(UInt64.random(in: 0...UInt64.max))"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd < 0 { throw KilnError.io(errno, "cannot create", temporary) }
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    let e = errno
                    close(fd)
                    unlink(temporary)
                    throw KilnError.io(e, "cannot lock", temporary)
                }
            }
            var mine = stat(), named = stat()
            if fstat(fd, &mine) == 0, stat(temporary, &named) == 0, mine.st_dev == named.st_dev, mine.st_ino == named.st_ino {
                return (temporary, fd)
            }
            close(fd)
        }
    }

    deinit {
        if !finished { abort() }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw KilnError.io(errno, "cannot write", temporaryPath)
            }
            done += n
        }
        bytesWritten += done
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Flushes the contents to disk; the file stays open (and locked) until it is renamed.
    func sync() throws {
        precondition(!finished, "AtomicFile synced after it was finished")
        guard !synced else { return }
        if fsync(fd) != 0 { throw KilnError.io(errno, "cannot flush", temporaryPath) }
        synced = true
    }

    /// Flushes the data to disk, renames the file into place and flushes the directory, so the
    /// new name survives a power loss too.
    func commit() throws {
        do { try sync() } catch {
            abort()
            throw error
        }
        if rename(temporaryPath, path) != 0 {
            let e = errno
            abort()
            throw KilnError.io(e, "cannot rename '\(temporaryPath)' to", path)
        }
        release()
        try DirectoryHandle.sync(containing: path)
    }

    /// Closes the file, releasing its lock, once it has been renamed (by `commit` or by a
    /// CheckpointCommit) or handed to a commit record that will rename it.
    func release() {
        finished = true
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Closes and deletes the temporary file; the destination is untouched.
    func abort() {
        release()
        unlink(temporaryPath)
    }

    /// Writes `bytes` to `path` atomically in one step.
    static func write(_ bytes: [UInt8], to path: String) throws {
        try complete(bytes, path: path).commit()
    }

    /// A temporary holding `bytes`, synced, for a CheckpointCommit to rename.
    static func complete(_ bytes: [UInt8], path: String) throws -> AtomicFile {
        let f = try AtomicFile(path: path)
        try f.write(bytes)
        try f.sync()
        return f
    }
}

/// An open directory: flushing its entries (renames, deletions) to disk, and the lock that
/// serializes checkpoint commits and recoveries in it across threads and processes.
final class DirectoryHandle {
    let path: String
    private let fd: Int32

    init(_ path: String) throws {
        self.path = path.isEmpty ? "." : path
        fd = open(self.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw KilnError.io(errno, "cannot open directory", self.path) }
    }

    deinit { close(fd) }

    /// Blocks until this process holds the directory's exclusive lock; closing releases it, and
    /// so does the death of the process.
    func lock() throws {
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw KilnError.io(errno, "cannot lock directory", path) }
        }
    }

    func unlock() { flock(fd, LOCK_UN) }

    func sync() throws {
        // Some file systems cannot fsync a directory (EINVAL); their renames are then as
        // durable as they can make them.
        if fsync(fd) != 0 && errno != EINVAL { throw KilnError.io(errno, "cannot flush directory", path) }
    }

    static func sync(containing file: String) throws {
        try DirectoryHandle((file as NSString).deletingLastPathComponent).sync()
    }
}
