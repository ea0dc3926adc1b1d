/// Counts multiply-adds of convolutions and fully connected layers while enabled (for `fovea models`).
public enum OperationCounter {
    nonisolated(unsafe) static var counting = false
    nonisolated(unsafe) static var total = 0

    /// Runs `body` and returns the multiply-adds that convolutions and linear layers performed in it.
    public static func countMultiplyAdds(_ body: () throws -> Void) rethrows -> Int {
        kernelLock.lock()
        defer { kernelLock.unlock() }
        counting = true
        total = 0
        defer { counting = false }
        try body()
        return total
    }

    @inline(__always) static func add(_ count: Int) { if counting { total += count } }
}
