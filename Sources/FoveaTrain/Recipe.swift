import FoveaData

/// A named, documented set of training options (`fovea train --recipe NAME`); flags given override it.
public struct Recipe: Sendable {
    public let name: String
    /// One line on what it is and where it comes from.
    public let summary: String
    public let options: TrainingOptions

    /// Every recipe.
    public static let all: [Recipe] = [
        Recipe(name: "lenet5-fashion-mnist", summary: "LeNet-5, 10 epochs, SGD 0.05 momentum 0.9, wd 5e-4, cosine; ≈0.906") { _ in },
        Recipe(name: "lenet5-mnist", summary: "the same recipe on MNIST (IDX files in --data-dir or FOVEA_DATA)") {
            $0.dataset = "mnist"
        },
        Recipe(name: "fashion-mnist-best",
               summary: "Fovea's best Fashion-MNIST recipe: CIFAR ResNet-20 on 1 channel, 20 epochs, batch 128, SGD 0.1 Nesterov momentum 0.9, wd 5e-4, 1 warm-up epoch + cosine, pad-2 crop + flip; ≈0.94 test accuracy (0.940 and 0.943 measured) in 12–23 minutes on 2 cores") {
            $0.model = "resnet20"
            $0.dataset = "fashion-mnist"
            $0.epochs = 20
            $0.batchSize = 128
            $0.learningRate = 0.1
            $0.momentum = 0.9
            $0.nesterov = true
            $0.weightDecay = 5e-4
            $0.schedule = "cosine"
            $0.warmupEpochs = 1
            $0.augmentations = [.randomCrop(padding: 2), .horizontalFlip(probability: 0.5)]
        },
        Recipe(name: "resnet20-cifar10",
               summary: "He et al. 2015 §4.2: ResNet-20, SGD 0.1 momentum 0.9, wd 1e-4, batch 128, ÷10 at 32k and 48k of 64k iterations, pad-4 crop + flip") {
            $0.model = "resnet20"
            $0.dataset = "cifar10"
            $0.batchSize = 128
            $0.learningRate = 0.1
            $0.weightDecay = 1e-4
            // 391 iterations per epoch: 64k iterations ≈ 164 epochs, decays after 82 and 123.
            $0.epochs = 164
            $0.schedule = "multistep"
            $0.milestones = [82, 123]
            $0.stepGamma = 0.1
            $0.scheduleUnit = "epoch"
            $0.augmentations = [.randomCrop(padding: 4), .horizontalFlip(probability: 0.5)]
        },
        Recipe(name: "imagenet-resnet50",
               summary: "torchvision's classic recipe: ResNet-50 on an ImageNet-style folder, SGD 0.1 momentum 0.9, wd 1e-4, batch 32 (×8 GPUs there), ÷10 every 30 of 90 epochs, random-resized crop 224 + flip") {
            $0.model = "resnet50"
            $0.dataset = "imagefolder"
            $0.batchSize = 32
            $0.learningRate = 0.1
            $0.weightDecay = 1e-4
            $0.epochs = 90
            $0.schedule = "step"
            $0.stepEpochs = 30
            $0.stepGamma = 0.1
            $0.scheduleUnit = "epoch"
            $0.imageSize = 224
        },
    ]

    /// The recipe called `name`.
    public static func named(_ name: String) -> Recipe? { all.first { $0.name == name } }

    init(name: String, summary: String, _ configure: (inout TrainingOptions) -> Void) {
        var options = TrainingOptions()
        configure(&options)
        (self.name, self.summary, self.options) = (name, summary, options)
    }
}
