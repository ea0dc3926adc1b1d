import CDNNL

/// Softmax over classes: input (N, K) → (N, K), rows summing to one. Differentiable.
public func softmax(_ input: Tensor) throws -> Tensor {
    let result = try softmaxKind(input, log: false)
    OperationTrace.record(.softmax(log: false), [input], result)
    return result
}

/// Log-softmax over classes: input (N, K) → (N, K). Differentiable.
public func logSoftmax(_ input: Tensor) throws -> Tensor {
    let result = try softmaxKind(input, log: true)
    OperationTrace.record(.softmax(log: true), [input], result)
    return result
}

private func softmaxKind(_ input: Tensor, log: Bool) throws -> Tensor {
    let name = log ? "logSoftmax" : "softmax"
    guard input.shape.count == 2 else { throw TensorError.shapeMismatch(operation: name, expected: "(N, K)", actual: input.shape) }
    let algorithm = log ? dnnl_softmax_log : dnnl_softmax_accurate
    let training = Autodiff.recording && input.node != nil
    let keyValues = input.shape + [log ? 1 : 0]
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "softmax_t" : "softmax_i", values: keyValues)) {
        var desc = dnnl_softmax_v2_desc_t()
        var data = try memoryDescriptor(input.shape, .plain)
        var destination = data
        try check(dnnl_softmax_v2_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                    algorithm, &data, &destination, 1), "dnnl_softmax_v2_forward_desc_init")
        return try makePrimitiveDescriptor(&desc, name: name)
    }
    let source = try input.detached.reordered(to: .plain)
    let result = try Tensor.uninitialized(input.shape)
    try forward.execute([(DNNL_ARG_SRC, source.storage),
                         (DNNL_ARG_DST, result.storage)])
    guard training else { return result }
    return result.recorded(from: [input]) { gradient in
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "softmax_b", values: keyValues)) {
            var desc = dnnl_softmax_v2_desc_t()
            var data = try memoryDescriptor(input.shape, .plain)
            var diffSource = data, diffDestination = data
            try check(dnnl_softmax_v2_backward_desc_init(&desc, algorithm, &diffSource, &diffDestination, &data, 1),
                      "dnnl_softmax_v2_backward_desc_init")
            return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
        }
        let outputGradient = try gradient.detached.reordered(to: .plain)
        let inputGradient = try Tensor.uninitialized(input.shape)
        try backward.execute([(DNNL_ARG_DST, result.storage),
                              (DNNL_ARG_DIFF_DST, outputGradient.storage),
                              (DNNL_ARG_DIFF_SRC, inputGradient.storage)])
        return [inputGradient]
    }
}

/// Mean cross-entropy between logits (N, K) and integer labels, with optional label smoothing ε
/// (PyTorch's definition: (1−ε)·NLL + ε·mean over classes of −log p). Returns a scalar. Differentiable in the logits.
public func crossEntropy(logits: Tensor, labels: [Int32], labelSmoothing: Float = 0) throws -> Tensor {
    guard logits.shape.count == 2, logits.shape[0] == labels.count else {
        throw TensorError.shapeMismatch(operation: "crossEntropy", expected: "(\(labels.count), K) logits", actual: logits.shape)
    }
    let (n, k) = (logits.shape[0], logits.shape[1])
    guard n > 0 else { throw TensorError.invalidArgument(operation: "crossEntropy", message: "empty batch") }
    guard (0..<1).contains(labelSmoothing) || labelSmoothing == 0 else {
        throw TensorError.invalidArgument(operation: "crossEntropy", message: "label smoothing \(labelSmoothing) not in [0, 1)")
    }
    if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= k }) {
        throw TensorError.invalidArgument(operation: "crossEntropy", message: "label \(labels[bad]) at index \(bad) outside 0..<\(k)")
    }
    let source = try logits.detached.reordered(to: .plain)
    let x = source.storage.pointer
    let probabilities = Tensor(repeating: 0, shape: [n, k])
    let p = probabilities.storage.pointer
    var total = 0.0
    let smoothing = Double(labelSmoothing)
    for i in 0..<n {
        let row = x + i * k
        let logSum = softmaxRow(row, count: k, into: p + i * k)
        var meanNegativeLog = 0.0
        if smoothing > 0 { for j in 0..<k { meanNegativeLog += logSum - Double(row[j]) }; meanNegativeLog /= Double(k) }
        total += (1 - smoothing) * (logSum - Double(row[Int(labels[i])])) + smoothing * meanNegativeLog
    }
    withExtendedLifetime(source) {}
    let loss = Tensor(scalar: Float(total / Double(n)))
    return loss.recorded(from: [logits]) { [probabilities] gradient in
        let p = probabilities.storage.pointer
        let scale = gradient.scalarValue / Float(n)
        let result = try Tensor.uninitialized([n, k])
        let g = result.storage.pointer
        let uniform = labelSmoothing / Float(k)
        for i in 0..<n {
            for j in 0..<k {
                let target = (j == Int(labels[i]) ? 1 - labelSmoothing : 0) + uniform
                g[i * k + j] = (p[i * k + j] - target) * scale
            }
        }
        return [result]
    }
}

