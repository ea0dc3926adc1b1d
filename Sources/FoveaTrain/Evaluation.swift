import Foundation
import FoveaData
import FoveaDistributed
import FoveaNN
import FoveaTensor

/// Runs `model` in evaluation mode without recording over all of `data`, and builds the full report
/// (accuracy, top-5, loss, per-class precision/recall/F1, confusion matrix). Restores training mode after.
/// One misclassified sample: which, what it is, what the model said and how sure it was.
public struct Mistake: Equatable, Sendable {
    public var index: Int
    public var actual: Int
    public var predicted: Int
    /// Softmax probability of the predicted class.
    public var confidence: Double
    /// −log p(actual): how wrong the model was.
    public var loss: Double
}

/// Keeps the `limit` misclassified samples with the highest loss.
public final class MistakeCollector {
    public let limit: Int
    public private(set) var mistakes: [Mistake] = []
    /// Creates a collector for the `limit` hardest mistakes.
    public init(limit: Int) { self.limit = limit }

    func consider(_ mistake: Mistake) {
        guard limit > 0 else { return }
        if mistakes.count < limit {
            mistakes.append(mistake)
        } else if let weakest = mistakes.indices.min(by: { mistakes[$0].loss < mistakes[$1].loss }),
                  mistakes[weakest].loss < mistake.loss {
            mistakes[weakest] = mistake
        } else { return }
        mistakes.sort { $0.loss > $1.loss }
    }
}

/// Collects the samples an evaluation left out because they could not be loaded.
public final class SkippedSampleCollector {
    /// The samples left out, in the order their batches were reached.
    public private(set) var samples: [SkippedSample] = []
    /// Creates an empty collector.
    public init() {}

    func add(_ skipped: [SkippedSample]) { samples += skipped }

    /// Forgets what was collected (before the next evaluation).
    public func reset() { samples = [] }
}

