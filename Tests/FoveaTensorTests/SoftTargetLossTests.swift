import FoveaTensor
import Testing

/// Rows of non-negative weights; `normalised` makes each row a probability distribution.
func randomTargets(rows: Int, classes: Int, _ generator: inout SeededGenerator, normalised: Bool = true) -> ReferenceArray {
    var values = (0..<(rows * classes)).map { _ in generator.nextDouble() * generator.nextDouble() }
    if normalised {
        for row in 0..<rows {
            let sum = values[(row * classes)..<((row + 1) * classes)].reduce(0, +)
            for k in 0..<classes { values[row * classes + k] /= sum }
        }
    }
    return ReferenceArray(shape: [rows, classes], values: values)
}

/// One-hot rows of `labels`, smoothed as (1 − ε)·onehot + ε/K.
func smoothedOneHot(_ labels: [Int32], classes: Int, smoothing: Double) -> [Float] {
    labels.flatMap { label in
        (0..<classes).map { Float((Int(label) == $0 ? 1 - smoothing : 0) + smoothing / Double(classes)) }
    }
}

/// The loss and the gradient reaching the logits for one loss function.
func lossAndGradient(_ logits: [Float], shape: [Int], _ loss: (Tensor) throws -> Tensor) throws -> (Float, [Float]) {
    let box = GradientBox()
    let tracked = try Tensor(shape: shape, values: logits).trackingGradient { box.value = $0 }
    let value = try loss(tracked)
    try value.backward()
    let gradient = try #require(box.value, "no gradient reached the logits")
    return (value.scalarValue, try gradient.toArray())
}

@Suite("Cross-entropy against soft targets")
struct SoftTargetLossTests {
    @Test("forward against the Double reference, gradient against central differences",
          arguments: [true, false])
    func againstReference(normalised: Bool) throws {
        var generator = SeededGenerator(seed: 40)
        let x = randomArray([6, 5], &generator, scale: 2)
        let targets = randomTargets(rows: 6, classes: 5, &generator, normalised: normalised)
        try checkOp("crossEntropy(targets:) normalised=\(normalised)",
                    [OpInput(array: x), OpInput(array: targets, differentiable: false)],
                    forward: { t in try crossEntropy(logits: t[0], targets: t[1]) },
                    reference: { r in ReferenceArray(shape: [], values: [Reference.crossEntropy(logits: r[0], targets: r[1])]) })
    }

    @Test("one-hot targets give the integer-label loss and gradient, smoothed ones those of label smoothing",
          arguments: [0.0, 0.1, 0.4])
    func oneHotMatchesIntegerLabels(smoothing: Double) throws {
        var generator = SeededGenerator(seed: 41)
        let (n, k) = (7, 6)
        let logits = randomArray([n, k], &generator, scale: 3).floats
        let labels: [Int32] = [0, 5, 2, 2, 1, 4, 3]
        let targets = try Tensor(shape: [n, k], values: smoothedOneHot(labels, classes: k, smoothing: smoothing))
        let (soft, softGradient) = try lossAndGradient(logits, shape: [n, k]) { try crossEntropy(logits: $0, targets: targets) }
        let (hard, hardGradient) = try lossAndGradient(logits, shape: [n, k]) {
            try crossEntropy(logits: $0, labels: labels, labelSmoothing: Float(smoothing))
        }
        #expect(abs(soft - hard) <= 4 * Float.ulpOfOne * abs(hard), "loss \(soft) vs \(hard)")
        let error = relativeError(softGradient.map(Double.init), hardGradient.map(Double.init))
        #expect(error < 1e-6, "gradient relative error \(error)")
    }

    @Test("the Double reference: one-hot rows give the integer-label reference, smoothed rows its label smoothing")
    func referenceIdentities() {
        var generator = SeededGenerator(seed: 42)
        let logits = randomArray([4, 3], &generator, scale: 2)
        let labels: [Int32] = [2, 0, 1, 1]
        for smoothing in [0.0, 0.25] {
            let targets = ReferenceArray(shape: [4, 3], values: smoothedOneHot(labels, classes: 3, smoothing: smoothing)
                                            .map(Double.init))
            let soft = Reference.crossEntropy(logits: logits, targets: targets)
            let hard = Reference.crossEntropy(logits: logits, labels: labels.map(Int.init), labelSmoothing: smoothing)
            // The targets went through Float, so the two agree to Float precision of the weights.
            #expect(abs(soft - hard) < 1e-6 * abs(hard), "ε = \(smoothing): \(soft) vs \(hard)")
        }
    }

    @Test("bad shapes and bad target values are typed errors")
    func badInput() throws {
        let logits = Tensor(repeating: 0, shape: [2, 3])
        #expect(throws: TensorError.incompatibleShapes(operation: "crossEntropy(logits:targets:)", [2, 3], [2, 4])) {
            try crossEntropy(logits: logits, targets: Tensor(repeating: 0.25, shape: [2, 4]))
        }
        #expect(throws: TensorError.incompatibleShapes(operation: "crossEntropy(logits:targets:)", [2, 3], [3, 2])) {
            try crossEntropy(logits: logits, targets: Tensor(repeating: 0.5, shape: [3, 2]))
        }
        #expect(throws: TensorError.shapeMismatch(operation: "crossEntropy", expected: "(N, K) logits", actual: [6])) {
            try crossEntropy(logits: Tensor(repeating: 0, shape: [6]), targets: Tensor(repeating: 0, shape: [6]))
        }
        #expect(throws: TensorError.self) {
            try crossEntropy(logits: Tensor(repeating: 0, shape: [0, 3]), targets: Tensor(repeating: 0, shape: [0, 3]))
        }
        for bad: Float in [-0.5, .nan, .infinity] {
            let targets = try Tensor(shape: [2, 3], values: [1, 0, 0, 0, bad, 1])
            do {
                _ = try crossEntropy(logits: logits, targets: targets)
                Issue.record("target \(bad) was accepted")
            } catch let TensorError.invalidArgument(_, message) {
                #expect(message.contains("sample 1, class 1"), "\(message)")
            }
        }
    }
}
