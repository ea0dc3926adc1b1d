import CImageCodecs
import Foundation
import Testing
@testable import FoveaData

/// A fresh directory under the system temporary directory, removed by `cleanUp`.
private struct Scratch {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "fovea-idx-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `bytes` to `name` inside the directory and returns the full path.
    @discardableResult
    func write(_ bytes: [UInt8], to name: String) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: path) }
}

/// Gzip-compresses `bytes` with zlib (windowBits 16 + 15 selects the gzip wrapper).
private func gzip(_ bytes: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    let initialised = deflateInit2_(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                                    zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    precondition(initialised == Z_OK, "deflateInit2_ failed")
    defer { deflateEnd(&stream) }
    var input = bytes
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
    let produced = input.withUnsafeMutableBufferPointer { source in
        output.withUnsafeMutableBufferPointer { target -> Int in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            stream.next_out = target.baseAddress
            stream.avail_out = uInt(target.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END, "deflate did not finish")
            return target.count - Int(stream.avail_out)
        }
    }
    return Array(output.prefix(produced))
}

/// Deterministic test pixels: a different byte pattern per sample.
private func samplePixels(count: Int, height: Int, width: Int) -> [UInt8] {
    (0..<count * height * width).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 / 7) }
}

/// Writes a consistent `train` split (gzip images, raw labels) of `count` 3×2 images.
private func writeTrainSplit(in scratch: Scratch, labels: [UInt8], imageCount: Int? = nil) throws {
    let count = imageCount ?? labels.count
    let images = IDXFile(dimensions: [count, 3, 2], bytes: samplePixels(count: count, height: 3, width: 2))
    try scratch.write(gzip(images.encoded()), to: "train-images-idx3-ubyte.gz")
    try scratch.write(IDXFile(dimensions: [labels.count], bytes: labels).encoded(), to: "train-labels-idx1-ubyte")
}

@Suite("IDX files")
struct IDXFileTests {
    @Test("raw and gzip files round-trip", arguments: [false, true])
    func roundTrip(compressed: Bool) throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let original = IDXFile(dimensions: [4, 5, 3], bytes: samplePixels(count: 4, height: 5, width: 3))
        let raw = original.encoded()
        #expect(raw.prefix(8) == [0, 0, 0x08, 3, 0, 0, 0, 4])
        let path = try scratch.write(compressed ? gzip(raw) : raw, to: "file")
        #expect(try IDXFile.read(path: path) == original)
    }

    @Test("concatenated gzip members decompress as one stream")
    func concatenatedMembers() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let raw = IDXFile(dimensions: [50], bytes: (0..<50).map { UInt8($0) }).encoded()
        let path = try scratch.write(gzip(Array(raw.prefix(20))) + gzip(Array(raw.dropFirst(20))), to: "file.gz")
        #expect(try IDXFile.read(path: path).bytes == (0..<50).map { UInt8($0) })
    }

    @Test("each malformed header or size gives its specific error")
    func malformed() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let good = IDXFile(dimensions: [2, 3], bytes: [1, 2, 3, 4, 5, 6]).encoded()  // 12 + 6 bytes

        let short = try scratch.write(Array(good.dropLast(2)), to: "short")
        #expect(throws: DatasetError.truncated(path: short, expectedBytes: 18, actualBytes: 16)) {
            try IDXFile.read(path: short)
        }
        let headerOnly = try scratch.write(Array(good.prefix(6)), to: "header")
        #expect(throws: DatasetError.truncated(path: headerOnly, expectedBytes: 12, actualBytes: 6)) {
            try IDXFile.read(path: headerOnly)
        }
        let long = try scratch.write(good + [9, 9, 9], to: "long")
        #expect(throws: DatasetError.sizeMismatch(path: long, expectedBytes: 18, actualBytes: 21)) {
            try IDXFile.read(path: long)
        }
        let magic = try scratch.write([0x01, 0x02, 0x08, 0x02] + good.dropFirst(4), to: "magic")
        #expect(throws: DatasetError.badMagic(path: magic, found: 0x0102_0802)) { try IDXFile.read(path: magic) }
        let floats = try scratch.write([0, 0, 0x0D, 2] + good.dropFirst(4), to: "floats")
        #expect(throws: DatasetError.unsupportedDataType(path: floats, code: 0x0D)) { try IDXFile.read(path: floats) }
        let huge: [UInt8] = [0, 0, 0x08, 3] + Array(repeating: 0xFF, count: 12)
        let hugePath = try scratch.write(huge, to: "huge")
        let limit = 0xFFFF_FFFF
        #expect(throws: DatasetError.dimensionsTooLarge(path: hugePath, dimensions: [limit, limit, limit])) {
            try IDXFile.read(path: hugePath)
        }
        let empty = try scratch.write([], to: "empty")
        #expect(throws: DatasetError.truncated(path: empty, expectedBytes: 4, actualBytes: 0)) {
            try IDXFile.read(path: empty)
        }
    }

    @Test("damaged gzip streams are reported as corrupt, never crash or hang")
    func corruptGzip() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let compressed = gzip(IDXFile(dimensions: [64, 8], bytes: samplePixels(count: 64, height: 8, width: 1)).encoded())
        var flipped = compressed
        for offset in 12..<min(24, compressed.count - 8) { flipped[offset] ^= 0x5A }
        let cases: [(name: String, bytes: [UInt8], reason: String?)] = [
            ("flipped.gz", flipped, nil),
            ("truncated.gz", Array(compressed.dropLast(9)), "truncated"),
            ("header-only.gz", Array(compressed.prefix(10)), "truncated"),
            ("trailing.gz", compressed + [0x00, 0x01, 0x02], "unexpected data"),
        ]
        for (name, bytes, reason) in cases {
            let path = try scratch.write(bytes, to: name)
            let error = #expect(throws: DatasetError.self) { try IDXFile.read(path: path) }
            guard case let .corruptGzip(errorPath, message)? = error else {
                Issue.record("\(name): expected corruptGzip, got \(String(describing: error))")
                continue
            }
            #expect(errorPath == path)
            if let reason { #expect(message.contains(reason), "\(name): \(message)") }
        }
    }

    @Test("descriptions name the file")
    func descriptions() {
        let errors: [DatasetError] = [
            .truncated(path: "/d/x", expectedBytes: 10, actualBytes: 3),
            .labelOutOfRange(path: "/d/x", index: 7, label: 12, classCount: 10),
            .corruptGzip(path: "/d/x", reason: "bad"),
            .badMagic(path: "/d/x", found: 0xDEAD_BEEF),
        ]
        for error in errors { #expect(error.description.contains("/d/x")) }
        #expect(DatasetError.badMagic(path: "p", found: 0xDEAD_BEEF).description.contains("0xDEADBEEF"))
    }
}

