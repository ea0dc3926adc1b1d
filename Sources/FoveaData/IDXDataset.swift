import Foundation
import FoveaTensor

/// One split of an MNIST-family dataset (MNIST, Fashion-MNIST, …) held in memory as bytes.
///
/// The directory holds the four files under their usual names, e.g. `train-images-idx3-ubyte`
/// and `t10k-labels-idx1-ubyte`, each either raw or gzip-compressed (`.gz`); the variant
/// `train-images.idx3-ubyte` is accepted too. Images are grey, so batches have one channel.
public struct IDXDataset: LabeledImages {
    /// Which half of the dataset to load.
    public enum Split: String, Sendable, CaseIterable, CustomStringConvertible {
        /// The training images (`train-*` files).
        case train
        /// The test images (`t10k-*` files).
        case test

        /// The file-name prefix this split uses.
        public var filePrefix: String { self == .train ? "train" : "t10k" }

        /// The split's name, `train` or `test`.
        public var description: String { rawValue }
    }

    /// The split that was loaded.
    public let split: Split
    /// The image file the samples came from.
    public let imagesPath: String
    /// The label file the labels came from.
    public let labelsPath: String
    /// The number of samples loaded (after `limit`).
    public let count: Int
    /// Image height in pixels.
    public let height: Int
    /// Image width in pixels.
    public let width: Int
    /// Grey images: one channel.
    public var channels: Int { 1 }
    /// The number of classes; every label is in `0..<classCount`.
    public let classCount: Int
    /// All images, sample after sample, row-major: `count × height × width` bytes.
    public let pixels: [UInt8]
    /// One label per sample.
    public let labels: [Int32]

    /// Loads `split` from `directory`, keeping only the first `limit` samples if one is given.
    ///
    /// Every label in the file is checked, not only the first `limit`, so a damaged file fails
    /// the same way whatever the limit.
    /// - Throws: `DatasetError` naming the directory or file at fault.
    public init(directory: String, split: Split, classCount: Int = 10, limit: Int? = nil) throws {
        guard classCount > 0 else {
            throw DatasetError.invalidParameter(name: "class count", value: classCount, reason: "must be positive")
        }
        if let limit, limit < 0 {
            throw DatasetError.invalidParameter(name: "sample limit", value: limit, reason: "must not be negative")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError.missingDirectory(path: directory)
        }
        let imagesPath = try Self.locate(split.filePrefix + "-images", rank: 3, in: directory)
        let labelsPath = try Self.locate(split.filePrefix + "-labels", rank: 1, in: directory)
        let images = try IDXFile.read(path: imagesPath)
        let labelFile = try IDXFile.read(path: labelsPath)

        guard images.dimensions.count == 3, images.dimensions[1] > 0, images.dimensions[2] > 0 else {
            throw DatasetError.unexpectedShape(
                path: imagesPath, expected: "[count, height, width] with nonzero height and width",
                found: images.dimensions)
        }
        guard labelFile.dimensions.count == 1 else {
            throw DatasetError.unexpectedShape(path: labelsPath, expected: "[count]", found: labelFile.dimensions)
        }
        guard images.dimensions[0] == labelFile.dimensions[0] else {
            throw DatasetError.countMismatch(
                imagesPath: imagesPath, imageCount: images.dimensions[0],
                labelsPath: labelsPath, labelCount: labelFile.dimensions[0])
        }
        if let index = labelFile.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw DatasetError.labelOutOfRange(
                path: labelsPath, index: index, label: Int(labelFile.bytes[index]), classCount: classCount)
        }

