import Foundation

/// What went wrong in data-parallel training.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    /// libFoveaMPI.so (or the libmpi it needs) could not be opened.
    case libraryUnavailable(String)
    /// An MPI call returned an error.
    case mpi(operation: String, code: Int32, message: String)
    /// An operation waited longer than the communication timeout: another rank stopped answering.
    case timeout(operation: String, seconds: Double)
    /// The ranks do not run the same job (options, model or data differ).
    case mismatch(String)
    /// A call that the ranks cannot agree on (a size that is not the same everywhere, a bad root).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .libraryUnavailable(reason): return reason
        case let .mpi(operation, code, message): return "MPI \(operation) failed (error \(code)): \(message)"
        case let .timeout(operation, seconds):
            return "MPI \(operation) got no answer from the other ranks for \(Int(seconds)) s: a rank has died or hangs; "
                + "stopping (the last checkpoint is intact; rerun with --resume)"
        case let .mismatch(reason): return reason
        case let .invalidArgument(reason): return reason
        }
    }
}

/// Whether this process was started by an MPI launcher (Open MPI's mpirun/mpiexec, or a PMIx launcher), and as
/// which rank of how many; nil when it runs alone.
public struct LaunchEnvironment: Equatable, Sendable {
    public var rank: Int
    public var size: Int

    /// Reads Open MPI's (OMPI_COMM_WORLD_*) or PMIx's (PMIX_RANK with OMPI_COMM_WORLD_SIZE / PMI_SIZE) variables.
    public static func current(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> LaunchEnvironment? {
        guard let size = (environment["OMPI_COMM_WORLD_SIZE"] ?? environment["PMI_SIZE"]).flatMap(Int.init),
              let rank = (environment["OMPI_COMM_WORLD_RANK"] ?? environment["PMIX_RANK"] ?? environment["PMI_RANK"]).flatMap(Int.init)
        else { return nil }
        return LaunchEnvironment(rank: rank, size: size)
    }
}

/// The functions of libFoveaMPI.so (Sources/CFoveaMPI), Fovea's bridge to Open MPI, opened at run time so that the
/// fovea binary needs no MPI library unless mpirun starts it.
final class MPILibrary: @unchecked Sendable {
    typealias Init = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    typealias Plain = @convention(c) () -> Int32
    typealias Abort = @convention(c) (Int32) -> Int32
    typealias ErrorString = @convention(c) (Int32, UnsafeMutablePointer<CChar>, Int32) -> Void
    typealias Name = @convention(c) (UnsafeMutablePointer<CChar>, Int32) -> Int32
    typealias Request = UnsafeMutablePointer<UnsafeMutableRawPointer?>
    typealias Allreduce = @convention(c) (UnsafeMutableRawPointer, Int32, Int32, Int32, Request) -> Int32
    typealias Broadcast = @convention(c) (UnsafeMutableRawPointer, Int32, Int32, Int32, Request) -> Int32
    typealias Allgather = @convention(c) (UnsafeRawPointer, UnsafeMutableRawPointer, Int32, Int32, Request) -> Int32
    typealias Barrier = @convention(c) (Request) -> Int32
    typealias Test = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32

    let initialize: Init, finalize: Plain, abort: Abort, errorString: ErrorString, processorName: Name
    let iallreduce: Allreduce, ibcast: Broadcast, iallgather: Allgather, ibarrier: Barrier, test: Test

    /// The bridge's file name, looked for next to the running executable unless FOVEA_MPI_LIBRARY names it.
    static let fileName = "libFoveaMPI.so"

    /// Where the bridge is looked for.
    static func path(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let given = environment["FOVEA_MPI_LIBRARY"], !given.isEmpty { return given }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((executable as NSString).deletingLastPathComponent as NSString).appendingPathComponent(fileName)
    }

    init(path: String = MPILibrary.path()) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DistributedError.libraryUnavailable(
                "mpirun started fovea, but \(path) (Fovea's bridge to Open MPI) does not exist: build it with "
                + "`swift build -c release --product FoveaMPI` (plain `swift build -c release` builds it too), "
                + "or name it with FOVEA_MPI_LIBRARY")
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw DistributedError.libraryUnavailable(
                "cannot open \(path): \(reason) (Open MPI's libmpi.so.40 comes with Debian's openmpi-bin and libopenmpi-dev; "
                + "scripts/install-dependencies.sh installs them)")
        }
        func symbol<T>(_ name: String, _: T.Type) throws -> T {
            guard let pointer = dlsym(handle, name) else {
                throw DistributedError.libraryUnavailable("\(path) has no function \(name): rebuild it with this Fovea")
            }
            return unsafeBitCast(pointer, to: T.self)
        }
        initialize = try symbol("fovea_mpi_init", Init.self)
        finalize = try symbol("fovea_mpi_finalize", Plain.self)
        abort = try symbol("fovea_mpi_abort", Abort.self)
        errorString = try symbol("fovea_mpi_error_string", ErrorString.self)
        processorName = try symbol("fovea_mpi_processor_name", Name.self)
        iallreduce = try symbol("fovea_mpi_iallreduce", Allreduce.self)
        ibcast = try symbol("fovea_mpi_ibcast", Broadcast.self)
        iallgather = try symbol("fovea_mpi_iallgather", Allgather.self)
        ibarrier = try symbol("fovea_mpi_ibarrier", Barrier.self)
        test = try symbol("fovea_mpi_test", Test.self)
    }

    /// Throws `DistributedError.mpi` for a non-zero MPI return code.
    func check(_ code: Int32, _ operation: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        errorString(code, &text, Int32(text.count))
        throw DistributedError.mpi(operation: operation, code: code, message: String(cString: text))
    }
}

/// Element types of the MPI calls (the bridge's FOVEA_MPI_* constants).
enum MPIType: Int32 {
    case float = 0, double = 1, int64 = 2, byte = 3

    var size: Int {
        switch self {
        case .float: return 4
        case .double, .int64: return 8
        case .byte: return 1
        }
    }
}

/// Reductions of `allreduce`.
public enum ReduceOperation: Int32, Sendable {
    case sum = 0, max = 1, min = 2
}
