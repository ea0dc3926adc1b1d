/// Counts of (true class, predicted class) pairs; precision, recall and F1 all derive from it.
///
/// Definitions follow scikit-learn's `precision_recall_fscore_support` with
/// `labels=range(classCount)` and `zero_division=0`: a ratio whose denominator is zero is 0,
/// and every class counts in the macro average, even one absent from both truth and predictions.
public struct ConfusionMatrix: Equatable, Sendable {
    /// The number of classes; labels and predictions are in `0..<classCount`.
    public let classCount: Int
    /// `classCount × classCount` counts, row-major; row = true class, column = predicted class.
    public private(set) var counts: [Int]

    /// Precision, recall and F1 of one class or of an average over classes.
    public struct Scores: Codable, Equatable, Sendable {
        /// Of the samples predicted as the class, the fraction that belong to it.
        public var precision: Double
        /// Of the samples that belong to the class, the fraction predicted as it.
        public var recall: Double
        /// The harmonic mean of precision and recall.
        public var f1: Double

        /// Creates a set of scores.
        public init(precision: Double, recall: Double, f1: Double) {
            self.precision = precision
            self.recall = recall
            self.f1 = f1
        }
    }

    /// An empty matrix for `classCount` classes (a negative count is treated as zero).
    public init(classCount: Int) {
        self.classCount = max(classCount, 0)
        counts = [Int](repeating: 0, count: self.classCount * self.classCount)
    }

    /// The number of samples of class `actual` predicted as `predicted`.
    public subscript(actual: Int, predicted: Int) -> Int { counts[actual * classCount + predicted] }

    /// Records one prediction.
    /// - Precondition: both classes are in `0..<classCount`; labels are validated when datasets load.
    public mutating func add(actual: Int, predicted: Int, count: Int = 1) {
        precondition((0..<classCount).contains(actual) && (0..<classCount).contains(predicted),
                     "class (\(actual), \(predicted)) outside 0..<\(classCount)")
        counts[actual * classCount + predicted] += count
    }

    /// Adds the counts of `other`, e.g. from another evaluation thread.
    /// - Precondition: both matrices have the same class count.
    public mutating func merge(_ other: ConfusionMatrix) {
        precondition(other.classCount == classCount, "merging matrices of \(other.classCount) and \(classCount) classes")
        for index in counts.indices { counts[index] += other.counts[index] }
    }

    /// The matrix as rows (true classes) of columns (predicted classes).
    public var rows: [[Int]] {
        (0..<classCount).map { row in Array(counts[row * classCount..<(row + 1) * classCount]) }
    }

    /// The number of samples recorded.
    public var total: Int { counts.reduce(0, +) }

    /// The number of samples on the diagonal (predicted correctly).
    public var correct: Int { (0..<classCount).reduce(0) { $0 + self[$1, $1] } }

    /// The fraction predicted correctly; 0 when empty.
    public var accuracy: Double { ratio(correct, total) }

    /// The number of samples whose true class is `classIndex` (the row sum).
    public func support(forClass classIndex: Int) -> Int {
        (0..<classCount).reduce(0) { $0 + self[classIndex, $1] }
    }

    /// The number of samples predicted as `classIndex` (the column sum).
    public func predictions(forClass classIndex: Int) -> Int {
        (0..<classCount).reduce(0) { $0 + self[$1, classIndex] }
    }

    /// Precision, recall and F1 of one class; F1 = 2·TP / (support + predictions), as scikit-learn.
    public func scores(forClass classIndex: Int) -> Scores {
        let hits = self[classIndex, classIndex]
        let support = support(forClass: classIndex)
        let predictions = predictions(forClass: classIndex)
        return Scores(precision: ratio(hits, predictions), recall: ratio(hits, support),
                      f1: ratio(2 * hits, support + predictions))
    }

    /// The unweighted mean of every class's scores.
    public var macroAverage: Scores {
        average { _ in 1 }
    }

    /// The mean of the classes' scores weighted by their support; 0 when nothing was recorded.
    public var weightedAverage: Scores {
        average { Double(support(forClass: $0)) }
    }

