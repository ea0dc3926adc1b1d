import CImageCodecs
import Foundation
import FoveaData
import FoveaTensor
@testable import FoveaTrain
import Testing

/// JPEG bytes of interleaved RGB pixels, 4:2:0 as cameras and PIL write them, through TurboJPEG.
func jpegBytes(_ rgb: [UInt8], width: Int, height: Int) throws -> [UInt8] {
    guard let handle = tjInitCompress() else { throw TensorError.invalidArgument(operation: "jpegBytes", message: "no TurboJPEG") }
    defer { tjDestroy(handle) }
    var buffer: UnsafeMutablePointer<UInt8>?
    var size: UInt = 0
    guard tjCompress2(handle, rgb, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue), &buffer, &size,
                      Int32(TJSAMP_420.rawValue), 90, 0) == 0 else {
        throw TensorError.invalidArgument(operation: "jpegBytes", message: String(cString: tjGetErrorStr2(handle)))
    }
    defer { tjFree(buffer) }
    return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
}

/// An RGB image whose colour says its class (dark red or light blue) under stripes and noise, `width` × `height`.
func classImage(label: Int, n: Int, width: Int, height: Int) -> [UInt8] {
    var generator = SeededGenerator(seed: UInt64(label * 1_000 + n))
    let base: [Int] = label == 0 ? [150, 40, 30] : [60, 120, 210]
    var pixels: [UInt8] = []
    for y in 0..<height {
        for x in 0..<width {
            let stripe = ((x + 2 * y + n) / 5) % 2 == 0 ? 20 : -20
            for c in 0..<3 { pixels.append(UInt8(clamping: base[c] + stripe + Int(generator.next() % 31) - 15)) }
        }
    }
    return pixels
}

/// Writes `root/{train,val}/{dark,light}/` with JPEGs and PNGs of varied sizes; returns the training files.
@discardableResult
func writeMixedImageFolder(_ root: String, perClass: Int = 24) throws -> [String] {
    var written: [String] = []
    for split in ["train", "val"] {
        for (label, name) in ["dark", "light"].enumerated() {
            let folder = "\(root)/\(split)/\(name)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for n in 0..<(split == "train" ? perClass : 8) {
                let (width, height) = (36 + (n % 4) * 7, 30 + (n % 3) * 9)
                let rgb = classImage(label: label, n: n, width: width, height: height)
                let path = "\(folder)/\(n).\(n % 3 == 0 ? "png" : "jpg")"
                let bytes = n % 3 == 0 ? PNGEncoder.encode(pixels: planar(rgb, width * height), channels: 3, height: height, width: width)
                    : try jpegBytes(rgb, width: width, height: height)
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                if split == "train" { written.append(path) }
            }
        }
    }
    return written
}

/// Interleaved RGB → planar.
func planar(_ rgb: [UInt8], _ plane: Int) -> [UInt8] { (0..<(3 * plane)).map { rgb[($0 % plane) * 3 + $0 / plane] } }

@Suite("Image folders through ImageClassificationSet and fovea train", .serialized)
struct ImageFolderTrainingTests {
    func sets(_ root: String, options: TrainingOptions = TrainingOptions()) throws -> (ImageClassificationSet, ImageClassificationSet) {
        var options = options
        (options.dataset, options.dataDirectory, options.imageSize) = ("imagefolder", root, 24)
        let data = try Trainer(options: options).loadData()
        return (data.train, data.test)
    }

    @Test("--classes and --limit-per-class on an image folder: the kept class relabelled, N of its files, the test folder of that class")
    func classSubset() throws {
        let root = try temporaryDirectory("folder-subset")
        _ = try writeMixedImageFolder(root, perClass: 12)
        var options = TrainingOptions()
        (options.classes, options.limitPerClass, options.seed) = (["light"], 5, 4)
        let (train, test) = try sets(root, options: options)
        #expect(train.info.classNames == ["light"] && test.info.classNames == ["light"])
        guard case let .folder(trainFolder, _, _) = train.source, case let .folder(testFolder, _, _) = test.source else {
            Issue.record("not folders"); return
        }
        #expect(trainFolder.samples.count == 5 && testFolder.samples.count == 8)
        #expect((trainFolder.samples + testFolder.samples).allSatisfy { $0.label == 0 && $0.path.contains("/light/") })
        options.seed = 5
        let (other, _) = try sets(root, options: options)
        guard case let .folder(otherFolder, _, _) = other.source else { return }
        #expect(otherFolder.samples.map(\.path) != trainFolder.samples.map(\.path), "the seed does not choose the samples")
    }

