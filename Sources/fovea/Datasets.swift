import ArgumentParser
import Foundation
import FoveaData
import FoveaTrain

struct Datasets: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the known datasets, where Fovea looks for them and what it found there.",
        discussion: "Each dataset is looked for in --data-dir, else FOVEA_DATA (or its subfolder named after the dataset), else its default folder.")

    @Option(name: .customLong("data-dir"), help: "Look here instead of the default folders.") var dataDir: String?
    @Flag(help: "One JSON object per dataset.") var json = false

    func run() throws {
        try runReportingErrors {
            for info in DatasetInfo.known {
                let directory = info.resolveDirectory(dataDirectory: dataDir)
                var counts: [String: Int] = [:]
                var problem: String?
                for split in IDXDataset.Split.allCases {
                    do {
                        counts[split.rawValue] = try loadImages(info, directory: directory, split: split).count
                    } catch {
                        problem = problem ?? "\(error)"
                    }
                }
                if json {
                    var object: [String: Any] = ["name": info.name, "directory": directory, "classes": info.classCount,
                                                 "found": problem == nil, "samples": counts,
                                                 "image_shape": [info.channels, info.height, info.width]]
                    if let problem { object["problem"] = problem }
                    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                } else {
                    let status = problem == nil ? "found: \(counts["train"] ?? 0) train, \(counts["test"] ?? 0) test"
                        : "not usable: \(problem!)"
                    print("\(info.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(directory)\n    \(status)")
                }
            }
        }
    }
}
