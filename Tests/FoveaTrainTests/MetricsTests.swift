import Foundation
import Testing
@testable import FoveaTrain

/// SplitMix64, so the random cases are the same on every run without depending on FoveaTensor.
private struct TestGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) < 1e-12 }

/// The hand-worked case below:
///
///     true 0 → predicted 0, 0, 1        row 0: [2, 1, 0]
///     true 1 → predicted 1, 1, 1, 0     row 1: [1, 3, 0]
///     true 2 → predicted 1              row 2: [0, 1, 0]
///
/// Column sums (predictions) 3, 5, 0; supports 3, 4, 1; accuracy 5/8.
/// Class 0: P = 2/3, R = 2/3, F1 = 2/3. Class 1: P = 3/5, R = 3/4, F1 = 2·3/(4+5) = 2/3.
/// Class 2: nothing predicted, so P = 0 (zero division), R = 0, F1 = 0.
/// Macro: P = (2/3 + 3/5)/3 = 19/45, R = (2/3 + 3/4)/3 = 17/36, F1 = (4/3)/3 = 4/9.
/// Weighted by 3, 4, 1 of 8: P = (2 + 12/5)/8 = 0.55, R = 5/8, F1 = (2 + 8/3)/8 = 7/12.
private func handMatrix() -> ConfusionMatrix {
    var matrix = ConfusionMatrix(classCount: 3)
    for (actual, predicted) in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 1), (1, 0), (2, 1)] {
        matrix.add(actual: actual, predicted: predicted)
    }
    return matrix
}

@Suite("metrics")
struct MetricsTests {
    @Test("a hand-worked 3-class case")
    func handWorked() {
        let matrix = handMatrix()
        #expect(matrix.rows == [[2, 1, 0], [1, 3, 0], [0, 1, 0]])
        #expect(matrix.total == 8 && matrix.correct == 5 && close(matrix.accuracy, 5.0 / 8))
        let expected: [(Double, Double, Double)] = [(2.0 / 3, 2.0 / 3, 2.0 / 3), (3.0 / 5, 3.0 / 4, 2.0 / 3), (0, 0, 0)]
        for (classIndex, (precision, recall, f1)) in expected.enumerated() {
            let scores = matrix.scores(forClass: classIndex)
            #expect(close(scores.precision, precision) && close(scores.recall, recall) && close(scores.f1, f1))
        }
        #expect(close(matrix.macroAverage.precision, 19.0 / 45) && close(matrix.macroAverage.recall, 17.0 / 36))
        #expect(close(matrix.macroAverage.f1, 4.0 / 9))
        #expect(close(matrix.weightedAverage.precision, 0.55) && close(matrix.weightedAverage.recall, 5.0 / 8))
        #expect(close(matrix.weightedAverage.f1, 7.0 / 12))
        #expect(matrix.mostFrequentConfusions(limit: 2).map { [$0.actual, $0.predicted, $0.count] } == [[0, 1, 1], [1, 0, 1]])
    }

    @Test("random data agrees with a brute-force recomputation from the raw pairs", arguments: [1, 2, 3])
    func randomAgainstBruteForce(seed: UInt64) {
        var generator = TestGenerator(state: seed)
        let classCount = 7  // Truth never uses class 6 and predictions never use class 5.
        let pairs = (0..<500).map { _ in (Int.random(in: 0..<6, using: &generator), [0, 1, 2, 3, 4, 6].randomElement(using: &generator)!) }
        var matrix = ConfusionMatrix(classCount: classCount)
        for (actual, predicted) in pairs { matrix.add(actual: actual, predicted: predicted) }

        var sums = (macro: [0.0, 0.0, 0.0], weighted: [0.0, 0.0, 0.0])
        for c in 0..<classCount {
            let truePositives = pairs.filter { $0.0 == c && $0.1 == c }.count
            let falsePositives = pairs.filter { $0.0 != c && $0.1 == c }.count
            let falseNegatives = pairs.filter { $0.0 == c && $0.1 != c }.count
            let precision = truePositives + falsePositives == 0 ? 0 : Double(truePositives) / Double(truePositives + falsePositives)
            let recall = truePositives + falseNegatives == 0 ? 0 : Double(truePositives) / Double(truePositives + falseNegatives)
            let f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
            let scores = matrix.scores(forClass: c)
            #expect(close(scores.precision, precision) && close(scores.recall, recall) && close(scores.f1, f1), "class \(c)")
            #expect(matrix.support(forClass: c) == truePositives + falseNegatives)
            let support = Double(truePositives + falseNegatives)
            for (slot, value) in [precision, recall, f1].enumerated() {
                sums.macro[slot] += value / Double(classCount)
                sums.weighted[slot] += value * support / Double(pairs.count)
            }
        }
        let macro = matrix.macroAverage, weighted = matrix.weightedAverage
        #expect(close(macro.precision, sums.macro[0]) && close(macro.recall, sums.macro[1]) && close(macro.f1, sums.macro[2]))
        #expect(close(weighted.precision, sums.weighted[0]) && close(weighted.recall, sums.weighted[1]))
        #expect(close(weighted.f1, sums.weighted[2]))
        #expect(close(matrix.accuracy, Double(pairs.filter { $0.0 == $0.1 }.count) / Double(pairs.count)))
        #expect(close(weighted.recall, matrix.accuracy))  // An identity worth keeping true.
    }

