import FoveaNN

/// The registry of named architectures: name → builder taking the class count and input channels.
public enum ModelZoo {
    /// One registered architecture.
    public struct Entry: Sendable {
        /// Registry name (torchvision's where one exists).
        public let name: String
        /// Architecture family, e.g. "LeNet".
        public let family: String
        /// Default input (channels, height, width).
        public let inputSize: [Int]
        /// The smallest convenient input (channels, height, width) the architecture accepts, for quick tests.
        public let smallInputSize: [Int]
        /// Builds the model.
        public let build: @Sendable (_ classCount: Int, _ inputChannels: Int) throws -> Layer

        /// Creates an entry; `smallInputSize` defaults to 32×32 with the default channels.
        public init(name: String, family: String, inputSize: [Int], smallInputSize: [Int]? = nil,
                    build: @escaping @Sendable (_ classCount: Int, _ inputChannels: Int) throws -> Layer) {
            (self.name, self.family, self.inputSize, self.build) = (name, family, inputSize, build)
            self.smallInputSize = smallInputSize ?? [inputSize[0], 32, 32]
        }
    }

    /// Every registered model, in display order (one list per family file).
    public static let entries: [Entry] = lenetEntries + alexNetEntries + vggEntries + inceptionEntries + resNetEntries
        + cifarResNetEntries + mobileNetEntries + efficientNetEntries

    static let lenetEntries: [Entry] = [
        Entry(name: "lenet5", family: "LeNet", inputSize: [1, 28, 28], smallInputSize: [1, 28, 28]) {
            try LeNet5(classCount: $0, inputChannels: $1)
        },
    ]

    /// Registered names.
    public static var names: [String] { entries.map(\.name) }

    /// The entry for `name`, or `ModelZooError.unknownModel`.
    public static func entry(_ name: String) throws -> Entry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw ModelZooError.unknownModel(name: name, known: names)
        }
        return entry
    }

    /// Builds model `name` for `classCount` classes and `inputChannels` input channels.
    public static func make(_ name: String, classCount: Int, inputChannels: Int) throws -> Layer {
        try entry(name).build(classCount, inputChannels)
    }
}

/// Errors from the model registry and model files.
public enum ModelZooError: Error, CustomStringConvertible, Equatable {
    case unknownModel(name: String, known: [String])

    public var description: String {
        switch self {
        case let .unknownModel(name, known): return "unknown model '\(name)'; known models: \(known.joined(separator: ", "))"
        }
    }
}
