import Foundation
import FoveaData
import FoveaTensor
import Testing

/// The folder under which this test process keeps its scratch folders; it is removed when the process exits.
let scratchRoot: String = {
    let root = NSTemporaryDirectory() + "fovea-data-tests-\(getpid())"
    try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "fovea-data-tests-\(getpid())") }
    return root
}()

/// A new empty folder for one test, under `scratchRoot`.
func scratchDirectory(_ name: String) throws -> String {
    let path = scratchRoot + "/\(name)-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes a CIFAR binary file of `records` records; pixel values encode (record, byte) so placement can be checked.
func writeCIFAR(_ path: String, records: Int, labelBytes: Int, label: (Int) -> [UInt8]) throws {
    var bytes: [UInt8] = []
    for record in 0..<records {
        bytes += label(record)
        bytes += (0..<3072).map { UInt8((record * 7 + $0) % 251) }
    }
    precondition(bytes.count == records * (labelBytes + 3072))
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

@Suite("CIFAR binary release")
struct CIFARTests {
    func makeCIFAR10(_ directory: String, perBatch: Int = 3) throws {
        for batch in 1...5 {
            try writeCIFAR(directory + "/data_batch_\(batch).bin", records: perBatch, labelBytes: 1) { [UInt8(($0 + batch) % 10)] }
        }
        try writeCIFAR(directory + "/test_batch.bin", records: 4, labelBytes: 1) { [UInt8($0)] }
        try "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".write(
            toFile: directory + "/batches.meta.txt", atomically: false, encoding: .utf8)
    }

    @Test("CIFAR-10 batches load in order with labels, planar RGB pixels and class names")
    func cifar10() throws {
        let root = try scratchDirectory("cifar10")
        let folder = root + "/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try makeCIFAR10(folder)
        let train = try CIFARDataset(directory: root, variant: .cifar10, split: .train)
        #expect(train.count == 15 && [train.channels, train.height, train.width] == [3, 32, 32])
        // Record 1 of batch 2 is sample 4; its label is (1 + 2) % 10 and its first byte is (1·7) % 251.
        #expect(train.labels[4] == 3)
        #expect(train.pixels[4 * 3072] == 7 && train.pixels[4 * 3072 + 1024] == UInt8((7 + 1024) % 251))
        #expect(train.classNames?[3] == "cat")
        let test = try CIFARDataset(directory: root, variant: .cifar10, split: .test, limit: 2)
        #expect(test.count == 2 && test.labels == [0, 1])
    }

    @Test("CIFAR-100 reads fine labels by default and coarse on request")
    func cifar100() throws {
        let folder = try scratchDirectory("cifar100")
        try writeCIFAR(folder + "/train.bin", records: 5, labelBytes: 2) { [UInt8($0 % 20), UInt8(50 + $0)] }
        try writeCIFAR(folder + "/test.bin", records: 2, labelBytes: 2) { [UInt8($0), UInt8(99 - $0)] }
        let fine = try CIFARDataset(directory: folder, variant: .cifar100(fine: true), split: .train)
        #expect(fine.labels == [50, 51, 52, 53, 54] && fine.classCount == 100)
        let coarse = try CIFARDataset(directory: folder, variant: .cifar100(fine: false), split: .test)
        #expect(coarse.labels == [0, 1] && coarse.classCount == 20)
        #expect(fine.pixels[3072 * 2] == 14)
    }

    @Test("malformed CIFAR files are typed errors naming the file")
    func malformed() throws {
        let folder = try scratchDirectory("cifar-bad")
        try makeCIFAR10(folder)
        let path = folder + "/data_batch_3.bin"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: path))
        #expect(throws: DatasetError.partialRecord(path: path, byteCount: 3 * 3073 - 10, recordSize: 3073)) {
            try CIFARDataset(directory: folder, variant: .cifar10, split: .train)
        }
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(throws: DatasetError.self) { try CIFARDataset(directory: folder, variant: .cifar10, split: .train) }
        try writeCIFAR(path, records: 2, labelBytes: 1) { [$0 == 1 ? 10 : 0] }
        #expect(throws: DatasetError.labelOutOfRange(path: path, index: 1, label: 10, classCount: 10)) {
            try CIFARDataset(directory: folder, variant: .cifar10, split: .train)
        }
        try FileManager.default.removeItem(atPath: path)
        #expect(throws: DatasetError.missingFile(directory: folder, expected: ["data_batch_3.bin"])) {
            try CIFARDataset(directory: folder, variant: .cifar10, split: .train)
        }
        #expect(throws: DatasetError.missingDirectory(path: folder + "/nope")) {
            try CIFARDataset(directory: folder + "/nope", variant: .cifar10, split: .test)
        }
    }
}