        let count = min(images.dimensions[0], limit ?? Int.max)
        let sampleSize = images.dimensions[1] * images.dimensions[2]
        self.split = split
        self.imagesPath = imagesPath
        self.labelsPath = labelsPath
        self.count = count
        self.height = images.dimensions[1]
        self.width = images.dimensions[2]
        self.classCount = classCount
        self.pixels = count == images.dimensions[0] ? images.bytes : Array(images.bytes.prefix(count * sampleSize))
        self.labels = labelFile.bytes.prefix(count).map { Int32($0) }
    }

    /// Loads `split` of a known dataset from the directory `dataset.resolveDirectory` picks.
    public init(
        dataset: DatasetInfo, split: Split, dataDirectory: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment, limit: Int? = nil
    ) throws {
        try self.init(
            directory: dataset.resolveDirectory(dataDirectory: dataDirectory, environment: environment),
            split: split, classCount: dataset.classCount, limit: limit)
    }

    /// The accepted names for one file, in order of preference (raw before gzip).
    public static func candidateNames(_ stem: String, rank: Int) -> [String] {
        let suffix = "idx\(rank)-ubyte"
        return ["\(stem)-\(suffix)", "\(stem)-\(suffix).gz", "\(stem).\(suffix)", "\(stem).\(suffix).gz"]
    }

    /// The splits whose image and label files are both present in `directory`.
    public static func availableSplits(in directory: String) -> [Split] {
        Split.allCases.filter { split in
            (try? locate(split.filePrefix + "-images", rank: 3, in: directory)) != nil
                && (try? locate(split.filePrefix + "-labels", rank: 1, in: directory)) != nil
        }
    }

    /// The path of the first candidate name that exists in `directory`.
    private static func locate(_ stem: String, rank: Int, in directory: String) throws -> String {
        let names = candidateNames(stem, rank: rank)
        for name in names {
            let path = joinPath(directory, name)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return path
            }
        }
        throw DatasetError.missingFile(directory: directory, expected: names)
    }

    /// Mean and standard deviation of all pixels scaled to [0, 1], the constants `Normalize` wants.
    ///
    /// The standard deviation is the unbiased (n − 1) estimate, matching `torch.Tensor.std()`
    /// with which the published constants (Fashion-MNIST 0.2860 / 0.3530) were computed.
    /// Computed exactly from a 256-bin histogram, so the result does not depend on pixel order.
    /// An empty dataset gives (0, 0); a single pixel gives a standard deviation of 0.
    public func meanAndStandardDeviation() -> (mean: Double, std: Double) {
        var histogram = [Int](repeating: 0, count: 256)
        for pixel in pixels { histogram[Int(pixel)] += 1 }
        let total = Double(pixels.count)
        guard total > 0 else { return (0, 0) }
        var sum = 0.0
        for (value, frequency) in histogram.enumerated() { sum += Double(frequency) * Double(value) / 255 }
        let mean = sum / total
        guard total > 1 else { return (mean, 0) }
        var squares = 0.0
        for (value, frequency) in histogram.enumerated() {
            let deviation = Double(value) / 255 - mean
            squares += Double(frequency) * deviation * deviation
        }
        return (mean, (squares / (total - 1)).squareRoot())
    }

    /// Writes the samples at `indices` as a normalised NCHW batch (C = 1) and their labels.
    ///
    /// Each pixel becomes `(p / 255 - mean) / std`, computed in `Float` in that order (as
    /// torchvision's `ToTensor` then `Normalize` do); `std` must be nonzero. `images` must have
    /// room for `indices.count × height × width` floats and `labels` for `indices.count` labels.
    /// - Precondition: every index is in `0..<count` (indices come from `batchOrder`).
    public func fillBatch(
        indices: ArraySlice<Int>, mean: Float, std: Float,
        into images: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        let sampleSize = height * width
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { table in
            for value in 0..<256 { table[value] = (Float(value) / 255 - mean) / std }
            pixels.withUnsafeBufferPointer { source in
                for (slot, index) in indices.enumerated() {
                    precondition(index >= 0 && index < count, "sample index \(index) outside 0..<\(count)")
                    let from = source.baseAddress.unsafelyUnwrapped + index * sampleSize
                    let to = images + slot * sampleSize
                    for offset in 0..<sampleSize { to[offset] = table[Int(from[offset])] }
                    labels[slot] = self.labels[index]
                }
            }
        }
    }
}

