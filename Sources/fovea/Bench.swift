import ArgumentParser
import Foundation
import FoveaModels
import FoveaNN
import FoveaONNX
import FoveaOptim
import FoveaTensor
import FoveaTrain

/// One benchmark workload, the same as in ../shared/bench/torch_anchor.py.
struct Workload {
    let name: String
    let model: String
    let classes: Int
    let input: [Int]
    let trainBatch: Int
    let inferenceBatch: Int
}

let workloads: [Workload] = [
    Workload(name: "lenet5_28", model: "lenet5", classes: 10, input: [1, 28, 28], trainBatch: 128, inferenceBatch: 256),
    Workload(name: "resnet20_32", model: "resnet20", classes: 10, input: [3, 32, 32], trainBatch: 128, inferenceBatch: 256),
    Workload(name: "resnet18_224", model: "resnet18", classes: 1000, input: [3, 224, 224], trainBatch: 16, inferenceBatch: 16),
    Workload(name: "mobilenet_v2_224", model: "mobilenet_v2", classes: 1000, input: [3, 224, 224], trainBatch: 16,
             inferenceBatch: 16),
    Workload(name: "efficientnet_b0_224", model: "efficientnet_b0", classes: 1000, input: [3, 224, 224], trainBatch: 16,
             inferenceBatch: 16),
]

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training and inference images/s on the reference workloads.",
        discussion: """
            Training is forward, backward and an SGD step (momentum 0.9, weight decay 5e-4) on random data;
            inference runs in evaluation mode without the tape. Each figure is the median over repeats after
            one warm-up, repeated for at least --seconds and 3 times. GFLOP/s counts 2 FLOPs per multiply-add
            of convolutions and fully connected layers (training: 3× the forward pass); the peak it is compared with is
            measured once per run (oneDNN's sgemm on 1536×1536 matrices, best of 1 s) unless --peak gives it. Winograd
            convolutions do fewer multiplications than they are counted with, so a fraction above 1 is possible. Peak
            RSS is the process's resident-memory high-water mark during the workload (reset before each). Allocations
            are the memory blocks tensors obtained from the system (not from the reuse pool) per training step and per
            inference call after the first timed one: 0 in steady state. Workloads: \(workloads.map(\.name).joined(separator: ", ")).
            With --model NAME… (or --model all): zoo models at their default input size, batch --batch-size (default 8).
            With --onnx FILE…: imported ONNX models at their declared input size (fixed C, H, W), batch --batch-size
            (default 8), run on Fovea's kernels with the zoo's fusions.

            --precision bf16 runs every measurement in mixed precision (convolutions and fully connected layers
            multiply in bfloat16, see `fovea train --help`); its peak is then oneDNN's bf16 matmul (1536×1536, f32
            result, best of 1 s), so the utilisation is against what the CPU does in that precision. --precision int8
            measures inference only, of each model quantized statically (see `fovea quantize --help`) after calibrating
            on its own inference batch; its peak is oneDNN's u8×s8 matmul into s32 (integer operations per second).
            The report names the precision and the instruction set oneDNN runs on (e.g. avx512_core_amx).

            \(ImageFolderWorkload.name) (run only when named, with --data-dir DIR holding class folders of images, as
            ../shared/bench/torch_dataload.py): --epochs shuffled epochs of DIR through the training pipeline of
            `fovea train --dataset imagefolder` (RandomResizedCrop(224), horizontal flip, ImageNet normalisation),
            batches of 64 on --workers threads; prints images/s over all epochs and per epoch, and the peak RSS.
            With FOVEA_PROFILE set it also prints the CPU time per image of reading, decoding and resampling.
            """)

    @Option(name: .customLong("workload"), parsing: .upToNextOption, help: "Workloads to run (default: all model workloads).")
    var selected: [String] = []
    @Option(help: "Minimum timed seconds per measurement.") var seconds: Double = 8
    @Option(help: "The machine's peak GFLOP/s, for the utilisation figures (default: measured).") var peak: Double?
    @Option(name: .customLong("data-dir"), help: "Class folders of images for \(ImageFolderWorkload.name).") var dataDir: String?
    @Option(help: "Data-loading threads for \(ImageFolderWorkload.name).") var workers: Int = 2
    @Option(help: "Epochs for \(ImageFolderWorkload.name).") var epochs: Int = 2
    @Flag(help: "One JSON object per workload.") var json = false
    @Option(name: .customLong("model"), parsing: .upToNextOption,
            help: "Instead of the workloads: zoo models at their default input size (`fovea models`), or `all`.")
    var models: [String] = []
    @Option(name: .customLong("onnx"), parsing: .upToNextOption,
            help: "Instead of the workloads: imported ONNX models at their declared input size.")
    var onnxFiles: [String] = []
    @Option(name: .customLong("batch-size"), help: "With --model or --onnx: the training and inference batch size (default 8).")
    var batchSize: Int?
    @Flag(name: .customLong("inference-only"), help: "Skip the training measurement (e.g. to profile inference alone).")
    var inferenceOnly = false
    @Option(help: ArgumentHelp("Arithmetic of convolutions and fully connected layers: fp32 (default), bf16 (mixed precision) or int8 (inference, quantized).",
                               valueName: "fp32|bf16|int8"))
    var precision = Precision.fp32

    func run() throws {
        // A figure measured in another precision than the one asked for would mislead: no fallback here.
        if let reason = precision.unsupportedReason { fail("--precision \(precision): \(reason); nothing to measure", code: 69) }
        try Precision.run(precision) { try runInPrecision() }
    }

    private func runInPrecision() throws {
        try runReportingErrors {
            if let peak, !(peak > 0) { throw TrainingError.invalidOption("--peak must be positive") }
            if let batchSize, let problem = TrainingOptions.outOfRange("--batch-size", batchSize, 1...TrainingOptions.maximumBatchSize) {
                throw TrainingError.invalidOption(problem)
            }
            if batchSize != nil && models.isEmpty && onnxFiles.isEmpty {
                throw TrainingError.invalidOption("--batch-size applies to --model and --onnx (the workloads have their own batch sizes)")
            }
            if !onnxFiles.isEmpty {
                for path in onnxFiles {
                    let model = try ONNXModel(contentsOf: path)
                    guard let image = model.imageShape else {
                        throw TrainingError.badModelFile(path: path, reason: "the graph's input is not (N, C, H, W) with fixed C, H and W")
                    }
                    let classes = try model.outputShape(forImage: image).last ?? 1
                    let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                    try measure(Workload(name: name, model: "onnx", classes: classes, input: image,
                                         trainBatch: batchSize ?? 8, inferenceBatch: batchSize ?? 8), prebuilt: model)
                }
                return
            }
            if !models.isEmpty {
                let batchSize = batchSize ?? 8
                let entries = try models == ["all"] ? ModelZoo.entries : models.map { try ModelZoo.entry($0) }
                for entry in entries {
                    let classes = ["LeNet", "CIFARResNet"].contains(entry.family) ? 10 : 1000
                    try measure(Workload(name: entry.name, model: entry.name, classes: classes, input: entry.inputSize,
                                         trainBatch: batchSize, inferenceBatch: batchSize))
                }
                if KernelProfile.enabled { FileHandle.standardError.write(Data((KernelProfile.summary() + "\n").utf8)) }
                return
            }
            let known = workloads.map(\.name) + [ImageFolderWorkload.name]
            for name in selected where !known.contains(name) {
                throw TrainingError.invalidOption("unknown workload '\(name)'; known: \(known.joined(separator: ", "))")
            }
            guard seconds > 0 else { throw TrainingError.invalidOption("--seconds must be positive") }
            if selected.contains(ImageFolderWorkload.name) {
                guard let dataDir else { throw TrainingError.invalidOption("\(ImageFolderWorkload.name) needs --data-dir DIR") }
                guard (0...64).contains(workers), epochs >= 1 else {
                    throw TrainingError.invalidOption("--workers must be in 0…64 and --epochs at least 1")
                }
                try ImageFolderWorkload.measure(root: dataDir, epochs: epochs, workers: workers, json: json)
                if selected.allSatisfy({ $0 == ImageFolderWorkload.name }) { return }
            }
            for workload in workloads where selected.isEmpty || selected.contains(workload.name) {
                try measure(workload)
            }
            if KernelProfile.enabled { FileHandle.standardError.write(Data((KernelProfile.summary() + "\n").utf8)) }
        }
    }

    /// The peak GFLOP/s the utilisation figures divide by: --peak, or measured once.
    var peakGFLOPs: Double {
        get throws {
            if let peak { return peak }
            if let measured = Self.measuredPeak { return measured }
            let measured = try MachinePeak.measureGFLOPs(precision: precision)
            Self.measuredPeak = measured
            return measured
        }
    }
    nonisolated(unsafe) static var measuredPeak: Double?

    /// Measures `workload` on `prebuilt` (an imported model) or on the zoo's model of that name.
    func measure(_ workload: Workload, prebuilt: Layer? = nil) throws {
        let peak = try peakGFLOPs
        // int8 is inference only (fovea quantize makes int8 models from trained ones).
        let skipTraining = inferenceOnly || precision == .int8
        // Each workload's peak memory on its own: give back what earlier workloads pooled and reset the
        // kernel's high-water mark of this process (Linux: writing 5 to /proc/self/clear_refs).
        Tensor.releasePooledMemory()
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        Initialization.seed(0)
        // torch_anchor.py's CIFAR ResNet has projection shortcuts (option B); run the same network.
        let model = try prebuilt ?? (workload.name == "resnet20_32"
            ? try CIFARResNet(depth: 20, classCount: workload.classes, inputChannels: workload.input[0], shortcut: .projection)
            : try ModelZoo.make(workload.model, classCount: workload.classes, inputChannels: workload.input[0]))
        var generator = SeededGenerator(seed: 1)
        func randomBatch(_ n: Int) throws -> Tensor {
            let shape = [n] + workload.input
            return try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
        }
        let images = try randomBatch(workload.trainBatch)
        let labels = (0..<workload.trainBatch).map { _ in Int32(generator.next() % UInt64(min(10, workload.classes))) }
        let optimizer = try SGD(parameters: model.parameters(), learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4)
        model.train()
        var step = 0
        let (trainTime, trainRepeats, trainAllocations) = skipTraining ? (Double.nan, 0, 0) : try timeMedian {
            _ = try trainStep(model: model, optimizer: optimizer, images: images, labels: labels, step: step, epoch: 1)
            step += 1
        }
        model.eval()
        let inferenceImages = try randomBatch(workload.inferenceBatch)
        if precision == .int8 {
            // Static quantization needs calibrated input ranges: the inference batch itself (the speed does not depend on them).
            try ActivationQuantizer.calibrate { _ = try Autodiff.withoutRecording { try model(inferenceImages) } }
        }
        let multiplyAdds = try OperationCounter.countMultiplyAdds {
            _ = try Autodiff.withoutRecording { try model(inferenceImages) }
        } / workload.inferenceBatch
        let (inferenceTime, inferenceRepeats, inferenceAllocations) = try timeMedian {
            _ = try Autodiff.withoutRecording { try model(inferenceImages) }
        }
        let trainRate = Double(workload.trainBatch) / trainTime
        let inferenceRate = Double(workload.inferenceBatch) / inferenceTime
        let trainGFLOPs = trainRate * Double(multiplyAdds) * 6 / 1e9
        let inferenceGFLOPs = inferenceRate * Double(multiplyAdds) * 2 / 1e9
        let peakMB = peakResidentMegabytes()
        if json {
            let object: [String: Any] = [
                "workload": workload.name, "framework": "fovea", "train_batch": workload.trainBatch,
                "train_img_s": skipTraining ? NSNull() : (trainRate * 10).rounded() / 10, "train_reps": trainRepeats,
                "infer_batch": workload.inferenceBatch, "infer_img_s": (inferenceRate * 10).rounded() / 10,
                "infer_reps": inferenceRepeats, "params": model.parameterCount, "peak_rss_mb": peakMB.rounded(),
                "train_gflops": skipTraining ? NSNull() : (trainGFLOPs * 10).rounded() / 10,
                "infer_gflops": (inferenceGFLOPs * 10).rounded() / 10,
                "train_peak_fraction": skipTraining ? NSNull() : (trainGFLOPs / peak * 1000).rounded() / 1000,
                "infer_peak_fraction": (inferenceGFLOPs / peak * 1000).rounded() / 1000,
                "peak_gflops": (peak * 10).rounded() / 10, "peak_measured": self.peak == nil,
                "train_allocs_per_step": skipTraining ? NSNull() : trainAllocations,
                "infer_allocs_per_call": inferenceAllocations,
                "precision": precision.rawValue, "isa": Precision.instructionSet,
            ]
            printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        } else {
            func padded(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
            let training = skipTraining ? "train (skipped)"
                : String(format: "train %9.1f img/s (%3d reps, %5.1f GFLOP/s, %5.1f %% of peak, %.1f allocs/step)",
                         trainRate, trainRepeats, trainGFLOPs, trainGFLOPs / peak * 100, trainAllocations)
            let name = precision == .fp32 ? workload.name : "\(workload.name) [\(precision)]"
            print(padded(name, 20) + " " + padded(training, 82)
                  + String(format: "   infer %9.1f img/s (%3d reps, %5.1f GFLOP/s, %5.1f %% of peak, %.1f allocs/call)   peak RSS %.0f MB",
                           inferenceRate, inferenceRepeats, inferenceGFLOPs, inferenceGFLOPs / peak * 100,
                           inferenceAllocations, peakMB))
        }
    }

    /// The process's resident-memory high-water mark (VmHWM, reset per workload), or `getrusage`'s if unreadable.
    func peakResidentMegabytes() -> Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") {
            return kilobytes / 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// Median seconds of `body` over repeats after one warm-up call, for at least `seconds` and 3 repeats, the repeat
    /// count, and the mean number of system allocations per repeat after the first timed one (the steady state: the
    /// first two calls of a training step still create optimizer state and pool blocks).
    func timeMedian(_ body: () throws -> Void) throws -> (Double, Int, Double) {
        try body()
        var times: [Double] = []
        var allocations = 0
        let start = DispatchTime.now().uptimeNanoseconds
        while times.count < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
            let t = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
            if times.count == 1 { allocations = Tensor.systemAllocationCount }
        }
        let allocated = Double(Tensor.systemAllocationCount - allocations) / Double(times.count - 1)
        times.sort()
        return (times[times.count / 2], times.count, allocated)
    }
}
