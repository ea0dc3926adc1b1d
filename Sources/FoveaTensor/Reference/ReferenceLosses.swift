import Foundation

extension Reference {
    /// Softmax along dim 1 of a matrix, as `F.softmax(x, dim: 1)`; the row maximum is subtracted first.
    // input (N,K) → output (N,K), rows summing to 1
    public static func softmax(_ x: ReferenceArray) -> ReferenceArray {
        let (rows, columns) = x.rowsAndColumns
        var output = x
        for n in 0..<rows {
            let row = Array(x.values[(n * columns)..<((n + 1) * columns)])
            let maximum = row.max() ?? 0
            var sum = 0.0
            for value in row {
                sum += exp(value - maximum)
            }
            for k in 0..<columns {
                output.values[n * columns + k] = exp(row[k] - maximum) / sum
            }
        }
        return output
    }

    /// Log-softmax along dim 1 of a matrix, as `F.log_softmax(x, dim: 1)`.
    ///
    /// Computed as `x − max − log Σ exp(x − max)`, never as `log(softmax)`, so tiny
    /// probabilities keep their precision.
    // input (N,K) → output (N,K)
    public static func logSoftmax(_ x: ReferenceArray) -> ReferenceArray {
        let (rows, columns) = x.rowsAndColumns
        var output = x
        for n in 0..<rows {
            let row = Array(x.values[(n * columns)..<((n + 1) * columns)])
            let maximum = row.max() ?? 0
            var sum = 0.0
            for value in row {
                sum += exp(value - maximum)
            }
            let logSum = log(sum)
            for k in 0..<columns {
                output.values[n * columns + k] = row[k] - maximum - logSum
            }
        }
        return output
    }

    /// Mean cross-entropy over the batch with label smoothing, as `F.cross_entropy(label_smoothing: ε)`.
    ///
    /// Sample i contributes `(1 − ε)·(−log p_{i,yᵢ}) + ε·mean_k(−log p_{i,k})`.
    // logits (N,K), labels (N) in 0..<K → scalar
    public static func crossEntropy(logits: ReferenceArray, labels: [Int], labelSmoothing: Double) -> Double {
        let (rows, columns) = logits.rowsAndColumns
        precondition(labels.count == rows, "\(labels.count) labels for \(rows) rows of logits")
        precondition(rows > 0, "cross-entropy needs at least one sample")
        precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "label smoothing \(labelSmoothing) is outside [0, 1]")
        let logProbabilities = logSoftmax(logits)
        var total = 0.0
        for n in 0..<rows {
            let label = labels[n]
            precondition(label >= 0 && label < columns, "label \(label) of sample \(n) is outside 0..<\(columns)")
            let negativeLogLikelihood = -logProbabilities.values[n * columns + label]
            var sumOfNegativeLogs = 0.0
            for k in 0..<columns {
                sumOfNegativeLogs -= logProbabilities.values[n * columns + k]
            }
            let uniformTerm = sumOfNegativeLogs / Double(columns)
            total += (1 - labelSmoothing) * negativeLogLikelihood + labelSmoothing * uniformTerm
        }
        return total / Double(rows)
    }
}

extension Reference {
    /// Mean cross-entropy against soft targets, as `F.cross_entropy` with class-probability targets.
    ///
    /// Sample i contributes `−Σₖ t_{i,k}·log p_{i,k}`; the targets are used as given (no normalisation).
    // logits (N,K), targets (N,K) → scalar
    public static func crossEntropy(logits: ReferenceArray, targets: ReferenceArray) -> Double {
        let (rows, columns) = logits.rowsAndColumns
        precondition(targets.shape == logits.shape, "targets \(targets.shape) do not match logits \(logits.shape)")
        precondition(rows > 0, "cross-entropy needs at least one sample")
        let logProbabilities = logSoftmax(logits)
        var total = 0.0
        for index in 0..<(rows * columns) {
            total -= targets.values[index] * logProbabilities.values[index]
        }
        return total / Double(rows)
    }
}
