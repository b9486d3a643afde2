import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KilnIR
import KilnFrontend
import SwiftProtobuf

/// Reads a TensorFlow V2 checkpoint (tensor bundle) such as `dir/model.ckpt-20`: the whole
/// index at open, tensors from the data files on demand. Every tensor read is checked against
/// its recorded size and CRC32C.
public final class CheckpointReader {
    public let prefix: String
    public let indexPath: String
    public let header: Tensorflow_BundleHeaderProto
    /// The raw index entries by key (the header's empty key excluded).
    public let entries: [String: Tensorflow_BundleEntryProto]
    /// All keys in bytewise order, as stored.
    public let keys: [String]
    private var dataFiles: [Int: Int32] = [:]

    public init(prefix: String) throws {
        self.prefix = prefix
        let indexPath = CheckpointPaths.index(prefix: prefix)
        self.indexPath = indexPath
        // Under the directory's lock, a save in progress finishes first and one a kill interrupted
        // is completed (CheckpointCommit), and the index and data files are opened together, so
        // this reader sees one whole checkpoint even if the prefix is saved again meanwhile. In a
        // directory it cannot lock or repair (read-only), it reads what is there.
        let directory = try? DirectoryHandle((prefix as NSString).deletingLastPathComponent)
        if let d = directory, (try? d.lock()) != nil { try? CheckpointCommit.recoverLocked(d) }
        defer { directory?.unlock() }
        guard let contents = FileManager.default.contents(atPath: indexPath) else {
            throw KilnError.notFound("no checkpoint at '\(prefix)': cannot read its index '\(indexPath)'")
        }
        let table: [(key: [UInt8], value: [UInt8])]
        do { table = try TableReader.entries([UInt8](contents)) } catch let e as TableFormatError {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': \(e.message)")
        }
        guard let first = table.first, first.key.isEmpty else {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': it has no bundle header (empty key)")
        }
        do { header = try Tensorflow_BundleHeaderProto(serializedBytes: first.value) } catch {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': unparsable bundle header: \(error)")
        }
        guard header.numShards >= 1 else {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': header says \(header.numShards) data shards")
        }
        guard header.endianness == .little else {
            throw KilnError.unimplemented("checkpoint '\(prefix)' was written on a big-endian machine; Kiln reads little-endian bundles only")
        }
        if header.version.minConsumer > CheckpointWriter.bundleVersion || header.version.badConsumers.contains(CheckpointWriter.bundleVersion) {
            throw KilnError.invalidArgument("checkpoint '\(prefix)' needs tensor bundle version \(header.version.minConsumer) or later (Kiln reads version \(CheckpointWriter.bundleVersion))")
        }
        var entries: [String: Tensorflow_BundleEntryProto] = [:]
        var keys: [String] = []
        for (key, value) in table.dropFirst() {
            guard let name = String(validating: key, as: UTF8.self) else {
                throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': a key is not UTF-8 (\(key.prefix(32)))")
            }
            do { entries[name] = try Tensorflow_BundleEntryProto(serializedBytes: value) } catch {
                throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': entry of tensor '\(name)' does not parse: \(error)")
            }
            keys.append(name)
        }
        var opened: [Int: Int32] = [:]
        for shard in Set(entries.values.map(\.shardID)) where shard >= 0 && shard < header.numShards {
            let fd = open(CheckpointPaths.data(prefix: prefix, shard: Int(shard), numShards: Int(header.numShards)), O_RDONLY | O_CLOEXEC)
            if fd >= 0 { opened[Int(shard)] = fd }
        }
        self.entries = entries
        self.keys = keys
        self.dataFiles = opened
    }

    deinit {
        for fd in dataFiles.values { close(fd) }
    }

    public func contains(_ key: String) -> Bool { entries[key] != nil }

    /// dtype and shape of every tensor whose dtype Kiln has (TensorFlow's
    /// get_variable_to_dtype_map and get_variable_to_shape_map together).
    public var dtypesAndShapes: [String: (dtype: DType, shape: [Int])] {
        var out: [String: (dtype: DType, shape: [Int])] = [:]
        for (key, e) in entries {
            guard let d = e.dtype.kilnDType, let s = try? Shape(proto: e.shape).concrete else { continue }
            out[key] = (d, s)
        }
        return out
    }

