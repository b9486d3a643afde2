import Foundation

/// Items that several threads add to (a test's workers reporting results or failures).
public final class LockedList<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Element] = []

    public init() {}

    public func add(_ item: Element) {
        lock.lock()
        defer { lock.unlock() }
        items.append(item)
    }

    public func all() -> [Element] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
