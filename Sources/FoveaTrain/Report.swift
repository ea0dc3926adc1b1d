import Foundation

/// The evaluation of a classifier on one split: the `report.json` of DESIGN §7.
///
/// JSON keys: `dataset`, `split`, `samples`, `accuracy`, `top5_accuracy`, `loss`, `classes`,
/// `per_class` (`class`, `precision`, `recall`, `f1`, `support`), `macro` and `weighted`
/// (`precision`, `recall`, `f1`) and `confusion_matrix` (rows = true class). A missing or
/// non-finite loss or top-5 accuracy is written as `null`, since JSON has no NaN.
public struct ClassificationReport: Codable, Equatable, Sendable {
    /// Scores of one class.
    public struct ClassScores: Codable, Equatable, Sendable {
        /// The class name.
        public var className: String
        /// Of the samples predicted as this class, the fraction that belong to it.
        public var precision: Double
        /// Of the samples of this class, the fraction predicted as it.
        public var recall: Double
        /// The harmonic mean of precision and recall.
        public var f1: Double
        /// The number of samples of this class.
        public var support: Int

        enum CodingKeys: String, CodingKey {
            case className = "class", precision, recall, f1, support
        }
    }

    /// The dataset name, e.g. `fashion-mnist`.
    public var dataset: String
    /// The split evaluated, e.g. `test`.
    public var split: String
    /// The number of samples evaluated.
    public var samples: Int
    /// The fraction predicted correctly.
    public var accuracy: Double
    /// The fraction whose true class is among the five highest scores, if measured.
    public var top5Accuracy: Double?
    /// The mean loss per sample, if measured.
    public var loss: Double?
    /// Class names, indexed by label.
    public var classes: [String]
    /// Precision, recall, F1 and support of each class, in label order.
    public var perClass: [ClassScores]
    /// The unweighted mean over classes.
    public var macro: ConfusionMatrix.Scores
    /// The mean over classes weighted by support.
    public var weighted: ConfusionMatrix.Scores
    /// Counts with rows = true class and columns = predicted class.
    public var confusionMatrix: [[Int]]

    enum CodingKeys: String, CodingKey {
        case dataset, split, samples, accuracy, loss, classes, macro, weighted
        case top5Accuracy = "top5_accuracy", perClass = "per_class", confusionMatrix = "confusion_matrix"
    }

    /// Computes the report from a filled confusion matrix.
    ///
    /// `classNames` label the classes; missing names become the class index, extra names are dropped.
    public init(
        dataset: String, split: String, loss: Double?, confusion: ConfusionMatrix, top5: TopKAccuracy?,
        classNames: [String]
    ) {
        let names = (0..<confusion.classCount).map { $0 < classNames.count ? classNames[$0] : String($0) }
        self.dataset = dataset
        self.split = split
        self.samples = confusion.total
        self.accuracy = confusion.accuracy
        self.top5Accuracy = top5?.accuracy
        self.loss = loss
        self.classes = names
        self.perClass = names.indices.map { classIndex in
            let scores = confusion.scores(forClass: classIndex)
            return ClassScores(className: names[classIndex], precision: scores.precision, recall: scores.recall,
                               f1: scores.f1, support: confusion.support(forClass: classIndex))
        }
        self.macro = confusion.macroAverage
        self.weighted = confusion.weightedAverage
        self.confusionMatrix = confusion.rows
    }

    /// Encodes every key, writing `null` for an absent or non-finite loss or top-5 accuracy.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(dataset, forKey: .dataset)
        try container.encode(split, forKey: .split)
        try container.encode(samples, forKey: .samples)
        try container.encode(accuracy, forKey: .accuracy)
        try container.encode(top5Accuracy.flatMap { $0.isFinite ? $0 : nil }, forKey: .top5Accuracy)
        try container.encode(loss.flatMap { $0.isFinite ? $0 : nil }, forKey: .loss)
        try container.encode(classes, forKey: .classes)
        try container.encode(perClass, forKey: .perClass)
        try container.encode(macro, forKey: .macro)
        try container.encode(weighted, forKey: .weighted)
        try container.encode(confusionMatrix, forKey: .confusionMatrix)
    }

    /// The report as pretty-printed JSON with sorted keys (slashes in class names unescaped).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The `limit` most frequent misclassifications as (true class, predicted class, count).
    public func mostFrequentConfusions(limit: Int = 5) -> [(actual: String, predicted: String, count: Int)] {
        var matrix = ConfusionMatrix(classCount: classes.count)
        for (actual, row) in confusionMatrix.prefix(classes.count).enumerated() {
            for (predicted, count) in row.prefix(classes.count).enumerated() where count > 0 {
                matrix.add(actual: actual, predicted: predicted, count: count)
            }
        }
        return matrix.mostFrequentConfusions(limit: limit).map { (classes[$0.actual], classes[$0.predicted], $0.count) }
    }

    /// A readable table: per-class precision, recall, F1 and support, the averages, accuracy,
    /// top-5 accuracy, loss, and the five most frequent confusions.
    public func textSummary() -> String {
        let nameWidth = max(classes.map(\.count).max() ?? 0, "weighted avg".count)
        let supportWidth = max(String(samples).count, "support".count)
        func row(_ name: String, _ precision: String, _ recall: String, _ f1: String, _ support: String) -> String {
            pad(name, nameWidth, left: true) + "  " + pad(precision, 9) + "  " + pad(recall, 6) + "  "
                + pad(f1, 6) + "  " + pad(support, supportWidth)
        }
        func fixed(_ value: Double) -> String { String(format: "%.4f", value) }

        var lines = ["\(dataset) \(split): \(samples) samples", ""]
        lines.append(row("class", "precision", "recall", "f1", "support"))
        for scores in perClass {
            lines.append(row(scores.className, fixed(scores.precision), fixed(scores.recall), fixed(scores.f1),
                             String(scores.support)))
        }
        lines.append("")
        lines.append(row("macro avg", fixed(macro.precision), fixed(macro.recall), fixed(macro.f1), String(samples)))
        lines.append(row("weighted avg", fixed(weighted.precision), fixed(weighted.recall), fixed(weighted.f1),
                         String(samples)))
        lines.append("")
        var totals = "accuracy \(String(format: "%.2f", accuracy * 100)) %"
        if let top5Accuracy, top5Accuracy.isFinite { totals += "   top-5 \(String(format: "%.2f", top5Accuracy * 100)) %" }
        if let loss, loss.isFinite { totals += "   loss \(fixed(loss))" }
        lines.append(totals)

        let confusions = mostFrequentConfusions(limit: 5)
        if !confusions.isEmpty {
            lines.append("")
            lines.append("most frequent confusions (true → predicted):")
            for confusion in confusions {
                lines.append("  \(confusion.actual) → \(confusion.predicted): \(confusion.count)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `text` padded with spaces to `width` characters, on the right when `left` (left-aligned).
private func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + padding : padding + text
}
