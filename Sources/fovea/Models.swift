import ArgumentParser
import Foundation
import FoveaModels
import FoveaNN
import FoveaTensor
import FoveaTrain

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the architectures in the model zoo with parameters and multiply-adds.",
        discussion: """
            Parameters are counted for --classes classes (LeNet-5 always for 10) and the default input channels;
            multiply-adds are those of convolutions and fully connected layers for one image at the default
            input size, measured by running the model once in inference mode.
            """)

    @Flag(help: "One JSON object per model, one per line.") var json = false
    @Option(help: "Number of classes to count parameters for.") var classes = 1000
    @Argument(help: "Only these models (default: all).") var names: [String] = []

    func run() throws {
        try runReportingErrors {
            if let problem = TrainingOptions.outOfRange("--classes", classes, 1...ModelSidecar.maximumClasses) {
                throw TrainingError.invalidOption(problem)
            }
            let entries = try names.isEmpty ? ModelZoo.entries : names.map { try ModelZoo.entry($0) }
            if !json {
                print("name                   family         parameters   multiply-adds  input")
            }
            for entry in entries {
                let classCount = entry.name == "lenet5" ? 10 : classes
                let model = try entry.build(classCount, entry.inputSize[0])
                model.eval()
                let input = Tensor.zeros([1] + entry.inputSize)
                let multiplyAdds = try OperationCounter.countMultiplyAdds {
                    _ = try Autodiff.withoutRecording { try model(input) }
                }
                let parameters = model.parameterCount
                if json {
                    let object: [String: Any] = ["name": entry.name, "family": entry.family, "parameters": parameters,
                                                 "multiply_adds": multiplyAdds, "input_size": entry.inputSize,
                                                 "classes": classCount]
                    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
                } else {
                    let name = entry.name.padding(toLength: 22, withPad: " ", startingAt: 0)
                    let family = entry.family.padding(toLength: 14, withPad: " ", startingAt: 0)
                    let operations = multiplyAdds >= 100_000_000 ? String(format: "%9.2f G", Double(multiplyAdds) / 1e9)
                        : String(format: "%9.2f M", Double(multiplyAdds) / 1e6)
                    print(String(format: "%@ %@ %11d %15@  %@", name, family, parameters, operations,
                                 entry.inputSize.map(String.init).joined(separator: "×")))
                }
            }
        }
    }
}