    @Test("the fused sample path writes what sampleBytes, the normalisation and random erasing give",
          arguments: [[], [ImageTransform.randomErasing(probability: 0.7, scale: 0.02...0.33, ratio: 0.3...3.3, randomValue: true)]])
    func fusedEqualsGeneral(_ augmentations: [ImageTransform]) throws {
        let root = try temporaryDirectory("fused-set")
        try writeMixedImageFolder(root, perClass: 6)
        var options = TrainingOptions()
        options.augmentations = augmentations
        let (train, test) = try sets(root, options: options)
        for (set, epoch) in [(train, 3 as Int?), (test, nil)] {
            guard case let .folder(_, transforms, shape) = set.source else { throw TrainingError.invalidOption("not a folder") }
            #expect(ImagePipeline(transforms: transforms, shape: shape, mean: set.mean, std: set.std) != nil, "not the fused path")
            let plane = 24 * 24
            for index in 0..<set.count {
                var fused = [Float](repeating: .nan, count: 3 * plane)
                let label = try fused.withUnsafeMutableBufferPointer { try set.sample(index, epoch: epoch, into: $0.baseAddress!) }
                let (image, expectedLabel) = try set.sampleBytes(index, epoch: epoch)
                var general = image.pixels.enumerated().map { i, p in (Float(p) / 255 - set.mean[i / plane]) / set.std[i / plane] }
                if let epoch {
                    general.withUnsafeMutableBufferPointer {
                        set.erase($0.baseAddress!, channels: 3, height: 24, width: 24, index: index, epoch: epoch)
                    }
                }
                #expect(label == expectedLabel && fused == general, "sample \(index), epoch \(String(describing: epoch))")
            }
        }
    }

    @Test("a bad file stops its epoch with its path and index (no hang); skipped, it leaves its batch alone",
          arguments: [0, 2])
    func badFile(workers: Int) throws {
        let root = try temporaryDirectory("bad-file-set")
        let files = try writeMixedImageFolder(root, perClass: 10)
        let broken = files[13]
        let whole = try Data(contentsOf: URL(fileURLWithPath: broken))
        try whole.prefix(whole.count / 3).write(to: URL(fileURLWithPath: broken))
        let (train, _) = try sets(root)
        guard case let .folder(folder, _, _) = train.source else { throw TrainingError.invalidOption("not a folder") }
        let index = try #require(folder.samples.firstIndex { $0.path == broken })
        let order = train.order(epoch: 1, seed: 0, shuffle: true)
        let position = try #require(order.firstIndex(of: index))
        let stream = train.loader(batchSize: 4, workers: workers, train: true).batches(order: order, epoch: 1)
        var delivered = 0
        do {
            while try stream.next() != nil { delivered += 1 }
            Issue.record("the damaged file was not reported")
        } catch let DatasetError.badSample(failed, path, reason) {
            #expect(failed == index && path == broken && reason.contains(broken), "\(reason)")
            #expect(delivered == position / 4)
        }
        stream.stop()
        // Skipping: the same batches for 0 and `workers` threads, without the damaged sample.
        func batches(_ workers: Int) throws -> ([[Float]], [[Int32]], [SkippedSample]) {
            let stream = train.loader(batchSize: 4, workers: workers, train: true, skipBadSamples: true).batches(order: order, epoch: 1)
            var (images, labels): ([[Float]], [[Int32]]) = ([], [])
            while let batch = try stream.nextBatch() {
                images.append(try batch.images.toArray())
                labels.append(batch.labels)
                #expect(!batch.indices.contains(index))
            }
            return (images, labels, stream.skipped)
        }
        let (images, labels, skipped) = try batches(workers)
        #expect(labels.joined().count == train.count - 1)
        #expect(skipped.count == 1 && skipped.first?.index == index && skipped.first?.path == broken)
        let reference = try batches(0)
        #expect(images == reference.0 && labels == reference.1)
    }

