#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be read whole; each reader turns it into its own error type, naming the file.
public enum FileReadError: Error, Equatable, Sendable {
    /// Opening, inspecting or reading failed with the operating system's error `code` (`errno`, e.g. ENOENT).
    case system(code: Int32)
    /// The path is a FIFO, folder, device or socket, which a reader would wait on or cannot read.
    case notRegular
    /// The file is larger than the reader's limit.
    case tooLarge(size: Int, limit: Int)

    /// The reason in words, for messages that already name the file.
    public var reason: String {
        switch self {
        case let .system(code): return String(cString: strerror(code))
        case .notRegular: return "not a regular file"
        case let .tooLarge(size, limit): return "\(size) bytes, more than the \(limit)-byte limit"
        }
    }
}

/// An open regular file: the one way Fovea opens a file to read it whole (weights, checkpoints, sidecars, images, IDX
/// and CIFAR files). It never waits on a FIFO (opened with O_NONBLOCK, then refused by its type from the open
/// descriptor, so nothing can be swapped in between), refuses anything but a regular file, and a file over `limit`.
public struct RegularFile: ~Copyable {
    private let descriptor: Int32
    /// The size when it was opened.
    public let size: Int

    /// Opens `path` and checks its type and size.
    public init(path: String, limit: Int) throws(FileReadError) {
        let opened = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard opened >= 0 else { throw .system(code: errno) }
        var status = stat()
        guard fstat(opened, &status) == 0 else {
            let code = errno
            close(opened)
            throw .system(code: code)
        }
        guard status.st_mode & S_IFMT == S_IFREG else { close(opened); throw .notRegular }
        guard Int(status.st_size) <= limit else { close(opened); throw .tooLarge(size: Int(status.st_size), limit: limit) }
        (descriptor, size) = (opened, Int(status.st_size))
    }

    deinit { close(descriptor) }

    /// Reads up to `count` bytes into `buffer`, retrying interrupted reads; 0 at the end of the file.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws(FileReadError) -> Int {
        while true {
            #if canImport(Glibc)
            let got = Glibc.read(descriptor, buffer, count)
            #else
            let got = Darwin.read(descriptor, buffer, count)
            #endif
            if got >= 0 { return got }
            if errno != EINTR { throw .system(code: errno) }
        }
    }

    /// The whole file at `path` (as it is when read: a file that shrank gives what is left).
    public static func contents(of path: String, limit: Int) throws(FileReadError) -> [UInt8] {
        let file = try RegularFile(path: path, limit: limit)
        var bytes = [UInt8](repeating: 0, count: file.size)
        var failure: FileReadError?
        let filled = bytes.withUnsafeMutableBytes { buffer -> Int in
            var filled = 0
            while filled < buffer.count {
                do throws(FileReadError) {
                    let got = try file.read(into: buffer.baseAddress! + filled, count: buffer.count - filled)
                    if got == 0 { break }
                    filled += got
                } catch {
                    failure = error
                    break
                }
            }
            return filled
        }
        if let failure { throw failure }
        if filled < bytes.count { bytes.removeLast(bytes.count - filled) }
        return bytes
    }
}
