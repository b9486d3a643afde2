import Foundation

/// Progress of long work on standard output. On a terminal (isatty), `update` rewrites one
/// status line in place (carriage return, erase to end of line), at most `maxRate` times a second;
/// `line` prints a permanent line above it. Otherwise `update` prints nothing and `line` prints
/// plainly, so logs, pipes and tests see exactly the lines they saw before.
public final class ProgressLine: @unchecked Sendable {
    public let isTerminal: Bool
    private let lock = NSLock()
    private let minInterval: Double
    private var lastUpdate = 0.0
    private var showing = false
    private let write: (String) -> Void

    /// `isTerminal` defaults to whether stdout is a terminal; `write` (for tests) defaults to stdout.
    public init(isTerminal: Bool = isatty(STDOUT_FILENO) == 1, maxRate: Double = 10, write: ((String) -> Void)? = nil) {
        self.isTerminal = isTerminal
        self.minInterval = 1 / maxRate
        self.write = write ?? { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// The status line, replaced by the next update (on a terminal only; throttled unless `force`).
    public func update(_ status: String, force: Bool = false) {
        guard isTerminal else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date().timeIntervalSinceReferenceDate
        guard force || now - lastUpdate >= minInterval else { return }
        lastUpdate = now
        showing = true
        fflush(nil)
        // The status is cut to one line: a wrapped line could not be erased by "\r".
        write("\r\u{1B}[K" + status.prefix { $0 != "\n" })
    }

    /// A permanent line (the status line, if any, is erased first and shown again by the next update).
    public func line(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        // Swift's print buffers stdout when it is not a terminal; flush it so the two keep their order.
        fflush(nil)
        write((showing ? "\r\u{1B}[K" : "") + text + "\n")
        showing = false
        lastUpdate = 0
    }

    /// Erases the status line (the work it described is done).
    public func clear() {
        lock.lock()
        defer { lock.unlock() }
        if showing { write("\r\u{1B}[K") }
        showing = false
    }
}