    /// The `limit` largest off-diagonal counts, largest first (ties by true, then predicted class).
    public func mostFrequentConfusions(limit: Int) -> [(actual: Int, predicted: Int, count: Int)] {
        var confusions: [(actual: Int, predicted: Int, count: Int)] = []
        for actual in 0..<classCount {
            for predicted in 0..<classCount where predicted != actual && self[actual, predicted] > 0 {
                confusions.append((actual, predicted, self[actual, predicted]))
            }
        }
        confusions.sort { ($1.count, $0.actual, $0.predicted) < ($0.count, $1.actual, $1.predicted) }
        return Array(confusions.prefix(max(limit, 0)))
    }

    /// The weighted mean of per-class scores, 0 when the weights sum to 0.
    private func average(weight: (Int) -> Double) -> Scores {
        var sum = Scores(precision: 0, recall: 0, f1: 0)
        var totalWeight = 0.0
        for classIndex in 0..<classCount {
            let scores = scores(forClass: classIndex)
            let classWeight = weight(classIndex)
            sum.precision += classWeight * scores.precision
            sum.recall += classWeight * scores.recall
            sum.f1 += classWeight * scores.f1
            totalWeight += classWeight
        }
        guard totalWeight > 0 else { return sum }
        return Scores(precision: sum.precision / totalWeight, recall: sum.recall / totalWeight, f1: sum.f1 / totalWeight)
    }
}

/// The fraction of samples whose true class is among the `k` highest-scoring classes.
///
/// Ties are resolved in the label's favour: a sample counts as correct when strictly fewer than
/// `k` classes score *higher* than its true class. So with k = 1 a three-way tie for first
/// place is correct for any of the three. A NaN score for the true class is never correct;
/// NaN scores of other classes never outrank it.
public struct TopKAccuracy: Equatable, Sendable {
    /// How many top classes a prediction may name.
    public let k: Int
    /// Samples counted as correct.
    public private(set) var correct = 0
    /// Samples seen.
    public private(set) var total = 0

    /// A counter for top-`k` accuracy.
    public init(k: Int) { self.k = k }

    /// A counter holding `correct` of `total` (counts summed over data-parallel ranks).
    init(k: Int, correct: Int, total: Int) { (self.k, self.correct, self.total) = (k, correct, total) }

    /// Records one sample from its row of scores (logits or probabilities).
    /// - Precondition: `label` indexes `scores`.
    public mutating func add(scores: UnsafeBufferPointer<Float>, label: Int) {
        precondition(scores.indices.contains(label), "label \(label) outside 0..<\(scores.count)")
        total += 1
        let target = scores[label]
        guard !target.isNaN else { return }
        var higher = 0
        for score in scores where score > target { higher += 1 }
        if higher < k { correct += 1 }
    }

    /// Records one sample from an array of scores.
    public mutating func add(scores: [Float], label: Int) {
        scores.withUnsafeBufferPointer { add(scores: $0, label: label) }
    }

    /// Adds the counts of `other` (which should have the same `k`).
    public mutating func merge(_ other: TopKAccuracy) {
        correct += other.correct
        total += other.total
    }

    /// The fraction counted as correct; 0 when empty.
    public var accuracy: Double { ratio(correct, total) }
}

/// A weighted running mean, e.g. of per-batch losses weighted by batch size.
public struct RunningMean: Codable, Equatable, Sendable {
    /// The weighted sum of the values added.
    public private(set) var sum = 0.0
    /// The sum of the weights.
    public private(set) var weight = 0.0

    /// An empty mean.
    public init() {}

    /// Adds `value` with `weight` (e.g. the batch size for a batch-mean loss).
    public mutating func add(_ value: Double, weight: Double = 1) {
        sum += value * weight
        self.weight += weight
    }

    /// The mean so far; 0 before anything was added.
    public var mean: Double { weight == 0 ? 0 : sum / weight }
}

/// `numerator / denominator`, or 0 when the denominator is 0 (scikit-learn's `zero_division=0`).
private func ratio(_ numerator: Int, _ denominator: Int) -> Double {
    denominator == 0 ? 0 : Double(numerator) / Double(denominator)
}
