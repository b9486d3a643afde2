import KilnIR
import KilnFrontend

/// The reader ops (TFRecordReaderV2, ReaderReadV2, ...), answered by the session on the host
/// against the readers it keeps. A read from the open file runs under the session's lock; one
/// that must wait on its filename queue runs with the lock let go (the runs that fill the queue
/// proceed meanwhile).
extension Session {
    /// The session's handler of each reader op (see `sessionHandlers`).
    static let readerHandlers: [String: SessionOpHandler] = [
        "TFRecordReaderV2": { session, op, _ in [try session.handle(of: op) { try session.reader(madeBy: op).name }] },
        "ReaderReadV2": onReader { session, reader, op, _ in
            let queue = try session.queue(for: op.inputs[1])
            var record = try reader.readWithoutWaiting()
            if record == nil { try session.withoutLock { record = try reader.read(from: queue) } }
            guard let record else { throw KilnError.internalError("'\(op.name)': a read ended without a record or an error") }
            return [try Tensor(shape: [], strings: record.keys), try Tensor(shape: [], strings: record.values)]
        },
        "ReaderReadUpToV2": onReader { session, reader, op, inputs in
            guard inputs[2].dtype == .int64, inputs[2].rank == 0 else {
                throw KilnError.invalidArgument("num_records must be an int64 scalar, got \(inputs[2].dtype.name)\(Shape(inputs[2].shape))")
            }
            let n = try inputs[2].scalar(as: Int64.self)
            guard n > 0 else { throw KilnError.invalidArgument("num_records (\(n)) must be > 0") }
            let queue = try session.queue(for: op.inputs[1])
            var records = HostTFRecordReader.Records()
            try session.withoutLock { records = try reader.readUpTo(Int(clamping: n), from: queue) }
            return [try Tensor(shape: [records.count], strings: records.keys), try Tensor(shape: [records.count], strings: records.values)]
        },
        "ReaderNumRecordsProducedV2": onReader { _, reader, _, _ in [Tensor(reader.numRecordsProduced)] },
        "ReaderNumWorkUnitsCompletedV2": onReader { _, reader, _, _ in [Tensor(reader.numWorkUnitsCompleted)] },
        "ReaderResetV2": onReader { _, reader, _, _ in
            reader.reset()
            return []
        },
    ]

    /// An op on the reader behind its input 0, given the reader and its input values.
    private static func onReader(_ body: @escaping @Sendable (Session, HostTFRecordReader, KilnFrontend.Operation, [Tensor]) throws -> [Tensor]) -> SessionOpHandler {
        { session, op, feeds in
            guard let readerOp = ReaderOps.readerOp(of: op.inputs[0]) else {
                throw KilnError.invalidArgument("input 0 of '\(op.name)' (op: \(op.type)) must be a reader handle, got '\(op.inputs[0].name)' (op: \(op.inputs[0].op.type))")
            }
            let reader = try session.reader(madeBy: readerOp)
            return try body(session, reader, op, try session.hostInputs(of: op, feeds: feeds))
        }
    }

    /// The reader a reader op makes in this session (made on first use, from the op's attrs).
    func reader(madeBy op: KilnFrontend.Operation) throws -> HostTFRecordReader {
        try resource(of: op) { _ in
            HostTFRecordReader(name: "TFRecordReader '\(op.name)'",
                               compression: try TFRecordCompression(typeString: op.attrs[ReaderOps.compressionType]))
        }
    }
}
