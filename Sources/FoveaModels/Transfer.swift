import FoveaNN
import FoveaTensor

/// A classifier whose head and trunk stages are named, which is what fine-tuning needs: the head is the part that
/// depends on the class count (replaced when a pretrained model meets a dataset with other classes), the stages are
/// what `--freeze stages:N` freezes and what discriminative learning rates lower, stem first.
///
/// Every zoo model declares both (a test checks, for every entry, that exactly the head's parameters change shape with
/// the class count and that every other parameter lies in exactly one stage). Paths are state-dict prefixes:
/// `layer1` covers `layer1.0.conv1.weight`.
public protocol ClassifierStructure: Layer {
    /// Layer paths of the classifier layers that map to the classes, the main classifier (a `Linear`) first, then any
    /// auxiliary heads' final layers.
    var headPaths: [String] { get }
    /// The trunk's stages in network order, stem first, each as the layer paths it covers. Layers feeding only an
    /// auxiliary head belong to the stage they branch from.
    var stagePaths: [[String]] { get }
}

/// Whether the state-dict key `name` lies under the layer path `path` (`layer1` covers `layer1.0.conv1.weight`).
public func stateKey(_ name: String, isUnder path: String) -> Bool {
    name == path || (name.hasPrefix(path) && name.dropFirst(path.count).first == ".")
}

extension ClassifierStructure {
    /// Whether parameter or buffer `name` belongs to the head.
    public func isHeadKey(_ name: String) -> Bool { headPaths.contains { stateKey(name, isUnder: $0) } }

    /// The index in `stagePaths` of the stage holding `name`, or nil for the head (and keys outside every stage).
    public func stageIndex(of name: String) -> Int? {
        if isHeadKey(name) { return nil }
        return stagePaths.firstIndex { stage in stage.contains { stateKey(name, isUnder: $0) } }
    }

    /// The penultimate-layer embedding of `images` (N, C, H, W): what the main classifier receives, (N, features), in
    /// evaluation mode, without recording a tape. `headPaths[0]` must be a `Linear` (it is for every zoo model).
    public func features(of images: Tensor) throws -> Tensor {
        guard let head = namedLayers().first(where: { $0.0 == headPaths.first })?.1 as? Linear else {
            throw TensorError.invalidArgument(operation: "features", message:
                "the classifier '\(headPaths.first ?? "")' of \(type(of: self)) is not a linear layer")
        }
        eval()
        let capture = Linear.InputCapture(head)
        _ = try Linear.$capture.withValue(capture) { try Autodiff.withoutRecording { try self(images) } }
        guard let features = capture.input else {
            throw TensorError.invalidArgument(operation: "features", message: "the classifier '\(headPaths[0])' was not reached")
        }
        return try features.reordered(to: .plain).copy()
    }
}

/// Groups the children of the `Sequential` at `prefix` into stages: a new stage starts at every index in `starts`
/// (index 0 always starts one). Children without parameters join their neighbours harmlessly.
func sequentialStages(_ prefix: String, count: Int, starts: Set<Int>) -> [[String]] {
    var stages: [[String]] = []
    for index in 0..<count {
        if index == 0 || starts.contains(index) { stages.append([]) }
        stages[stages.count - 1].append("\(prefix).\(index)")
    }
    return stages
}

/// Stages of a pooled trunk (AlexNet, VGG): a stage ends with each max pool.
func stagesEndingAtPools(_ features: Sequential) -> [[String]] {
    let starts = features.layers.indices.filter { $0 > 0 && features.layers[$0 - 1] is MaxPool2D }
    return sequentialStages("features", count: features.layers.count, starts: Set(starts))
}

extension LeNet5: ClassifierStructure {
    public var headPaths: [String] { ["fc3"] }
    public var stagePaths: [[String]] { [["conv1"], ["conv2"], ["fc1", "fc2"]] }
}

extension AlexNet: ClassifierStructure {
    public var headPaths: [String] { ["classifier.6"] }
    public var stagePaths: [[String]] { stagesEndingAtPools(features) + [["classifier.1", "classifier.4"]] }
}

extension VGG: ClassifierStructure {
    public var headPaths: [String] { ["classifier.6"] }
    public var stagePaths: [[String]] { stagesEndingAtPools(features) + [["classifier.0", "classifier.3"]] }
}

extension GoogLeNet: ClassifierStructure {
    public var headPaths: [String] { ["fc", "aux1.fc2", "aux2.fc2"] }
    public var stagePaths: [[String]] {
        [["conv1", "conv2", "conv3"], ["inception3a", "inception3b"],
         ["inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "aux1", "aux2"],
         ["inception5a", "inception5b"]]
    }
}

extension InceptionV3: ClassifierStructure {
    public var headPaths: [String] { ["fc", "AuxLogits.fc"] }
    public var stagePaths: [[String]] {
        [["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"],
         ["Mixed_5b", "Mixed_5c", "Mixed_5d"],
         ["Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "AuxLogits"],
         ["Mixed_7a", "Mixed_7b", "Mixed_7c"]]
    }
}

extension ResNet: ClassifierStructure {
    public var headPaths: [String] { ["fc"] }
    public var stagePaths: [[String]] { [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]] }
}

extension CIFARResNet: ClassifierStructure {
    public var headPaths: [String] { ["fc"] }
    public var stagePaths: [[String]] { [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"]] }
}

extension MobileNetV1: ClassifierStructure {
    public var headPaths: [String] { ["classifier"] }
    /// The stem, then one stage per resolution (a stride-2 block opens the next).
    public var stagePaths: [[String]] {
        let starts = Self.blocks.indices.filter { Self.blocks[$0].stride == 2 }.map { $0 + 1 }
        return sequentialStages("features", count: features.layers.count, starts: Set([1] + starts))
    }
}

extension MobileNetV2: ClassifierStructure {
    public var headPaths: [String] { ["classifier.1"] }
    /// The stem, then one stage per resolution (a stride-2 row of Table 2 opens the next); the last 1×1 convolution
    /// closes the last stage.
    public var stagePaths: [[String]] {
        var starts: Set<Int> = [1], index = 1
        for stage in Self.stages {
            if stage.stride == 2 { starts.insert(index) }
            index += stage.repeats
        }
        return sequentialStages("features", count: features.layers.count, starts: starts)
    }
}

extension MobileNetV3: ClassifierStructure {
    public var headPaths: [String] { ["classifier.3"] }
    /// The stem, then one stage per resolution; the last 1×1 convolution and the hidden linear layer close the last.
    public var stagePaths: [[String]] {
        let rows = features.layers.count - 2
        let strides = rows == Size.large.rows.count ? Size.large.rows.map(\.stride) : Size.small.rows.map(\.stride)
        let starts = strides.indices.filter { strides[$0] == 2 }.map { $0 + 1 }
        var stages = sequentialStages("features", count: features.layers.count, starts: Set([1] + starts))
        stages[stages.count - 1].append("classifier.0")
        return stages
    }
}

extension EfficientNet: ClassifierStructure {
    public var headPaths: [String] { ["classifier.1"] }
    /// torchvision's grouping: the stem, the seven MBConv stages, the last 1×1 convolution.
    public var stagePaths: [[String]] { (0..<features.layers.count).map { ["features.\($0)"] } }
}