/// Joins a directory and a name with exactly one slash.
func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// What Fovea knows about a named dataset: its classes and where its files usually live.
public struct DatasetInfo: Sendable, Equatable {
    /// The name used on the command line, e.g. `fashion-mnist`.
    public let name: String
    /// Human-readable class names, indexed by label.
    public let classNames: [String]
    /// Where the files are looked for when neither `--data-dir` nor `FOVEA_DATA` is given.
    public let defaultDirectory: String
    /// Image channels, height and width as stored.
    public let channels: Int, height: Int, width: Int

    /// The number of classes.
    public var classCount: Int { classNames.count }

    /// An ImageNet-style folder with its class names and RGB images brought to size×size.
    public static func imageFolder(classNames: [String], size: Int) -> DatasetInfo {
        DatasetInfo(name: "imagefolder", classNames: classNames, defaultDirectory: "", channels: 3, height: size, width: size)
    }

    /// The same dataset with the class names a release file provides.
    public func renamingClasses(_ names: [String]) -> DatasetInfo {
        DatasetInfo(name: name, classNames: names, defaultDirectory: defaultDirectory, channels: channels, height: height,
                    width: width)
    }

    /// The environment variable that overrides default dataset directories.
    public static let environmentVariable = "FOVEA_DATA"

    /// Handwritten digits — LeCun et al. 1998, "Gradient-based learning applied to document recognition".
    public static let mnist = DatasetInfo(
        name: "mnist", classNames: (0..<10).map(String.init),
        defaultDirectory: "/usr/share/datasets/mnist", channels: 1, height: 28, width: 28)

    /// Zalando article images — Xiao et al. 2017, arXiv:1708.07747.
    public static let fashionMNIST = DatasetInfo(
        name: "fashion-mnist",
        classNames: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        defaultDirectory: "/usr/share/datasets/fashion-mnist", channels: 1, height: 28, width: 28)

    /// CIFAR-10, binary release — Krizhevsky 2009, "Learning multiple layers of features from tiny images".
    public static let cifar10 = DatasetInfo(
        name: "cifar10",
        classNames: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        defaultDirectory: "/usr/share/datasets/cifar10", channels: 3, height: 32, width: 32)

    /// CIFAR-100 (fine labels), binary release — Krizhevsky 2009. Class names come from the release's file.
    public static let cifar100 = DatasetInfo(
        name: "cifar100", classNames: (0..<100).map { "class \($0)" },
        defaultDirectory: "/usr/share/datasets/cifar100", channels: 3, height: 32, width: 32)

    /// Every dataset in this table, in the order `fovea datasets` lists them.
    public static let known: [DatasetInfo] = [.mnist, .fashionMNIST, .cifar10, .cifar100]

    /// The dataset called `name` (case-insensitive).
    /// - Throws: `DatasetError.unknownDataset` listing the known names.
    public static func named(_ name: String) throws -> DatasetInfo {
        if name.lowercased() == "imagefolder" { return imageFolder(classNames: [], size: 224) }
        guard let info = known.first(where: { $0.name == name.lowercased() }) else {
            throw DatasetError.unknownDataset(name: name, known: known.map(\.name) + ["imagefolder"])
        }
        return info
    }

    /// The directory to load from: `dataDirectory` if given; else `FOVEA_DATA`, descending into
    /// its subfolder named after the dataset when there is one; else `defaultDirectory`.
    public func resolveDirectory(
        dataDirectory: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        if let dataDirectory, !dataDirectory.isEmpty { return dataDirectory }
        guard let root = environment[Self.environmentVariable], !root.isEmpty else { return defaultDirectory }
        let nested = joinPath(root, name)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory), isDirectory.boolValue {
            return nested
        }
        return root
    }
}
