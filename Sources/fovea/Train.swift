import ArgumentParser
import Foundation
import FoveaData
import FoveaDistributed
import FoveaTensor
import FoveaTrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model from the zoo on a dataset and write metrics, reports, weights and checkpoints.",
        discussion: """
            Options start from the defaults (LeNet-5 on Fashion-MNIST, SGD 0.05 momentum 0.9, weight decay 5e-4,
            cosine, 10 epochs, batch 128) or from --recipe NAME; every flag given overrides them.
            Recipes: \(Recipe.all.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")).

            With --output DIR: DIR/metrics.jsonl and metrics.csv (one row per epoch), DIR/report.json and
            report.html (test-set report with plots), DIR/model.safetensors with its sidecar model.json (and
            model-ema.* with --ema-decay), DIR/checkpoint-last.safetensors (every epoch and every --checkpoint-every
            steps) and checkpoint-best.safetensors (best --monitor). --resume DIR continues an interrupted run
            bit for bit with its saved options.

            Augmentation flags act on training samples only, with torchvision's semantics; on image folders they
            follow the random-resized crop and flip. --random-erasing acts last, on the normalised sample.

            --mixup ALPHA and --cutmix ALPHA (Zhang et al. 2018, Yun et al. 2019; torchvision's MixUp and CutMix) mix
            each training batch with itself rolled by one sample, λ ~ Beta(ALPHA, ALPHA): MixUp blends whole images,
            CutMix pastes a box of the partner image; the targets become the two one-hot labels weighted by λ and by
            the pasted area (then label-smoothed). The loss is the cross-entropy against those soft targets, and a training prediction
            counts as correct when it equals their arg-max. Evaluation is never mixed.

            Fine-tuning: --init-from FILE loads trained weights (strictly, as load(safetensors:)), except the classifier
            each zoo model declares, which is initialised afresh when the class count differs or with --new-head; the run
            prints which tensors it loaded, replaced and left out, and uses the file's normalisation when it records one.
            --freeze, --head-lr-multiplier and --fine-tune E1,E2 choose what trains at which rate; --classes and
            --limit-per-class make the few-shot subsets (names go into the sidecar and the reports).

            Data-parallel training: `mpirun -np K fovea train …` (Open MPI; one machine or many) runs the same job on K
            processes. Each takes batch-size ÷ K images of every batch of the one-process order; gradients are summed
            with MPI allreduce in buckets of --bucket-mb, overlapped with the backward pass; evaluation is sharded and
            summed, so every metric is the whole test set's; rank 0 alone prints and writes files. Batch norm uses each
            rank's statistics, or all ranks' with --sync-batch-norm. Every rank must see the data (and, for --resume
            and --init-from, the files). Without mpirun no MPI library is needed.

            --precision bf16: mixed precision. Convolutions and fully connected layers multiply in bfloat16 on oneDNN
            (AMX or AVX-512 BF16), accumulating in float32; batch norm, activations, pooling, softmax, the loss, the
            optimizer and the weights stay float32, and so do checkpoints and model files. On a CPU without bfloat16
            instructions the run warns and trains in fp32.
            """)

    @Option(help: "A named set of options (see above); flags given override it.") var recipe: String?
    @Option(help: "Architecture name (see `fovea models`).") var model: String?
    @Option(help: "Dataset: mnist, fashion-mnist, cifar10, cifar100 or imagefolder (DIR/train, DIR/val).") var dataset: String?
    @Option(name: .customLong("data-dir"), help: "Folder holding the dataset's files.") var dataDir: String?
    @Option(help: "Number of passes over the training set.") var epochs: Int?
    @Option(name: .customLong("batch-size"), help: "Training mini-batch size.") var batchSize: Int?
    @Option(help: "Optimizer: sgd, adam, adamw (decoupled weight decay) or rmsprop.") var optimizer: String?
    @Option(help: "Base learning rate.") var lr: Float?
    @Option(help: "SGD and RMSprop momentum.") var momentum: Float?
    @Flag(help: "Use Nesterov momentum.") var nesterov = false
    @Option(help: "Adam/AdamW first-moment decay.") var beta1: Float?
    @Option(help: "Adam/AdamW second-moment decay.") var beta2: Float?
    @Option(help: "Adam/AdamW/RMSprop epsilon.") var eps: Float?
    @Option(name: .customLong("rmsprop-alpha"), help: "RMSprop square-average decay.") var rmspropAlpha: Float?
    @Flag(name: .customLong("rmsprop-tf"), help: "RMSprop with TensorFlow's epsilon inside the square root (EfficientNet).")
    var rmspropTensorFlow = false
    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for SGD/Adam/RMSprop, decoupled for AdamW).")
    var weightDecay: Float?
    @Option(name: .customLong("weight-decay-policy"), help: "all, or exclude-bias-norm to skip biases and normalisation parameters.")
    var weightDecayPolicy: String?
    @Option(name: .customLong("clip-grad-norm"), help: "Clip the global gradient norm to this value.") var clipGradNorm: Float?
    @Option(help: "Sum gradients over N batches per optimizer step (an effective batch of N × --batch-size).") var accumulate: Int?
    @Option(help: "Learning-rate schedule: constant, step, multistep, exponential, cosine, onecycle or plateau (× --gamma after --plateau-patience epochs without improvement of --monitor).")
    var schedule: String?
    @Option(name: .customLong("plateau-patience"), help: "For --schedule plateau: epochs to wait.") var plateauPatience: Int?
    @Option(name: .customLong("schedule-unit"), help: "Advance the schedule every optimizer step or every epoch.")
    var scheduleUnit: String?
    @Option(name: .customLong("warmup-epochs"), help: "Linear warm-up epochs (from 1 % of --lr) before the schedule.")
    var warmupEpochs: Int?
    @Option(name: .customLong("step-epochs"), help: "For --schedule step: epochs between decays.") var stepEpochs: Int?
    @Option(parsing: .upToNextOption, help: "For --schedule multistep: epochs at which the rate is multiplied by --gamma.")
    var milestones: [Int] = []
    @Option(help: "Decay factor for step and multistep; per-epoch factor for exponential.") var gamma: Float?
    @Option(name: .customLong("label-smoothing"), help: "Label smoothing ε for the cross-entropy loss.") var labelSmoothing: Float?
    @Option(help: ArgumentHelp("MixUp: α of Beta(α, α) for the blending weight λ (e.g. 0.2); 0 is off.", valueName: "ALPHA"))
    var mixup: Double?
    @Option(help: ArgumentHelp("CutMix: α of Beta(α, α) for the kept share λ of each image (e.g. 1.0); 0 is off.",
                               valueName: "ALPHA"))
    var cutmix: Double?
    @Option(name: .customLong("mix-probability"),
            help: ArgumentHelp("Probability that a training batch is mixed (default 1).", valueName: "P"))
    var mixProbability: Double?
    @Option(name: .customLong("mix-switch-probability"),
            help: ArgumentHelp("With --mixup and --cutmix: probability that a mixed batch uses CutMix rather than MixUp (default 0.5).",
                               valueName: "P"))
    var mixSwitchProbability: Double?
    @Option(name: .customLong("val-dir"), help: "Image folders: validation folder (default DIR/val).") var valDir: String?
    @Option(name: .customLong("image-size"), help: "Image folders: side of the square input (default 224).") var imageSize: Int?
    @Option(help: "Data-loading threads (default: 0 for in-memory datasets, 2 for image folders).") var workers: Int?
    @Flag(name: .customLong("drop-last"), help: "Drop each epoch's last training batch when it is smaller than --batch-size.")
    var dropLast = false
    @Flag(name: .customLong("skip-bad-files"),
          help: "Leave images that cannot be loaded out of their batch and go on; each epoch reports how many and which (progress, metrics.jsonl skipped_samples / skipped_files). Without it such a file stops the run with its path.")
    var skipBadFiles = false
    @Option(name: .customLong("max-image-pixels"),
            help: "Image folders: reject images whose header claims more than N pixels (default \(ImageDecoder.defaultPixelLimit)).")
    var maxImagePixels: Int?
    @Option(name: .customLong("random-crop"), help: "Augment: zero-pad by N pixels and crop back at a random place.")
    var randomCrop: Int?
    @Flag(name: .customLong("horizontal-flip"), help: "Augment: mirror left–right with probability 0.5.") var horizontalFlip = false
    @Flag(name: .customLong("vertical-flip"), help: "Augment: mirror top–bottom with probability 0.5.") var verticalFlip = false
    @Option(help: ArgumentHelp("Augment: rotate by a random angle in ±DEG degrees (nearest, zero fill).", valueName: "DEG"))
    var rotate: Double?
    @Option(help: ArgumentHelp("Augment: random affine map as torchvision RandomAffine: rotation in ±DEG°, translation up to TRANSLATE × the size, scale in SCALE_MIN…SCALE_MAX, x-shear in ±SHEAR° (nearest, zero fill).",
                               valueName: "DEG,TRANSLATE,SCALE_MIN,SCALE_MAX,SHEAR"))
    var affine: String?
    @Flag(name: .customLong("trivial-augment"), help: "Augment: TrivialAugmentWide (one random operation of 14 at a random strength).")
    var trivialAugment = false
    @Option(help: ArgumentHelp("Augment: RandAugment with N operations at magnitude M of 0…30.", valueName: "N,M")) var randaugment: String?
    @Option(name: .customLong("color-jitter"),
            help: ArgumentHelp("Augment: brightness, contrast, saturation strengths (≥ 0) and hue (0…0.5), in a random order.",
                               valueName: "B,C,S,H"))
    var colorJitter: String?
    @Option(help: ArgumentHelp("Augment: turn grey (keeping the channel count) with probability P.", valueName: "P")) var grayscale: Double?
    @Option(name: .customLong("gaussian-blur"),
            help: ArgumentHelp("Augment: Gaussian blur with odd kernel K and σ = SIGMA (or uniform in SIGMA…MAX), reflect padding.", valueName: "K,SIGMA[,MAX]"))
    var gaussianBlur: String?
    @Option(name: .customLong("random-erasing"),
            help: ArgumentHelp("Augment: erase a random rectangle (2–33 % of the area) of the normalised sample with probability P.",
                               valueName: "P"))
    var randomErasing: Double?
    @Flag(name: .customLong("no-augment"),
          help: "Drop the recipe's augmentations (flags given still add theirs, in the order crop, flips, rotate, affine, trivial-augment, randaugment, color-jitter, grayscale, gaussian-blur, random-erasing).")
    var noAugment = false
    @Option(name: .customLong("ema-decay"), help: "Keep a moving average of the weights (e.g. 0.999), evaluated and saved too.")
    var emaDecay: Float?
    @Option(name: .customLong("early-stopping"), help: "Stop after N epochs without improvement of --monitor.")
    var earlyStopping: Int?
    @Option(help: "Metric for the best checkpoint and early stopping: test_accuracy or test_loss.") var monitor: String?
    @Option(help: "Seed for initialisation, shuffling and augmentation; the same seed gives the same run.") var seed: UInt64?
    @Option(name: .customLong("limit-train"), help: "Train on the first N training samples only.") var limitTrain: Int?
    @Option(name: .customLong("limit-test"), help: "Evaluate on the first N test samples only.") var limitTest: Int?
    @Option(help: "Directory for metrics, reports, model and checkpoints.") var output: String?
    @Option(help: "Continue the run in DIR from its last checkpoint with its saved options (other options are ignored).")
    var resume: String?
    @Option(name: .customLong("checkpoint-every"), help: "Also checkpoint every N optimizer steps (always at epoch ends).")
    var checkpointEvery: Int?
    @Option(help: "Write TensorBoard event files (loss, accuracy, learning rate per epoch) to DIR.") var tensorboard: String?
    @Option(name: .customLong("init-from"),
            help: ArgumentHelp("Start from trained weights: a Fovea model.safetensors (with its sidecar), a torchvision state dict as safetensors, a Fovea checkpoint or an .onnx export. Keys must match --model (default: the file's architecture) exactly, except the classifier, which is replaced when the class count differs (or with --new-head).",
                               valueName: "FILE"))
    var initFrom: String?
    @Flag(name: .customLong("new-head"), help: "With --init-from: initialise a new classifier even when the class count is the same.")
    var newHead = false
    @Option(help: ArgumentHelp("Freeze parameters (no gradient, no update, no optimizer state): none, backbone (all but the head) or stages:N (the first N stages, the stem being the first). With --fine-tune: what stays frozen in phase two.",
                               valueName: "WHAT"))
    var freeze: String?
    @Flag(name: .customLong("freeze-batch-norm"), help: "Keep the batch norms of frozen parts in evaluation mode (running statistics, not updated).")
    var freezeBatchNorm = false
    @Option(name: .customLong("head-lr-multiplier"), help: ArgumentHelp("Multiply the head's learning rate by X.", valueName: "X"))
    var headLRMultiplier: Float?
    @Option(name: .customLong("fine-tune"),
            help: ArgumentHelp("Two phases (fastai's fine_tune): the head alone for E1 epochs at --lr, then everything for E2 epochs at --lr/2 with discriminative rates (the stem at 1/R of the head's, R = --discriminative-lr-ratio); each phase runs the schedule anew. Sets --epochs to E1+E2.",
                               valueName: "E1,E2"))
    var fineTune: String?
    @Option(name: .customLong("discriminative-lr-ratio"),
            help: ArgumentHelp("With --fine-tune: the head learns R times faster than the stem in phase two, the stages between geometrically (default 100; 1 for one rate).",
                               valueName: "R"))
    var discriminativeRatio: Float?
    @Option(help: ArgumentHelp("Keep only these classes (names or indices, comma-separated), relabelled 0…k−1 in this order, in training and test sets.",
                               valueName: "A,B,…"))
    var classes: String?
    @Option(name: .customLong("limit-per-class"),
            help: ArgumentHelp("Keep only N training samples of each class: the first N in an order shuffled under --seed.", valueName: "N"))
    var limitPerClass: Int?
    @Flag(name: .customLong("sync-batch-norm"),
          help: "Data-parallel training: batch-norm statistics over every rank's part of the batch (default: each rank's own).")
    var syncBatchNorm = false
    @Option(name: .customLong("bucket-mb"),
            help: ArgumentHelp("Data-parallel training: gradient bucket size in MB (default 25).", valueName: "MB"))
    var bucketMB: Double?
    @Flag(name: .customLong("no-overlap"),
          help: "Data-parallel training: start the gradient allreduces after the backward pass instead of during it.")
    var noOverlap = false
    @Option(help: ArgumentHelp("Arithmetic of convolutions and fully connected layers: fp32 (default) or bf16 (mixed precision); int8 is for inference (fovea quantize).",
                               valueName: "fp32|bf16"))
    var precision: Precision?
    @Option(name: .customLong("kill-after-step"), help: .hidden) var killAfterStep: Int?
    @Option(name: .customLong("kill-rank"), help: .hidden) var killRank: Int?
    @Flag(help: "Print the final report as JSON on stdout.") var json = false
    @Flag(help: "No progress output.") var quiet = false

    /// The recipe's options (or the defaults) with every given flag applied on top.
    func resolvedOptions() throws -> TrainingOptions {
        var o = TrainingOptions()
        if let recipe {
            guard let found = Recipe.named(recipe) else {
                throw TrainingError.invalidOption("unknown recipe '\(recipe)'; recipes: \(Recipe.all.map(\.name).joined(separator: ", "))")
            }
            o = found.options
        }
        func set<T>(_ value: T?, _ path: WritableKeyPath<TrainingOptions, T>) { if let value { o[keyPath: path] = value } }
        set(model, \.model); set(dataset, \.dataset); set(epochs, \.epochs); set(batchSize, \.batchSize)
        set(optimizer, \.optimizer); set(lr, \.learningRate); set(momentum, \.momentum); set(beta1, \.beta1)
        set(beta2, \.beta2); set(eps, \.epsilon); set(rmspropAlpha, \.rmspropAlpha); set(weightDecay, \.weightDecay)
        set(weightDecayPolicy, \.weightDecayPolicy); set(accumulate, \.accumulationSteps); set(schedule, \.schedule)
        set(scheduleUnit, \.scheduleUnit); set(warmupEpochs, \.warmupEpochs); set(stepEpochs, \.stepEpochs)
        set(gamma, \.stepGamma); set(labelSmoothing, \.labelSmoothing); set(monitor, \.monitor); set(seed, \.seed)
        set(mixup, \.mixUpAlpha); set(cutmix, \.cutMixAlpha); set(mixProbability, \.mixProbability)
        set(mixSwitchProbability, \.mixSwitchProbability)
        if dataDir != nil { o.dataDirectory = dataDir }
        if valDir != nil { o.validationDirectory = valDir }
        if workers != nil { o.workers = workers }
        if dropLast { o.dropLast = true }
        if skipBadFiles { o.skipBadFiles = true }
        set(maxImagePixels, \.maximumImagePixels)
        set(imageSize, \.imageSize)
        set(plateauPatience, \.plateauPatience)
        if clipGradNorm != nil { o.clipGradientNorm = clipGradNorm }
        if emaDecay != nil { o.emaDecay = emaDecay }
        if earlyStopping != nil { o.earlyStoppingPatience = earlyStopping }
        if limitTrain != nil { o.limitTrain = limitTrain }
        if syncBatchNorm { o.syncBatchNorm = true }
        set(bucketMB, \.bucketMegabytes)
        set(precision, \.precision)
        if noOverlap { o.overlapCommunication = false }
        if limitTest != nil { o.limitTest = limitTest }
        if output != nil { o.outputDirectory = output }
        if checkpointEvery != nil { o.checkpointEvery = checkpointEvery }
        if tensorboard != nil { o.tensorboardDirectory = tensorboard }
        if !milestones.isEmpty { o.milestones = milestones }
        if nesterov { o.nesterov = true }
        if rmspropTensorFlow { o.rmspropTensorFlow = true }
        if noAugment { o.augmentations = [] }
        if let randomCrop {
            o.augmentations.removeAll { if case .randomCrop = $0 { return true } else { return false } }
            o.augmentations.append(.randomCrop(padding: randomCrop))
        }
        if horizontalFlip && !o.augmentations.contains(.horizontalFlip(probability: 0.5)) {
            o.augmentations.append(.horizontalFlip(probability: 0.5))
        }
        o.augmentations += try augmentationFlags()
        try applyFineTuningFlags(to: &o)
        return o
    }

    /// --init-from and the flags that go with it, and the class subsets.
    func applyFineTuningFlags(to o: inout TrainingOptions) throws {
        if let initFrom {
            o.initFrom = initFrom
            // Without --model (or a recipe naming one), the file's own architecture.
            if model == nil && recipe == nil, let architecture = try InitialWeights.read(initFrom).architecture { o.model = architecture }
        }
        if newHead { o.newHead = true }
        if let freeze { o.freeze = freeze }
        if freezeBatchNorm { o.freezeBatchNorm = true }
        if let headLRMultiplier { o.headLearningRateMultiplier = headLRMultiplier }
        if let discriminativeRatio { o.discriminativeRatio = discriminativeRatio }
        if let fineTune {
            let phases = fineTune.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard phases.count == 2, let first = phases[0], let second = phases[1] else {
                throw TrainingError.invalidOption("--fine-tune takes E1,E2, two whole epoch counts (got '\(fineTune)')")
            }
            o.fineTune = [first, second]
            if epochs == nil, first > 0, second > 0, first <= TrainingOptions.maximumCount, second <= TrainingOptions.maximumCount {
                o.epochs = first + second
            }
        }
        if let classes { o.classes = classes.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        if let limitPerClass { o.limitPerClass = limitPerClass }
    }

    /// The transforms the augmentation flags ask for, in a fixed order (geometry, colour, then erasing);
    /// malformed or out-of-range values are `TrainingError.invalidOption` naming the flag.
    func augmentationFlags() throws -> [ImageTransform] {
        var transforms: [ImageTransform] = []
        if verticalFlip { transforms.append(.verticalFlip(probability: 0.5)) }
        if let rotate {
            guard rotate.isFinite, rotate >= 0 else { throw TrainingError.invalidOption("--rotate must be a finite angle ≥ 0 (got \(rotate))") }
            transforms.append(.rotation(degrees: -rotate...rotate, interpolation: .nearest, fill: 0))
        }
        if let affine {
            let v = try Self.numbers(affine, flag: "--affine", counts: [5])
            guard v[0] >= 0, v[4] >= 0, v[2] <= v[3] else {
                throw TrainingError.invalidOption("--affine needs DEG ≥ 0, SHEAR ≥ 0 and SCALE_MIN ≤ SCALE_MAX (got \(affine))")
            }
            transforms.append(.affine(degrees: -v[0]...v[0], translateX: v[1], translateY: v[1], scale: v[2]...v[3],
                                      shearX: -v[4]...v[4], shearY: 0...0, interpolation: .nearest, fill: 0))
        }
        if trivialAugment { transforms.append(.trivialAugmentWide) }
        if let randaugment {
            let v = try Self.numbers(randaugment, flag: "--randaugment", counts: [2])
            guard v.allSatisfy({ $0 == $0.rounded() && abs($0) < 1000 }) else {
                throw TrainingError.invalidOption("--randaugment takes whole numbers N,M (got \(randaugment))")
            }
            transforms.append(.randAugment(operations: Int(v[0]), magnitude: Int(v[1])))
        }
        if let colorJitter {
            let v = try Self.numbers(colorJitter, flag: "--color-jitter", counts: [4])
            transforms.append(.colorJitter(brightness: v[0], contrast: v[1], saturation: v[2], hue: v[3]))
        }
        if let grayscale { transforms.append(.randomGrayscale(probability: grayscale)) }
        if let gaussianBlur {
            let v = try Self.numbers(gaussianBlur, flag: "--gaussian-blur", counts: [2, 3])
            let (low, high) = (v[1], v.count == 3 ? v[2] : v[1])
            guard v[0] == v[0].rounded(), abs(v[0]) < 1000, low <= high else {
                throw TrainingError.invalidOption("--gaussian-blur needs a whole kernel size and SIGMA ≤ MAX (got \(gaussianBlur))")
            }
            transforms.append(.gaussianBlur(kernelSize: Int(v[0]), sigma: low...high))
        }
        if let randomErasing {
            transforms.append(.randomErasing(probability: randomErasing, scale: 0.02...0.33, ratio: 0.3...3.3, randomValue: false))
        }
        for transform in transforms {
            do { try transform.validate() } catch { throw TrainingError.invalidOption("\(error)") }
        }
        return transforms
    }

    /// The comma-separated finite numbers of `text`, which must have one of `counts` elements.
    static func numbers(_ text: String, flag: String, counts: [Int]) throws -> [Double] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard counts.contains(values.count), values.allSatisfy({ $0?.isFinite == true }) else {
            throw TrainingError.invalidOption("\(flag) takes \(counts.map(String.init).joined(separator: " or ")) comma-separated numbers (got '\(text)')")
        }
        return values.compactMap { $0 }
    }

    func run() throws {
        // Under mpirun: this process is one rank of a data-parallel job (no MPI is opened otherwise).
        let communicator: Communicator?
        do { communicator = try Communicator.launched() } catch { fail("\(error)", code: 69) }
        try runReportingErrors(communicator: communicator) {
            var options = try resolvedOptions()
            if let resume {
                let checkpoint = (resume as NSString).appendingPathComponent(Trainer.lastCheckpointName)
                guard FileManager.default.fileExists(atPath: checkpoint) else {
                    throw TrainingError.badModelFile(path: checkpoint, reason: "no checkpoint to resume from")
                }
                options = try Checkpoint.readMetadata(checkpoint).0
                options.outputDirectory = resume
            }
            let primary = (communicator?.rank ?? 0) == 0
            let trainer = try Trainer(options: options, progress: ProgressReporter(quiet: quiet || !primary))
            (trainer.killAfterStep, trainer.killRank) = (killAfterStep, killRank)
            trainer.communicator = communicator
            let result = try trainer.fit(resume: resume != nil)
            if let parallel = trainer.dataParallel, primary, !quiet {
                FileHandle.standardError.write(Data(String(
                    format: "data-parallel: %d steps, %.3f s of %.3f s per step (%.1f %%) waiting for gradients after the "
                        + "backward pass; buckets started during / after it: %d / %d\n",
                    parallel.steps, parallel.waitSeconds / Double(max(parallel.steps, 1)),
                    parallel.stepSeconds / Double(max(parallel.steps, 1)), 100 * parallel.waitSeconds / max(parallel.stepSeconds, 1e-9),
                    parallel.bucketsStartedDuringBackward, parallel.bucketsStartedAfterBackward).utf8))
            }
            defer { communicator?.finalize() }
            guard primary else { return }
            if KernelProfile.enabled { FileHandle.standardError.write(Data((KernelProfile.summary() + "\n").utf8)) }
            if json {
                printJSON(try result.report.jsonData())
            } else {
                print(result.report.textSummary())
                let seconds = result.history.reduce(0) { $0 + $1.seconds }
                print(String(format: "trained %d epochs in %.1f s (%.1f s per epoch)", result.history.count, seconds,
                             seconds / Double(max(result.history.count, 1))))
                for file in result.files { print("wrote \(file)") }
            }
        }
    }
}
