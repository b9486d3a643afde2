/// A session resource whose waits end when the session closes (queues, readers waiting for work).
protocol CancellableResource: AnyObject {
    /// Ends every wait with `cancelled` and fails later operations.
    func cancel()
}
