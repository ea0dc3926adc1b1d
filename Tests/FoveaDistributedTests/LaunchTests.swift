import Foundation
@testable import FoveaDistributed
import Testing

@Suite("Launch environment")
struct LaunchTests {
    @Test("Open MPI's and PMIx's variables give rank and size; none means one process")
    func environment() {
        #expect(LaunchEnvironment.current(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"]) == LaunchEnvironment(rank: 3, size: 4))
        #expect(LaunchEnvironment.current(["PMI_SIZE": "2", "PMIX_RANK": "1"]) == LaunchEnvironment(rank: 1, size: 2))
        #expect(LaunchEnvironment.current([:]) == nil)
        #expect(LaunchEnvironment.current(["OMPI_COMM_WORLD_SIZE": "x", "OMPI_COMM_WORLD_RANK": "0"]) == nil)
    }

    @Test("A missing bridge library is a clear error, not a crash")
    func missingLibrary() {
        #expect {
            _ = try MPILibrary(path: "/nonexistent/libFoveaMPI.so")
        } throws: { error in
            "\(error)".contains("/nonexistent/libFoveaMPI.so") && "\(error)".contains("--product FoveaMPI")
        }
    }
}