    @Test("fovea train on an image folder of JPEGs and PNGs: --drop-last, --skip-bad-files, --max-image-pixels")
    func commandLine() throws {
        let root = try temporaryDirectory("mixed-folder"), output = try temporaryDirectory("mixed-run")
        let files = try writeMixedImageFolder(root)
        try Data("not a JPEG".utf8).write(to: URL(fileURLWithPath: files[5]))
        try Data().write(to: URL(fileURLWithPath: root + "/val/light/7.jpg"))
        let common = ["train", "--model", "lenet5", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "28",
                      "--batch-size", "10", "--optimizer", "adam", "--lr", "0.003", "--workers", "2"]
        let stopped = try runFovea(common + ["--epochs", "1", "--quiet"])
        #expect(stopped.status == 65 && stopped.error.contains(files[5]), "\(stopped.error)")
        let run = try runFovea(common + ["--epochs", "3", "--skip-bad-files", "--drop-last", "--output", output, "--json"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.error.contains("test samples that could not be loaded"), "\(run.error)")
        let report = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        #expect((report?["accuracy"] as? Double ?? 0) >= 0.9, "\(String(describing: report?["accuracy"]))")
        #expect(report?["samples"] as? Int == 15, "the damaged validation image is left out")
        let lines = try String(contentsOfFile: output + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        var trainingSkips = 0
        for line in lines {
            let metrics = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let skipped = metrics?["skipped_files"] as? [String] ?? []
            // The damaged training file is skipped when its epoch loads it: --drop-last leaves out 8 of the 48.
            let expected = [root + "/val/light/7.jpg"] + (skipped.contains(files[5]) ? [files[5]] : [])
            #expect(skipped.sorted() == expected.sorted() && metrics?["skipped_samples"] as? Int == expected.count)
            trainingSkips += expected.count - 1
        }
        #expect(trainingSkips > 0 && run.error.contains(files[5]), "\(run.error)")
        // 48 training files: 4 full batches of 10 with --drop-last (not 5) per epoch.
        let (_, progress) = try Checkpoint.readMetadata(output + "/" + Trainer.lastCheckpointName)
        #expect(progress.step == 3 * 4)
        let limited = try runFovea(common + ["--epochs", "1", "--max-image-pixels", "1000", "--quiet"])
        #expect(limited.status == 65 && limited.error.contains("more than the limit of 1000"), "\(limited.error)")
        #expect(try runFovea(common + ["--max-image-pixels", "0"]).status == 64)
    }

    @Test("fovea train --model resnet20 --dataset cifar10 trains end to end on CIFAR-format files")
    func cifar10() throws {
        let data = try temporaryDirectory("cifar-run-data"), output = try temporaryDirectory("cifar-run")
        // Two colour-coded classes among the ten labels, 32×32 planar RGB records of 1 + 3,072 bytes.
        func records(_ count: Int, _ batch: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            for n in 0..<count {
                let label = (n + batch) % 2
                let rgb = classImage(label: label, n: n + 100 * batch, width: 32, height: 32)
                bytes += [UInt8(label * 7)] + planar(rgb, 1_024)
            }
            return bytes
        }
        for batch in 1...5 { try Data(records(16, batch)).write(to: URL(fileURLWithPath: "\(data)/data_batch_\(batch).bin")) }
        try Data(records(40, 0)).write(to: URL(fileURLWithPath: "\(data)/test_batch.bin"))
        // One step per epoch (a ResNet-20 step takes seconds in a debug build): the loss must fall on the training set.
        let run = try runFovea(["train", "--model", "resnet20", "--dataset", "cifar10", "--data-dir", data, "--epochs", "2",
                                "--batch-size", "80", "--lr", "0.05", "--output", output, "--json", "--quiet"])
        #expect(run.status == 0, "\(run.error)")
        let report = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        #expect(report?["samples"] as? Int == 40 && (report?["classes"] as? [String])?.count == 10)
        let losses = try String(contentsOfFile: output + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["train_loss"] as? Double ?? .nan
        }
        #expect(losses.count == 2 && losses[1] < losses[0], "\(losses)")
        for file in ["metrics.jsonl", "report.json", "model.safetensors", "model.json"] {
            #expect(FileManager.default.fileExists(atPath: output + "/" + file), "\(file) not written")
        }
        // A batch file of the wrong size is bad data (exit 65) naming the file.
        try Data(records(3, 1).dropLast(5)).write(to: URL(fileURLWithPath: "\(data)/data_batch_2.bin"))
        let bad = try runFovea(["train", "--model", "resnet20", "--dataset", "cifar10", "--data-dir", data, "--epochs", "1"])
        #expect(bad.status == 65 && bad.error.contains("data_batch_2.bin"), "\(bad.error)")
    }
}