@Suite("IDX datasets")
struct IDXDatasetTests {
    @Test("loads a split, honours the limit and finds the dotted .gz variant")
    func loadsSplit() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let labels: [UInt8] = [3, 1, 4, 1, 5, 9, 2]
        try writeTrainSplit(in: scratch, labels: labels)
        let dataset = try IDXDataset(directory: scratch.path, split: .train)
        #expect(dataset.count == 7 && dataset.height == 3 && dataset.width == 2 && dataset.classCount == 10)
        #expect(dataset.pixels == samplePixels(count: 7, height: 3, width: 2))
        #expect(dataset.labels == labels.map { Int32($0) })
        #expect(dataset.imagesPath.hasSuffix("train-images-idx3-ubyte.gz"))

        let limited = try IDXDataset(directory: scratch.path, split: .train, limit: 3)
        #expect(limited.count == 3 && limited.labels == [3, 1, 4])
        #expect(limited.pixels == Array(samplePixels(count: 7, height: 3, width: 2).prefix(18)))

        let test = IDXFile(dimensions: [2, 1, 1], bytes: [10, 20])
        try scratch.write(gzip(test.encoded()), to: "t10k-images.idx3-ubyte.gz")
        try scratch.write(IDXFile(dimensions: [2], bytes: [0, 1]).encoded(), to: "t10k-labels.idx1-ubyte")
        let testSplit = try IDXDataset(directory: scratch.path, split: .test, classCount: 2)
        #expect(testSplit.pixels == [10, 20] && testSplit.labels == [0, 1])
        #expect(IDXDataset.availableSplits(in: scratch.path) == [.train, .test])
    }

    @Test("inconsistent or missing files give typed errors naming them")
    func invalidDatasets() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let missing = scratch.path + "/nowhere"
        #expect(throws: DatasetError.missingDirectory(path: missing)) {
            try IDXDataset(directory: missing, split: .train)
        }
        try writeTrainSplit(in: scratch, labels: [0, 1, 2])
        #expect(throws: DatasetError.missingFile(
            directory: scratch.path, expected: IDXDataset.candidateNames("t10k-images", rank: 3))) {
            try IDXDataset(directory: scratch.path, split: .test)
        }
        let imagesPath = scratch.path + "/train-images-idx3-ubyte.gz"
        let labelsPath = scratch.path + "/train-labels-idx1-ubyte"

        try writeTrainSplit(in: scratch, labels: [0, 1, 2], imageCount: 4)
        #expect(throws: DatasetError.countMismatch(
            imagesPath: imagesPath, imageCount: 4, labelsPath: labelsPath, labelCount: 3)) {
            try IDXDataset(directory: scratch.path, split: .train)
        }

        try writeTrainSplit(in: scratch, labels: [0, 1, 2, 10, 11])
        #expect(throws: DatasetError.labelOutOfRange(path: labelsPath, index: 3, label: 10, classCount: 10)) {
            try IDXDataset(directory: scratch.path, split: .train, limit: 2)
        }
        #expect(throws: DatasetError.labelOutOfRange(path: labelsPath, index: 2, label: 2, classCount: 2)) {
            try IDXDataset(directory: scratch.path, split: .train, classCount: 2)
        }

        try scratch.write(IDXFile(dimensions: [5, 6], bytes: Array(repeating: 0, count: 30)).encoded(),
                          to: "train-images-idx3-ubyte")  // raw is preferred over .gz
        #expect(throws: DatasetError.unexpectedShape(
            path: scratch.path + "/train-images-idx3-ubyte",
            expected: "[count, height, width] with nonzero height and width", found: [5, 6])) {
            try IDXDataset(directory: scratch.path, split: .train)
        }
        #expect(throws: DatasetError.invalidParameter(name: "sample limit", value: -1, reason: "must not be negative")) {
            try IDXDataset(directory: scratch.path, split: .train, limit: -1)
        }
    }

    @Test("mean and unbiased standard deviation match a two-pass recomputation")
    func statistics() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        // Two pixels 0 and 255: mean 0.5, unbiased variance (0.25 + 0.25) / 1, so std = √0.5.
        try scratch.write(IDXFile(dimensions: [1, 1, 2], bytes: [0, 255]).encoded(), to: "t10k-images-idx3-ubyte")
        try scratch.write(IDXFile(dimensions: [1], bytes: [0]).encoded(), to: "t10k-labels-idx1-ubyte")
        let tiny = try IDXDataset(directory: scratch.path, split: .test).meanAndStandardDeviation()
        #expect(abs(tiny.mean - 0.5) < 1e-15 && abs(tiny.std - 0.5.squareRoot()) < 1e-15)

        try writeTrainSplit(in: scratch, labels: [UInt8](repeating: 0, count: 40))
        let dataset = try IDXDataset(directory: scratch.path, split: .train)
        let scaled = dataset.pixels.map { Double($0) / 255 }
        let mean = scaled.reduce(0, +) / Double(scaled.count)
        let variance = scaled.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(scaled.count - 1)
        let result = dataset.meanAndStandardDeviation()
        #expect(abs(result.mean - mean) < 1e-12)
        #expect(abs(result.std - variance.squareRoot()) < 1e-12)
    }

    @Test("batch order is a reproducible permutation that changes with the epoch")
    func batchOrder() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try writeTrainSplit(in: scratch, labels: [UInt8](repeating: 1, count: 100))
        let dataset = try IDXDataset(directory: scratch.path, split: .train)
        #expect(dataset.batchOrder(epoch: 0, seed: 7, shuffle: false) == Array(0..<100))
        let first = dataset.batchOrder(epoch: 0, seed: 7, shuffle: true)
        #expect(first.sorted() == Array(0..<100))
        #expect(first != Array(0..<100))
        #expect(first == dataset.batchOrder(epoch: 0, seed: 7, shuffle: true))
        #expect(first != dataset.batchOrder(epoch: 1, seed: 7, shuffle: true))
        #expect(first != dataset.batchOrder(epoch: 0, seed: 8, shuffle: true))
    }

    @Test("fillBatch writes normalised NCHW pixels and labels in index order")
    func fillBatch() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try writeTrainSplit(in: scratch, labels: [0, 1, 2, 3, 4])
        let dataset = try IDXDataset(directory: scratch.path, split: .train)
        let indices = [4, 0, 2][...]
        var images = [Float](repeating: .nan, count: 3 * 6)
        var labels = [Int32](repeating: -1, count: 3)
        images.withUnsafeMutableBufferPointer { imageBuffer in
            labels.withUnsafeMutableBufferPointer { labelBuffer in
                dataset.fillBatch(indices: indices, mean: 0.25, std: 0.5,
                                  into: imageBuffer.baseAddress!, labels: labelBuffer.baseAddress!)
            }
        }
        #expect(labels == [4, 0, 2])
        for (slot, index) in indices.enumerated() {
            for offset in 0..<6 {
                let pixel = Float(dataset.pixels[index * 6 + offset])
                #expect(images[slot * 6 + offset] == (pixel / 255 - 0.25) / 0.5)
            }
        }
    }

    @Test("dataset directories resolve: explicit, then FOVEA_DATA (subfolder first), then default")
    func resolution() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let info = try DatasetInfo.named("Fashion-MNIST")
        #expect(info.classCount == 10 && info.classNames[9] == "Ankle boot")
        #expect(info.resolveDirectory(dataDirectory: "/x", environment: ["FOVEA_DATA": scratch.path]) == "/x")
        #expect(info.resolveDirectory(dataDirectory: nil, environment: ["FOVEA_DATA": scratch.path]) == scratch.path)
        try FileManager.default.createDirectory(atPath: scratch.path + "/fashion-mnist", withIntermediateDirectories: true)
        #expect(info.resolveDirectory(dataDirectory: nil, environment: ["FOVEA_DATA": scratch.path])
                == scratch.path + "/fashion-mnist")
        #expect(info.resolveDirectory(dataDirectory: nil, environment: [:]) == "/usr/share/datasets/fashion-mnist")
        #expect(DatasetInfo.mnist.classNames == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
        #expect(throws: DatasetError.unknownDataset(name: "svhn", known: DatasetInfo.known.map(\.name) + ["imagefolder"])) {
            try DatasetInfo.named("svhn")
        }
    }
}
