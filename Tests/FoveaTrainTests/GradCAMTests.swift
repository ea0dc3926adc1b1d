import Foundation
import FoveaData
import FoveaModels
import FoveaNN
import FoveaONNX
import FoveaTensor
@testable import FoveaTrain
import Testing

@Suite("Grad-CAM")
struct GradCAMTests {
    /// Grad-CAM straight from its definition, with ∂y/∂A by central differences: αₖ = mean over positions of ∂y/∂Aₖ,
    /// heat = ReLU(Σₖ αₖ·Aₖ) / max.
    static func reference(_ model: Layer, _ input: [Float], shape: [Int], image n: Int, classIndex c: Int) throws -> [Float] {
        let (channels, h, w) = (shape[1], shape[2], shape[3])
        let size = channels * h * w
        func logit(_ values: [Float]) throws -> Double {
            let output = try Autodiff.withoutRecording { try model(Tensor(shape: shape, values: values)) }.toArray()
            return Double(output[n * (output.count / shape[0]) + c])
        }
        var alphas = [Double](repeating: 0, count: channels)
        let step: Float = 1e-2
        for k in 0..<channels {
            for i in 0..<(h * w) {
                var plus = input, minus = input
                plus[n * size + k * h * w + i] += step
                minus[n * size + k * h * w + i] -= step
                alphas[k] += (try logit(plus) - logit(minus)) / Double(2 * step)
            }
            alphas[k] /= Double(h * w)
        }
        var heat = [Double](repeating: 0, count: h * w)
        for k in 0..<channels { for i in 0..<(h * w) { heat[i] += alphas[k] * Double(input[n * size + k * h * w + i]) } }
        let largest = heat.max() ?? 0
        return heat.map { largest > 0 && $0 > 0 ? Float($0 / largest) : 0 }
    }

    @Test("the map equals the definition with the gradient taken by finite differences (a model that flattens its input)")
    func finiteDifferences() throws {
        Initialization.seed(3)
        // The flattened map is the input itself, so ∂y/∂A can be measured from outside by perturbing the input.
        let model = Sequential([Flatten(), try Linear(3 * 4 * 4, 12), ActivationLayer(.tanh), try Linear(12, 5)])
        var generator = SeededGenerator(seed: 4)
        let shape = [2, 3, 4, 4]
        let input = (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) }
        let maps = try GradCAM.explain(model: model, input: Tensor(shape: shape, values: input), classes: [nil, 3])
        let logits = try Autodiff.withoutRecording { try model(Tensor(shape: shape, values: input)) }.toArray()
        #expect(maps[0].classIndex == (0..<5).max { logits[$0] < logits[$1] }!)
        #expect(maps[1].classIndex == 3)
        for n in 0..<2 {
            #expect(maps[n].featureShape == [3, 4, 4] && maps[n].height == 4 && maps[n].width == 4)
            let expected = try Self.reference(model, input, shape: shape, image: n, classIndex: maps[n].classIndex)
            let worst = zip(maps[n].values, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 2e-3, "image \(n): Grad-CAM differs from the finite-difference definition by \(worst)")
            #expect(maps[n].values.max()! == 1 || maps[n].values.allSatisfy { $0 == 0 })
        }
        // The parameters come back as they were: trainable, with no gradient left on them.
        #expect(model.parameters().allSatisfy { !$0.isFrozen })
    }

    @Test("a zoo network: the map is the last stage's output weighted by the classifier row (global pooling, then fc)")
    func globalPooling() throws {
        Initialization.seed(5)
        let model = try CIFARResNet(depth: 20, classCount: 6, inputChannels: 3)
        model.eval()
        var generator = SeededGenerator(seed: 6)
        let input = try Tensor(shape: [2, 3, 32, 32], values: (0..<(2 * 3 * 32 * 32)).map { _ in Float(generator.nextNormal()) })
        let maps = try GradCAM.explain(model: model, input: input, classes: [2, nil])
        // For y = W·mean(A) + b, ∂y_c/∂A_k = W_ck / (h·w) everywhere: the map is ReLU(Σ_k W_ck A_k) / max.
        let (_, probe) = try FeatureMapProbe.run { try model(input) }
        let target = try #require(probe.target)
        #expect(target.values.shape == [2, 64, 8, 8])
        let activations = try target.values.reordered(to: .plain).toArray()
        let weights = try model.fc.weight.value.toArray()
        for n in 0..<2 {
            let c = maps[n].classIndex
            var heat = [Double](repeating: 0, count: 64)
            for k in 0..<64 { for i in 0..<64 { heat[i] += Double(weights[c * 64 + k]) * Double(activations[(n * 64 + k) * 64 + i]) } }
            let largest = heat.max()!
            let expected = heat.map { largest > 0 && $0 > 0 ? Float($0 / largest) : 0 }
            let worst = zip(maps[n].values, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-4, "image \(n): \(worst)")
        }
        #expect(maps[0].classIndex == 2)
    }

    @Test("an imported ONNX graph gives the same maps as the model it was exported from; the overlay is a PNG")
    func onnxAndOverlay() throws {
        Initialization.seed(7)
        let model = try LeNet5()
        model.eval()
        var generator = SeededGenerator(seed: 8)
        let input = try Tensor(shape: [3, 1, 28, 28], values: (0..<(3 * 784)).map { _ in Float(generator.nextNormal()) })
        let expected = try GradCAM.explain(model: model, input: input, classes: [nil, 1, 9])
        let imported = try ONNXModel(graph: ONNXGraph(bytes: ONNXExporter.serialize(model, inputShape: [1, 28, 28]), path: "lenet.onnx"))
        let maps = try GradCAM.explain(model: imported, input: input, classes: [nil, 1, 9])
        for (a, b) in zip(maps, expected) {
            #expect(a.classIndex == b.classIndex && a.featureShape == [16, 5, 5] && b.featureShape == [16, 5, 5])
            #expect(zip(a.values, b.values).allSatisfy { abs($0 - $1) < 1e-4 })
        }
        let image = DecodedImage(channels: 1, height: 28, width: 28, pixels: (0..<784).map { UInt8($0 % 256) })
        let png = Explanation(map: expected[0], image: image).overlayPNG()
        let decoded = try ImageDecoder.decode(png, path: "overlay.png", channels: 3)
        #expect(decoded.height == 224 && decoded.width == 224)
        // A network without a feature map to explain is an error that says so.
        let flat = Sequential([try Linear(4, 3)])
        #expect(throws: TensorError.self) { try GradCAM.explain(model: flat, input: Tensor.zeros([1, 4]), classes: [nil]) }
    }
}