    /// Reads one tensor, verifying its size and checksum.
    public func tensor(named key: String) throws -> Tensor {
        guard let e = entries[key] else { throw KilnError.notFound("Key \(key) not found in checkpoint '\(prefix)'") }
        guard e.slices.isEmpty else {
            throw KilnError.unimplemented("tensor '\(key)' in checkpoint '\(prefix)' is stored as slices of a partitioned variable, which Kiln does not read")
        }
        let dtype: DType
        do { dtype = try e.dtype.toKiln() } catch let err as KilnError {
            throw KilnError(err.code, "tensor '\(key)' in checkpoint '\(prefix)': \(err.message)")
        }
        guard let shape = try? Shape(proto: e.shape).concrete else {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': tensor '\(key)' has an invalid shape")
        }
        guard let count = Sizes.product(shape) else {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': tensor '\(key)' has shape \(shape)")
        }
        guard e.shardID >= 0, e.shardID < header.numShards else {
            throw KilnError.dataLoss("corrupt checkpoint index '\(indexPath)': tensor '\(key)' is in shard \(e.shardID) of \(header.numShards)")
        }
        let path = CheckpointPaths.data(prefix: prefix, shard: Int(e.shardID), numShards: Int(header.numShards))
        let offset = e.offset, size = e.size
        let at = "tensor '\(key)' in '\(path)' at offset \(offset)"
        guard offset >= 0, size >= 0 else { throw KilnError.dataLoss("\(at): invalid offset or size \(size) in the index") }
        let fd = try dataFile(Int(e.shardID), path)
        // Checked before allocating, so a corrupt size cannot ask for absurd memory.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw KilnError.io(errno, "cannot stat checkpoint data file", path) }
        let fileSize = Int64(info.st_size)
        guard offset <= fileSize, size <= fileSize - offset else {
            throw KilnError.dataLoss("\(at): the entry needs \(size) bytes but the file has \(max(0, fileSize - offset)) from there (\(fileSize) in all; truncated)")
        }

        if dtype != .string {
            let (need, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o, Int64(need) == size else {
                throw KilnError.dataLoss("\(at): the index records \(size) bytes but \(dtype) \(Shape(shape)) needs \(o ? "more than Int.max" : String(need))")
            }
            let buffer = try TensorBuffer(byteCount: need)
            try read(fd, into: UnsafeMutableRawBufferPointer(start: buffer.pointer, count: need), offset: offset, at)
            try verify(CRC32C.checksum(UnsafeRawBufferPointer(start: buffer.pointer, count: need)), e, at)
            if dtype == .bool {
                let b = buffer.pointer.assumingMemoryBound(to: UInt8.self)
                for i in 0..<need where b[i] > 1 { b[i] = 1 }
            }
            return try Tensor(dtype: dtype, shape: shape, buffer: buffer)
        }

        var bytes = [UInt8](repeating: 0, count: Int(size))
        try bytes.withUnsafeMutableBytes { try read(fd, into: $0, offset: offset, at) }
        let decoded: (strings: TensorStrings, crc: UInt32)
        do { decoded = try BundleStrings.decode(bytes, count: count) } catch let err as TableFormatError {
            throw KilnError.dataLoss("\(at): \(err.message)")
        }
        try verify(decoded.crc, e, at)
        return try Tensor(shape: shape, strings: decoded.strings)
    }

    /// Every tensor, by key; fails on the first one that cannot be read.
    public func allTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for k in keys { out[k] = try tensor(named: k) }
        return out
    }

    private func verify(_ crc: UInt32, _ e: Tensorflow_BundleEntryProto, _ at: String) throws {
        let expected = CRC32C.unmask(e.crc32C)
        guard crc == expected else {
            throw KilnError.dataLoss("checksum mismatch for \(at) (\(e.size) bytes): expected crc32c 0x\(String(expected, radix: 16)), got 0x\(String(crc, radix: 16)); the checkpoint is corrupted")
        }
    }

    private func dataFile(_ shard: Int, _ path: String) throws -> Int32 {
        if let fd = dataFiles[shard] { return fd }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let err = errno
            if err == ENOENT { throw KilnError.notFound("data file '\(path)' of checkpoint '\(prefix)' does not exist") }
            throw KilnError.io(err, "cannot open checkpoint data file", path)
        }
        dataFiles[shard] = fd
        return fd
    }

    private func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64, _ at: String) throws {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw KilnError(.dataLoss, "\(at): read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw KilnError.dataLoss("\(at): the file ends after \(done) of \(buffer.count) bytes (truncated)") }
            done += n
        }
    }
}
