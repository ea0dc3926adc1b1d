import ArgumentParser
import Foundation
import FoveaData
import FoveaModels
import FoveaONNX
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
        subcommands: [Train.self, Evaluate.self, Predict.self, Serve.self, Export.self, Models.self, Datasets.self, Bench.self])
}

/// Runs `body`, turning library errors into a message on stderr and the exit code of the CLI contract.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as DatasetError {
        fail(error.description, code: 65)
    } catch let error as ImageError {
        fail(error.description, code: 65)
    } catch let error as SafeTensorsError {
        fail(error.description, code: 65)
    } catch let error as TrainingError {
        switch error {
        case .invalidOption: fail(error.description, code: 64)
        case .badModelFile, .noSamples, .nonFiniteOutput: fail(error.description, code: 65)
        default: fail(error.description, code: 1)
        }
    } catch let error as ONNXError {
        switch error {
        case .export: fail(error.description, code: 1)
        default: fail(error.description, code: 65)
        }
    } catch let error as ModelZooError {
        fail(error.description, code: 64)
    } catch let error as CustomStringConvertible {
        fail(error.description, code: 1)
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
