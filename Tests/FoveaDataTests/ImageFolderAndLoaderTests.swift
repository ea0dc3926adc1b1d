import Foundation
import FoveaData
import FoveaTensor
import Testing

/// Writes `root/<class>/<n>.png` grey images whose brightness encodes the class.
func writeImageFolder(_ root: String, classes: [String], perClass: Int, size: Int = 12) throws {
    for (label, name) in classes.enumerated() {
        let folder = root + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for n in 0..<perClass {
            let pixels = [UInt8](repeating: UInt8(40 + 60 * label + n), count: size * size)
            try Data(encodePNG(pixels, width: size, height: size, format: 0)).write(to: URL(fileURLWithPath: folder + "/\(n).png"))
        }
    }
}

@Suite("Image folders and the data loader")
struct ImageFolderAndLoaderTests {
    @Test("classes are sorted, indices stable, images indexed without decoding")
    func indexing() throws {
        let root = try scratchDirectory("folder")
        try writeImageFolder(root, classes: ["zebra", "ant", "moth"], perClass: 3)
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: root + "/ant/notes.txt"))
        let folder = try ImageFolder(root: root)
        #expect(folder.classNames == ["ant", "moth", "zebra"])
        #expect(folder.count == 9)
        #expect(folder.samples[3].label == 1 && folder.samples[3].path.hasSuffix("moth/0.png"))
        #expect(folder.prefix(4).count == 4)
    }

    @Test("an empty class folder or a missing root is a typed error")
    func badFolders() throws {
        let root = try scratchDirectory("folder-bad")
        try writeImageFolder(root, classes: ["a"], perClass: 1)
        try FileManager.default.createDirectory(atPath: root + "/b", withIntermediateDirectories: true)
        #expect(throws: DatasetError.emptyFolder(path: root + "/b", what: "images")) { try ImageFolder(root: root) }
        #expect(throws: DatasetError.missingDirectory(path: root + "/none")) { try ImageFolder(root: root + "/none") }
        let empty = try scratchDirectory("folder-empty")
        #expect(throws: DatasetError.emptyFolder(path: empty, what: "class sub-folders")) { try ImageFolder(root: empty) }
    }

    @Test("20,000 files are indexed by name alone, none decoded")
    func largeFolder() throws {
        // In memory (tmpfs) when the machine has it: creating 20,000 files on a busy disk can take half a minute.
        let memory = FileManager.default.isWritableFile(atPath: "/dev/shm")
        let root = memory ? "/dev/shm/fovea-folder-large-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            : try scratchDirectory("folder-large")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Every file is empty, so not one is an image: indexing that decoded them would fail.
        for label in 0..<20 {
            let folder = root + "/class\(label)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for n in 0..<1_000 {
                // open(2) rather than FileManager, whose atomic writes sync each file: seconds instead of a fraction.
                let descriptor = open(folder + "/\(n).jpg", O_CREAT | O_WRONLY | O_TRUNC, 0o644)
                guard descriptor >= 0 else { throw DatasetError.unreadableFile(path: folder, reason: "cannot create a test file") }
                close(descriptor)
            }
        }
        let folder = try ImageFolder(root: root)
        #expect(folder.count == 20_000 && folder.classNames.count == 20)
        // Names sort as strings: class0, class1, class10 … class19, class2 … class9; 0.jpg, 1.jpg, 10.jpg … 999.jpg.
        #expect(folder.classNames[2] == "class10" && folder.classNames[19] == "class9")
        #expect(folder.samples[19_999].label == 19 && folder.samples[19_999].path.hasSuffix("/class9/999.jpg"))
        #expect(folder.samples[1_000].label == 1 && folder.samples[1_000].path.hasSuffix("/class1/0.jpg"))
        #expect(throws: ImageError.empty(path: folder.samples[0].path)) { try ImageDecoder.decode(path: folder.samples[0].path) }
    }

    func loader(workers: Int, failAt: Set<Int> = [], dropLast: Bool = false, skip: Bool = false) -> DataLoader {
        DataLoader(sampleShape: [1, 2, 2], batchSize: 3, workers: workers, prefetch: 2, dropLast: dropLast,
                   skipBadSamples: skip) { index, epoch, destination in
            if failAt.contains(index) { throw DatasetError.badSample(index: index, path: "/data/\(index).png", reason: "damaged") }
            // A random value per (epoch, index), as an augmentation would draw.
            var generator = SeededGenerator(seed: 7, stream: UInt64(epoch), UInt64(index))
            for i in 0..<4 { destination[i] = Float(index) + generator.nextUniform() }
            return Int32(index % 5)
        }
    }

    func collect(_ stream: BatchStream) throws -> [[Float]] {
        var batches: [[Float]] = []
        while let (tensor, labels) = try stream.next() {
            #expect(labels.count == tensor.shape[0])
            batches.append(try tensor.toArray())
        }
        return batches
    }

    @Test("the same batches whatever the number of workers, also when starting mid-epoch")
    func determinism() throws {
        let order = (0..<11).map { ($0 * 7) % 11 }
        let reference = try collect(loader(workers: 0).batches(order: order, epoch: 2))
        #expect(reference.count == 4)
        for workers in [1, 2, 4] {
            #expect(try collect(loader(workers: workers).batches(order: order, epoch: 2)) == reference)
        }
        #expect(try collect(loader(workers: 2).batches(order: order, epoch: 2, startBatch: 2)) == Array(reference.suffix(2)))
        #expect(try collect(loader(workers: 2).batches(order: order, epoch: 3)) != reference)
    }

    @Test("a failing sample surfaces with its index and path, and the workers stop", arguments: [0, 2])
    func failure(workers: Int) throws {
        let stream = loader(workers: workers, failAt: [7]).batches(order: Array(0..<12), epoch: 0)
        var delivered = 0
        do {
            while try stream.next() != nil { delivered += 1 }
            Issue.record("no error surfaced")
        } catch let error as DatasetError {
            #expect(error == .badSample(index: 7, path: "/data/7.png", reason: "damaged"))
        }
        #expect(delivered == 2)
        stream.stop()
    }

    @Test("dropLast leaves out the short last batch only", arguments: [0, 2])
    func dropLast(workers: Int) throws {
        let order = Array(0..<11)
        let kept = try collect(loader(workers: workers, dropLast: true).batches(order: order, epoch: 1))
        let all = try collect(loader(workers: workers).batches(order: order, epoch: 1))
        #expect(all.count == 4 && kept == Array(all.prefix(3)))
        #expect(loader(workers: 0, dropLast: true).batchCount(samples: 11) == 3)
        #expect(try collect(loader(workers: workers, dropLast: true).batches(order: Array(0..<2), epoch: 1)).isEmpty)
    }

    @Test("skipped samples leave their batch, whole failed batches are passed over, the same for any workers")
    func skipping() throws {
        // Batches of 3 over 0..<12: sample 4 fails, and all of batch 2 (6, 7, 8).
        let bad: Set<Int> = [4, 6, 7, 8]
        func run(_ workers: Int) throws -> ([Batch], [SkippedSample]) {
            let stream = loader(workers: workers, failAt: bad, skip: true).batches(order: Array(0..<12), epoch: 5)
            var batches: [Batch] = []
            while let batch = try stream.nextBatch() { batches.append(batch) }
            return (batches, stream.skipped)
        }
        let (reference, skipped) = try run(0)
        #expect(reference.map(\.number) == [0, 1, 3])
        #expect(reference.map(\.indices) == [[0, 1, 2], [3, 5], [9, 10, 11]])
        #expect(reference.map(\.labels) == [[0, 1, 2], [3, 0], [4, 0, 1]])
        #expect(reference[1].skipped.map(\.index) == [4] && reference[1].images.shape == [2, 1, 2, 2])
        #expect(skipped.map(\.index) == [4, 6, 7, 8] && skipped.allSatisfy { $0.path == "/data/\($0.index).png" })
        // Row 1 of batch 1 holds sample 5's values, moved up over the skipped sample 4.
        #expect(try reference[1].images.toArray()[4] >= 5 && reference[1].images.toArray()[4] < 6)
        for workers in [1, 2, 4] {
            let (batches, again) = try run(workers)
            #expect(try batches.map { try $0.images.toArray() } == reference.map { try $0.images.toArray() })
            #expect(batches.map(\.indices) == reference.map(\.indices) && again == skipped)
        }
    }

    @Test("dropping a stream early does not hang")
    func earlyStop() throws {
        for _ in 0..<5 {
            let stream = loader(workers: 3).batches(order: Array(0..<300), epoch: 0)
            _ = try stream.next()
        }
    }

    @Test("random resized crops stay inside the image and are reproducible")
    func randomResizedCrop() {
        let image = DecodedImage(channels: 1, height: 40, width: 60, pixels: (0..<2400).map { UInt8($0 % 256) })
        let transform = ImageTransform.randomResizedCrop(size: 16, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3))
        var a = SeededGenerator(seed: 3), b = SeededGenerator(seed: 3)
        for _ in 0..<20 {
            let first = transform.apply(image, generator: &a), second = transform.apply(image, generator: &b)
            #expect(first == second && first.height == 16 && first.width == 16)
        }
        let centre = ImageTransform.centerCrop(size: 20).apply(image, generator: &a)
        #expect(centre.pixels[0] == image.pixels[10 * 60 + 20])
        let shorter = ImageTransform.resizeShorterSide(size: 20).apply(image, generator: &a)
        #expect(shorter.height == 20 && shorter.width == 30)
    }
}