/// Mean cross-entropy between logits (N, K) and soft targets (N, K), one weight per class and sample — the
/// mixed one-hot targets of MixUp and CutMix: −(1/N)·Σᵢ Σⱼ tᵢⱼ·log softmax(zᵢ)ⱼ, as PyTorch's `cross_entropy` with
/// class-probability targets. Returns a scalar. Differentiable in the logits; the targets are data.
///
/// Targets must be finite and non-negative. Rows need not sum to one: the gradient (Σⱼ tᵢⱼ)·pᵢ − tᵢ (over N)
/// holds for any row, and is pᵢ − tᵢ for a distribution. Label smoothing ε is the target (1−ε)·t + ε/K.
public func crossEntropy(logits: Tensor, targets: Tensor) throws -> Tensor {
    guard logits.shape.count == 2 else {
        throw TensorError.shapeMismatch(operation: "crossEntropy", expected: "(N, K) logits", actual: logits.shape)
    }
    guard targets.shape == logits.shape else {
        throw TensorError.incompatibleShapes(operation: "crossEntropy(logits:targets:)", logits.shape, targets.shape)
    }
    let (n, k) = (logits.shape[0], logits.shape[1])
    guard n > 0, k > 0 else { throw TensorError.invalidArgument(operation: "crossEntropy", message: "empty batch") }
    let target = try targets.detached.reordered(to: .plain).copy()
    let t = target.storage.pointer
    if let bad = (0..<(n * k)).first(where: { !(t[$0] >= 0) || !t[$0].isFinite }) {
        throw TensorError.invalidArgument(operation: "crossEntropy",
                                          message: "target \(t[bad]) of sample \(bad / k), class \(bad % k) is negative or not finite")
    }
    let source = try logits.detached.reordered(to: .plain)
    let x = source.storage.pointer
    let probabilities = Tensor(repeating: 0, shape: [n, k])
    let p = probabilities.storage.pointer
    var total = 0.0
    var rowSums = [Float](repeating: 0, count: n)
    for i in 0..<n {
        let logSum = softmaxRow(x + i * k, count: k, into: p + i * k)
        var rowSum = 0.0
        for j in 0..<k {
            total += Double(t[i * k + j]) * (logSum - Double(x[i * k + j]))
            rowSum += Double(t[i * k + j])
        }
        rowSums[i] = Float(rowSum)
    }
    withExtendedLifetime(source) {}
    let loss = Tensor(scalar: Float(total / Double(n)))
    return loss.recorded(from: [logits]) { [probabilities, target] gradient in
        let p = probabilities.storage.pointer, t = target.storage.pointer
        let scale = gradient.scalarValue / Float(n)
        let result = try Tensor.uninitialized([n, k])
        let g = result.storage.pointer
        for i in 0..<n {
            for j in 0..<k { g[i * k + j] = (rowSums[i] * p[i * k + j] - t[i * k + j]) * scale }
        }
        return [result]
    }
}

/// Writes softmax(row) to `probabilities` and returns log Σ exp(row), both computed after subtracting the row maximum.
private func softmaxRow(_ row: UnsafePointer<Float>, count k: Int, into probabilities: UnsafeMutablePointer<Float>) -> Double {
    var maximum = row[0]
    for j in 1..<k { maximum = max(maximum, row[j]) }
    var sum = 0.0
    for j in 0..<k { let e = Double(row[j] - maximum).exp; probabilities[j] = Float(e); sum += e }
    for j in 0..<k { probabilities[j] = Float(Double(probabilities[j]) / sum) }
    return sum.log + Double(maximum)
}

#if canImport(Glibc)
import Glibc
#endif
extension Double {
    var exp: Double { Glibc.exp(self) }
    var log: Double { Glibc.log(self) }
}
