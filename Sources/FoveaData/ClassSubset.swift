import Foundation

/// Which classes of a dataset to keep and how many samples of each: the subsets few-shot and transfer work trains on.
/// Kept classes are relabelled 0…k−1 in the order given, so a model trained on them has k outputs.
public struct ClassSelection: Equatable, Sendable {
    /// The original labels kept, in their new order (new label = position here).
    public let labels: [Int]
    /// Their names, in the same order.
    public let names: [String]

    /// Resolves `--classes` tokens against a dataset's class names: each token is an index (`5`) or a name (`Sandal`,
    /// compared exactly, then ignoring case). A token that is neither, or a class named twice, is
    /// `ClassSelectionError`, naming it and the classes there are.
    public init(_ tokens: [String], classNames: [String]) throws(ClassSelectionError) {
        guard !tokens.isEmpty else { throw .empty }
        var labels: [Int] = []
        for raw in tokens {
            let token = raw.trimmingCharacters(in: .whitespaces)
            guard let label = Self.index(of: token, in: classNames) else { throw .unknownClass(token: token, classNames: classNames) }
            guard !labels.contains(label) else { throw .repeated(name: classNames[label]) }
            labels.append(label)
        }
        self.labels = labels
        names = labels.map { classNames[$0] }
    }

    /// The class a token names: an exact class name, else an index in range, else a name ignoring case; nil if none.
    /// The rule of `--classes`, `fovea predict --explain-class` and `fovea serve`'s `?class=`.
    public static func index(of token: String, in classNames: [String]) -> Int? {
        if let index = classNames.firstIndex(of: token) { return index }
        if let index = Int(token), classNames.indices.contains(index) { return index }
        return classNames.firstIndex { $0.lowercased() == token.lowercased() }
    }

    /// The new label of each original label (−1 for classes left out).
    public var relabelling: [Int32] {
        var table = [Int32](repeating: -1, count: (labels.max() ?? -1) + 1)
        for (new, old) in labels.enumerated() { table[old] = Int32(new) }
        return table
    }
}

/// Why `--classes` or `--limit-per-class` cannot be honoured.
public enum ClassSelectionError: Error, CustomStringConvertible, Equatable, Sendable {
    case empty
    case unknownClass(token: String, classNames: [String])
    case repeated(name: String)
    case badLimit(Int)

    public var description: String {
        switch self {
        case .empty: return "--classes names no class"
        case let .unknownClass(token, names):
            let listed = names.prefix(30).enumerated().map { "\($0.offset) \($0.element)" }.joined(separator: ", ")
            return "--classes: '\(token)' is neither a class name nor a class index of this dataset (\(names.count) classes: "
                + listed + (names.count > 30 ? ", …" : "") + ")"
        case let .repeated(name): return "--classes names class '\(name)' twice"
        case let .badLimit(limit): return "--limit-per-class must be at least 1 (got \(limit))"
        }
    }
}

/// The sample indices of a labelled set to keep: samples of the selected classes (all classes without a selection)
/// and, with `limitPerClass`, only the first N of each class in an order shuffled under `seed` — the same N for the
/// same seed, whatever else the run does. Returned in dataset order, with each sample's new label.
public func selectSamples(labels: [Int32], selection: ClassSelection?, limitPerClass: Int?,
                          seed: UInt64) throws(ClassSelectionError) -> [(index: Int, label: Int32)] {
    if let limitPerClass, limitPerClass < 1 { throw .badLimit(limitPerClass) }
    let table = selection?.relabelling
    func newLabel(_ label: Int32) -> Int32? {
        guard let table else { return label }
        let old = Int(label)
        return table.indices.contains(old) && table[old] >= 0 ? table[old] : nil
    }
    guard let limitPerClass else {
        return labels.indices.compactMap { index in newLabel(labels[index]).map { (index, $0) } }
    }
    // A stream of its own (the epoch orders use streams 1, 2, …), so the kept samples do not depend on the epochs.
    let order = epochOrder(count: labels.count, epoch: -1, seed: seed, shuffle: true)
    var taken: [Int32: Int] = [:]
    var kept: [Int] = []
    for index in order {
        guard let label = newLabel(labels[index]), taken[label, default: 0] < limitPerClass else { continue }
        taken[label, default: 0] += 1
        kept.append(index)
    }
    return kept.sorted().map { ($0, newLabel(labels[$0])!) }
}

/// In-memory images restricted to some samples, relabelled: what `--classes` and `--limit-per-class` leave of an IDX or
/// CIFAR set. The kept bytes are copied once.
public struct LabeledImageSubset: LabeledImages {
    public let count: Int
    public let channels: Int, height: Int, width: Int
    public let classCount: Int
    public let pixels: [UInt8]
    public let labels: [Int32]
    /// The index of each kept sample in the original set.
    public let sourceIndices: [Int]

    /// Keeps `samples` (indices into `images` with their new labels) of a set with `classCount` classes after selection.
    public init(_ images: any LabeledImages, samples: [(index: Int, label: Int32)], classCount: Int) {
        let size = images.sampleSize
        var pixels = [UInt8]()
        pixels.reserveCapacity(samples.count * size)
        images.pixels.withUnsafeBufferPointer { source in
            for sample in samples { pixels.append(contentsOf: source[(sample.index * size)..<((sample.index + 1) * size)]) }
        }
        (count, channels, height, width) = (samples.count, images.channels, images.height, images.width)
        self.classCount = classCount
        self.pixels = pixels
        labels = samples.map(\.label)
        sourceIndices = samples.map(\.index)
    }
}

extension ImageFolder {
    /// The folder restricted to `samples` (indices into `samples` with new labels) and the kept `classNames`.
    public func subset(_ samples: [(index: Int, label: Int32)], classNames: [String]) -> ImageFolder {
        ImageFolder(root: root, classNames: classNames, samples: samples.map { (self.samples[$0.index].path, $0.label) })
    }
}