    @Test("top-k counts ties in the label's favour and NaN labels as wrong")
    func topKRules() {
        var top1 = TopKAccuracy(k: 1), top2 = TopKAccuracy(k: 2), top3 = TopKAccuracy(k: 3)
        let scores: [Float] = [0.1, 0.5, 0.5, 0.2]
        for label in 0..<4 {
            top1.add(scores: scores, label: label)  // correct for 1, 2 (tied first)
            top2.add(scores: scores, label: label)  // also only 1, 2: class 3 has two higher scores
            top3.add(scores: scores, label: label)  // 1, 2, 3
        }
        #expect(top1.correct == 2 && top2.correct == 2 && top3.correct == 3 && top3.total == 4)
        var nan = TopKAccuracy(k: 4)
        nan.add(scores: [.nan, 1, 2, 3], label: 0)
        nan.add(scores: [.nan, 1, 2, 3], label: 3)
        #expect(nan.correct == 1 && nan.total == 2 && nan.accuracy == 0.5)
    }

    @Test("top-k agrees with sorting on random scores with many ties", arguments: [1, 2, 5])
    func topKAgainstSorting(k: Int) {
        var generator = TestGenerator(state: UInt64(k))
        var metric = TopKAccuracy(k: k)
        var expected = 0
        for _ in 0..<300 {
            let scores = (0..<10).map { _ in Float(Int.random(in: 0..<4, using: &generator)) }
            let label = Int.random(in: 0..<10, using: &generator)
            metric.add(scores: scores, label: label)
            let order = scores.indices.sorted { (-scores[$0], $0 == label ? 0 : 1, $0) < (-scores[$1], $1 == label ? 0 : 1, $1) }
            if order.prefix(k).contains(label) { expected += 1 }
        }
        #expect(metric.correct == expected && metric.total == 300)
    }

    @Test("running mean is weighted and empty means zero")
    func runningMean() {
        var mean = RunningMean()
        #expect(mean.mean == 0)
        mean.add(2, weight: 3)
        mean.add(6)
        #expect(mean.mean == 3 && mean.weight == 4)
    }

    @Test("report JSON has exactly the documented keys and values")
    func reportJSON() throws {
        var top5 = TopKAccuracy(k: 5)
        top5.add(scores: [1, 2, 3], label: 0)
        let report = ClassificationReport(dataset: "toy", split: "test", loss: 0.5, confusion: handMatrix(), top5: top5,
                                          classNames: ["zero", "one/1"])
        let object = try #require(try JSONSerialization.jsonObject(with: report.jsonData()) as? [String: Any])
        #expect(Set(object.keys) == ["dataset", "split", "samples", "accuracy", "top5_accuracy", "loss", "classes",
                                     "per_class", "macro", "weighted", "confusion_matrix"])
        #expect(object["samples"] as? Int == 8 && object["classes"] as? [String] == ["zero", "one/1", "2"])
        #expect(object["confusion_matrix"] as? [[Int]] == [[2, 1, 0], [1, 3, 0], [0, 1, 0]])
        let perClass = try #require(object["per_class"] as? [[String: Any]])
        #expect(perClass.count == 3 && Set(perClass[1].keys) == ["class", "precision", "recall", "f1", "support"])
        #expect(perClass[1]["class"] as? String == "one/1" && perClass[1]["support"] as? Int == 4)
        #expect(Set((object["macro"] as? [String: Any] ?? [:]).keys) == ["precision", "recall", "f1"])
        #expect(try String(decoding: report.jsonData(), as: UTF8.self).contains("\"one/1\""))
        #expect(try JSONDecoder().decode(ClassificationReport.self, from: report.jsonData()) == report)

        let undefined = ClassificationReport(dataset: "toy", split: "test", loss: .nan, confusion: handMatrix(), top5: nil,
                                             classNames: [])
        let nulls = try #require(try JSONSerialization.jsonObject(with: undefined.jsonData()) as? [String: Any])
        #expect(nulls["loss"] is NSNull && nulls["top5_accuracy"] is NSNull)
    }

    @Test("text summary shows the table, the averages and the most frequent confusions")
    func textSummary() {
        var matrix = handMatrix()
        matrix.add(actual: 2, predicted: 1, count: 4)
        let report = ClassificationReport(dataset: "toy", split: "test", loss: 0.25, confusion: matrix, top5: nil,
                                          classNames: ["zero", "one", "two"])
        let text = report.textSummary()
        #expect(text.contains("toy test: 12 samples"))
        #expect(text.contains("one              0.3333  0.7500  0.4615        4"))
        #expect(text.contains("macro avg") && text.contains("weighted avg") && text.contains("accuracy 41.67 %"))
        #expect(text.contains("loss 0.2500") && !text.contains("top-5"))
        let confusions = text.components(separatedBy: "(true → predicted):\n").last ?? ""
        #expect(confusions == "  two → one: 5\n  zero → one: 1\n  one → zero: 1")
    }
}
