import ArgumentParser
import Foundation
import FoveaModels
import FoveaNN

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the architectures in the model zoo.")

    @Flag(help: "One JSON object per model.") var json = false
    @Option(help: "Number of classes to count parameters for.") var classes = 1000

    func run() throws {
        try runReportingErrors {
            for entry in ModelZoo.entries {
                let model = try entry.build(entry.name == "lenet5" ? 10 : classes, entry.inputSize[0])
                let parameters = model.parameterCount
                if json {
                    let object: [String: Any] = ["name": entry.name, "family": entry.family, "parameters": parameters,
                                                 "input_size": entry.inputSize]
                    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
                } else {
                    print("\(entry.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(entry.family.padding(toLength: 14, withPad: " ", startingAt: 0)) \(parameters) parameters, input \(entry.inputSize.map(String.init).joined(separator: "×"))")
                }
            }
        }
    }
}
