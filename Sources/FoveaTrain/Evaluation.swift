import FoveaNN
import FoveaTensor

/// Runs `model` in evaluation mode without recording over all of `data`, and builds the full report
/// (accuracy, top-5, loss, per-class precision/recall/F1, confusion matrix). Restores training mode after.
public func evaluate(model: Layer, on data: ImageClassificationSet, batchSize: Int, split: String) throws -> ClassificationReport {
    model.eval()
    defer { model.train() }
    let classCount = data.info.classCount
    var confusion = ConfusionMatrix(classCount: classCount)
    var top5 = TopKAccuracy(k: min(5, classCount))
    var lossSum = 0.0
    let indices = Array(0..<data.dataset.count)
    try Autodiff.withoutRecording {
        for start in stride(from: 0, to: indices.count, by: batchSize) {
            let slice = indices[start..<min(start + batchSize, indices.count)]
            let (images, labels) = data.batch(slice)
            let logits = try model(images)
            guard logits.shape == [slice.count, classCount] else {
                throw TensorError.shapeMismatch(operation: "evaluate", expected: "logits (\(slice.count), \(classCount))",
                                                actual: logits.shape)
            }
            lossSum += Double(try crossEntropy(logits: logits, labels: labels).scalarValue) * Double(slice.count)
            try logits.withPlainElements { values in
                for (row, label) in labels.enumerated() {
                    let scores = UnsafeBufferPointer(rebasing: values[(row * classCount)..<((row + 1) * classCount)])
                    var best = 0
                    for j in 1..<classCount where scores[j] > scores[best] { best = j }
                    confusion.add(actual: Int(label), predicted: best)
                    top5.add(scores: scores, label: Int(label))
                }
            }
        }
    }
    return ClassificationReport(dataset: data.info.name, split: split, loss: lossSum / Double(max(indices.count, 1)),
                                confusion: confusion, top5: top5, classNames: data.info.classNames)
}
