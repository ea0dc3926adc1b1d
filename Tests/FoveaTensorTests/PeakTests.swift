import FoveaTensor
import Testing

@Suite("Measured machine peak")
struct PeakTests {
    @Test("sgemm's rate is a positive, finite GFLOP/s figure, and bad arguments are errors")
    func measuredPeak() throws {
        let peak = try MachinePeak.measureGFLOPs(size: 256, seconds: 0.05)
        // Anything a CPU core can do: more than 0.1 GFLOP/s, less than 100 TFLOP/s.
        #expect(peak > 0.1 && peak < 100_000, "\(peak)")
        #expect(throws: TensorError.self) { try MachinePeak.measureGFLOPs(size: 0) }
        #expect(throws: TensorError.self) { try MachinePeak.measureGFLOPs(seconds: -1) }
    }
}
