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
final class AtomicFile {
    let path: String
    let temporaryPath: String
    private var fd: Int32
    private(set) var bytesWritten = 0
    private var finished = false

    /// Creates the parent directory when it is missing, as TensorFlow's bundle writer does.
    init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw KilnError(.permissionDenied, "cannot create directory '\(dir)' for '\(path)': \(error.localizedDescription)")
            }
        }
        temporaryPath = "\(path).tempstate\(UInt64.random(in: 0...UInt64.max))"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw KilnError.io(errno, "cannot create", temporaryPath) }
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

    /// Flushes the data to disk, then renames the file into place.
    func commit() throws {
        precondition(!finished, "AtomicFile committed twice")
        finished = true
        defer { fd = -1 }
        if fsync(fd) != 0 {
            let e = errno
            close(fd)
            unlink(temporaryPath)
            throw KilnError.io(e, "cannot flush", temporaryPath)
        }
        if close(fd) != 0 {
            let e = errno
            unlink(temporaryPath)
            throw KilnError.io(e, "cannot close", temporaryPath)
        }
        if rename(temporaryPath, path) != 0 {
            let e = errno
            unlink(temporaryPath)
            throw KilnError.io(e, "cannot rename '\(temporaryPath)' to", path)
        }
    }

    /// Closes and deletes the temporary file; the destination is untouched.
    func abort() {
        finished = true
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(temporaryPath)
    }

    /// Writes `bytes` to `path` atomically in one step.
    static func write(_ bytes: [UInt8], to path: String) throws {
        let f = try AtomicFile(path: path)
        try f.write(bytes)
        try f.commit()
    }
}
