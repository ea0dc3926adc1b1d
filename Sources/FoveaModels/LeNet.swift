// LeNet-5 — LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
// recognition", Proc. IEEE 86(11), Fig. 2; with ReLU and max-pooling as commonly used today.
import FoveaNN
import FoveaTensor

/// LeNet-5: conv 5×5 → 6, pool, conv 5×5 → 16, pool, 120, 84, classes. A 28×28 input is padded by 2 in
/// the first convolution, so the 32×32 geometry of the paper holds (61,706 parameters for 10 classes).
public final class LeNet5: Layer {
    public let conv1: Conv2D, conv2: Conv2D
    public let fc1: Linear, fc2: Linear, fc3: Linear
    let pool = MaxPool2D(kernelSize: 2)

    /// Creates LeNet-5 for `classCount` classes and `inputChannels` channels of 28×28 images.
    public init(classCount: Int = 10, inputChannels: Int = 1) throws {
        conv1 = try Conv2D(inputChannels, 6, kernelSize: 5, padding: 2)
        conv2 = try Conv2D(6, 16, kernelSize: 5)
        fc1 = try Linear(16 * 5 * 5, 120)
        fc2 = try Linear(120, 84)
        fc3 = try Linear(84, classCount)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.shape.count == 4, x.shape[2] == 28, x.shape[3] == 28 else {
            throw TensorError.shapeMismatch(operation: "LeNet5", expected: "(N, \(conv1.weight.value.shape[1]), 28, 28)",
                                            actual: x.shape)
        }
        // ReLU then max pooling, computed as max pooling then ReLU: the two commute, values and gradients alike
        // (`Sequential` does the same), and ReLU then touches a quarter of the elements.
        var y = try relu(maxPool2d(conv1(x), geometry: pool.geometry, name: "LeNet5.pool1"))
        y = try relu(maxPool2d(conv2(y), geometry: pool.geometry, name: "LeNet5.pool2"))
        y = try relu(fc1(y.flattened()))
        y = try relu(fc2(y))
        return try fc3(y)
    }
}
