import ArgumentParser
import Foundation
import FoveaData
import FoveaDistributed
import FoveaModels
import FoveaONNX
import FoveaTensor
import FoveaTrain

@main
struct Fovea: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fovea",
        abstract: "Train, evaluate and inspect convolutional image classifiers on the CPU.",
        discussion: """
            Exit codes: 0 ok, 64 usage, 65 bad data or model file, 1 anything else.
            Fashion-MNIST is read from /usr/share/datasets/fashion-mnist unless --data-dir or FOVEA_DATA says otherwise.
            """,
        subcommands: [Train.self, Evaluate.self, Predict.self, Serve.self, Export.self, Quantize.self, Models.self, Datasets.self,
                      Bench.self])
}

/// Runs `body`, turning library errors into a message on stderr and the exit code of the CLI contract. In a
/// data-parallel job (`communicator`), the message names the rank and the whole job ends with the code (MPI_Abort):
/// the other ranks cannot know of the error and would wait for this one.
func runReportingErrors(communicator: Communicator? = nil, _ body: () throws -> Void) throws {
    guard let communicator else { return try reportingErrors(body) }
    do { try body() } catch {
        let code = exitCode(of: error)
        FileHandle.standardError.write(Data("error: rank \(communicator.rank) of \(communicator.size) (\(communicator.host)): \(error)\n".utf8))
        communicator.abort(code: code)
    }
}

/// The CLI contract's exit code of an error: 64 usage, 65 bad data or file, 69 unavailable service, 1 otherwise.
func exitCode(of error: Error) -> Int32 {
    switch error {
    case is DatasetError, is ImageError, is SafeTensorsError: return 65
    case let error as TrainingError:
        switch error {
        case .invalidOption: return 64
        case .badModelFile, .noSamples, .nonFiniteOutput: return 65
        default: return 1
        }
    case let error as ONNXError:
        if case .export = error { return 1 }
        return 65
    case is ModelZooError: return 64
    case is DistributedError: return 69
    default: return 1
    }
}

private func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch {
        fail("\(error)", code: exitCode(of: error))
    }
}

func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(code)
}

func printJSON(_ data: Data) {
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// A warning on stderr.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

extension Precision: ExpressibleByArgument {}

extension Precision {
    /// The precision a command runs in for `--precision`: itself where the CPU has it; otherwise fp32, after a warning
    /// on standard error.
    func forThisMachine() -> Precision {
        let (precision, warning) = resolved()
        if let warning { FileHandle.standardError.write(Data("warning: --precision \(self): \(warning)\n".utf8)) }
        return precision
    }
}

extension Optional where Wrapped == Precision {
    /// The precision to run the model of `weights` in: the one asked for or, by default, int8 for a quantized model
    /// (its sidecar has `quantization`) and fp32 otherwise; see `forThisMachine` for a CPU without it. int8 asked of a
    /// model without calibration is a usage error.
    func forModel(_ sidecar: ModelSidecar, weights: String) throws -> Precision {
        let requested = self ?? (sidecar.quantization == nil ? .fp32 : .int8)
        if requested == .int8 && sidecar.quantization == nil {
            throw TrainingError.invalidOption("--precision int8 needs a quantized model, and \(weights) has no calibration: "
                                              + "make one with fovea quantize --weights \(weights) --calibrate-on DATASET --output FILE")
        }
        return requested.forThisMachine()
    }
}