/// Runs `model` in evaluation mode without recording over all of `data` and builds the full report; with `skipped`,
/// samples that cannot be loaded are left out (and collected there) instead of stopping with their error.
///
/// With a `communicator` (data-parallel training) each rank evaluates a contiguous shard of `data` and the counts are
/// summed over the ranks — confusion matrix, top-5, loss, skipped samples, the hardest mistakes — so every rank gets the
/// report of the whole set, the same as one process's (every rank must call it, with the same model).
public func evaluate(model: Layer, on data: ImageClassificationSet, batchSize: Int, split: String,
                     mistakes: MistakeCollector? = nil, workers: Int = 0,
                     skipped: SkippedSampleCollector? = nil, communicator: Communicator? = nil) throws -> ClassificationReport {
    model.eval()
    defer { model.train() }
    let classCount = data.info.classCount
    var confusion = ConfusionMatrix(classCount: classCount)
    var top5 = TopKAccuracy(k: min(5, classCount))
    var lossSum = 0.0
    var evaluated = 0
    let shard = communicator.map { evaluationShard(count: data.count, rank: $0.rank, size: $0.size) } ?? 0..<data.count
    let localMistakes = communicator == nil ? mistakes : mistakes.map { MistakeCollector(limit: $0.limit) }
    let stream = data.loader(batchSize: batchSize, workers: workers, train: false, skipBadSamples: skipped != nil)
        .batches(order: Array(shard), epoch: 0)
    defer { stream.stop() }
    try Autodiff.withoutRecording {
        while let batch = try stream.nextBatch() {
            let (images, labels, slice) = (batch.images, batch.labels, batch.indices)
            evaluated += labels.count
            let logits = try model(images)
            guard logits.shape == [slice.count, classCount] else {
                throw TensorError.shapeMismatch(operation: "evaluate", expected: "logits (\(slice.count), \(classCount))",
                                                actual: logits.shape)
            }
            lossSum += Double(try crossEntropy(logits: logits, labels: labels).scalarValue) * Double(slice.count)
            try logits.withPlainElements { values in
                if let index = values.firstIndex(where: { !$0.isFinite }) {
                    let sample = slice[slice.startIndex + index / classCount]
                    throw TrainingError.nonFiniteOutput(input: "\(split) sample \(sample)", value: values[index])
                }
                for (row, label) in labels.enumerated() {
                    let scores = UnsafeBufferPointer(rebasing: values[(row * classCount)..<((row + 1) * classCount)])
                    var best = 0
                    for j in 1..<classCount where scores[j] > scores[best] { best = j }
                    confusion.add(actual: Int(label), predicted: best)
                    if let mistakes = localMistakes, best != Int(label) {
                        var total = 0.0
                        for j in 0..<classCount { total += exp(Double(scores[j] - scores[best])) }
                        let probability = { (j: Int) in exp(Double(scores[j] - scores[best])) / total }
                        mistakes.consider(Mistake(index: slice[slice.startIndex + row], actual: Int(label), predicted: best,
                                                  confidence: probability(best), loss: -log(max(probability(Int(label)), 1e-300))))
                    }
                    top5.add(scores: scores, label: Int(label))
                }
            }
        }
    }
    var skippedCount = stream.skipped.count
    skipped?.add(stream.skipped)
    if let communicator {
        // Sums of the shards' counts; the hardest mistakes of every shard, of which the whole set's are the hardest.
        let counts = try communicator.allreduce(confusion.counts.map(Int64.init) + [Int64(top5.correct), Int64(top5.total),
                                                                                     Int64(evaluated), Int64(skippedCount)])
        let n = classCount * classCount
        var summed = ConfusionMatrix(classCount: classCount)
        for actual in 0..<classCount {
            for predicted in 0..<classCount where counts[actual * classCount + predicted] > 0 {
                summed.add(actual: actual, predicted: predicted, count: Int(counts[actual * classCount + predicted]))
            }
        }
        confusion = summed
        top5 = TopKAccuracy(k: top5.k, correct: Int(counts[n]), total: Int(counts[n + 1]))
        (evaluated, skippedCount) = (Int(counts[n + 2]), Int(counts[n + 3]))
        lossSum = try communicator.allreduce([lossSum])[0]
        if let mistakes, let localMistakes {
            for mistake in try gatherMistakes(localMistakes.mistakes, limit: mistakes.limit, communicator: communicator) {
                mistakes.consider(mistake)
            }
        }
    }
    guard evaluated > 0 else {
        let left = skippedCount
        throw TrainingError.noSamples("the \(split) split of \(data.info.name) has no sample to evaluate"
                                      + (left > 0 ? " (all \(left) were skipped as unreadable)" : "") + "; no accuracy can be given")
    }
    return ClassificationReport(dataset: data.info.name, split: split, loss: lossSum / Double(max(evaluated, 1)),
                                confusion: confusion, top5: top5, classNames: data.info.classNames)
}

/// The contiguous part of `count` samples that rank `rank` of `size` evaluates (the first `count % size` ranks take one
/// more).
public func evaluationShard(count: Int, rank: Int, size: Int) -> Range<Int> {
    let (quotient, remainder) = count.quotientAndRemainder(dividingBy: max(size, 1))
    let start = rank * quotient + min(rank, remainder)
    return start..<(start + quotient + (rank < remainder ? 1 : 0))
}

/// Every rank's mistakes (at most `limit` each), as five numbers per mistake padded to `limit`, gathered on all ranks.
func gatherMistakes(_ mistakes: [Mistake], limit: Int, communicator: Communicator) throws -> [Mistake] {
    var values = [Double](repeating: -1, count: limit * 5)
    for (i, mistake) in mistakes.prefix(limit).enumerated() {
        values.replaceSubrange((i * 5)..<(i * 5 + 5), with: [Double(mistake.index), Double(mistake.actual),
                                                              Double(mistake.predicted), mistake.confidence, mistake.loss])
    }
    let bytes = values.withUnsafeBytes { Array($0) }
    return try communicator.allgather(bytes: bytes).flatMap { rankBytes -> [Mistake] in
        let numbers = rankBytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        return (0..<limit).compactMap { i in
            numbers[i * 5] < 0 ? nil : Mistake(index: Int(numbers[i * 5]), actual: Int(numbers[i * 5 + 1]),
                                                predicted: Int(numbers[i * 5 + 2]), confidence: numbers[i * 5 + 3],
                                                loss: numbers[i * 5 + 4])
        }
    }
}
