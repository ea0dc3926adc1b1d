import FoveaTensor
import Testing

/// Norm-wise relative error ‖a − b‖₂ / ‖b‖₂ (absolute when b is zero).
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length: \(a.count) vs \(b.count)")
    var difference = 0.0, norm = 0.0
    for i in 0..<a.count { difference += (a[i] - b[i]) * (a[i] - b[i]); norm += b[i] * b[i] }
    return norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
}

func randomArray(_ shape: [Int], _ generator: inout SeededGenerator, scale: Double = 1) -> ReferenceArray {
    let count = shape.reduce(1, *)
    return ReferenceArray(shape: shape, values: (0..<count).map { _ in generator.nextNormal() * scale })
}

/// Collects the gradient that reaches a tracked input.
final class GradientBox {
    var value: Tensor?
}

/// One input of an op under test: its values, the layout it is handed over in, and whether to check its gradient.
struct OpInput {
    var array: ReferenceArray
    var layout: Layout = .plain
    var differentiable = true
}

/// Checks an op against its reference: forward (relative error < 1e-4) and, for every differentiable input,
/// the backward pass against central finite differences of the Double reference (relative error < 1e-3).
func checkOp(_ name: String, _ inputs: [OpInput], seed: UInt64 = 7, forwardTolerance: Double = 1e-4,
             gradientTolerance: Double = 1e-3, gradientLayout: Layout? = nil,
             forward: ([Tensor]) throws -> Tensor, reference: @escaping ([ReferenceArray]) -> ReferenceArray) throws {
    var generator = SeededGenerator(seed: seed)
    let boxes = inputs.map { _ in GradientBox() }
    var tensors: [Tensor] = []
    for (input, box) in zip(inputs, boxes) {
        let tensor = try Tensor(shape: input.array.shape, values: input.array.floats).reordered(to: input.layout)
        #expect(tensor.layout == input.layout)
        tensors.append(input.differentiable ? tensor.trackingGradient { g in
            box.value = try box.value.map { try $0 + g } ?? g
        } : tensor)
    }
    let output = try forward(tensors)
    let expected = reference(inputs.map(\.array))
    #expect(output.shape == expected.shape, "\(name): output shape")
    let actual = try output.toArray().map(Double.init)
    let forwardError = relativeError(actual, expected.values)
    #expect(forwardError < forwardTolerance, "\(name): forward relative error \(forwardError)")

    guard inputs.contains(where: \.differentiable) else { return }
    let upstream = randomArray(expected.shape, &generator)
    var seedTensor = try Tensor(shape: upstream.shape, values: upstream.floats)
    if let gradientLayout, upstream.shape.count == 4 { seedTensor = try seedTensor.reordered(to: gradientLayout) }
    try output.backward(seed: seedTensor)
    for (index, input) in inputs.enumerated() where input.differentiable {
        let numeric = Reference.numericalGradient(of: { replaced in
            var arrays = inputs.map(\.array)
            arrays[index] = replaced
            let y = reference(arrays)
            return zip(y.values, upstream.values).reduce(0) { $0 + $1.0 * $1.1 }
        }, at: input.array)
        guard let gradient = boxes[index].value else {
            Issue.record("\(name): no gradient reached input \(index)")
            continue
        }
        #expect(gradient.shape == input.array.shape)
        let error = relativeError(try gradient.toArray().map(Double.init), numeric.values)
        #expect(error < gradientTolerance, "\(name): gradient of input \(index) relative error \(error)")
    }
}

/// Both layouts every 4-D op is tested in.
let bothLayouts: [Layout] = [.plain, .nChw8c]
