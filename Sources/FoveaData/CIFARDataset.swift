import Foundation

/// CIFAR-10 or CIFAR-100 from the official binary release (Krizhevsky 2009), held in memory.
///
/// CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of 1 label byte and
/// 3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32×32), class names in `batches.meta.txt`.
/// CIFAR-100: `train.bin` and `test.bin`, records of a coarse and a fine label byte and 3072 pixel bytes,
/// names in `fine_label_names.txt` / `coarse_label_names.txt`. The folder may be the one holding the files
/// or its parent (`cifar-10-batches-bin/`, `cifar-100-binary/`).
public struct CIFARDataset: LabeledImages {
    /// Which CIFAR and, for CIFAR-100, which labels.
    public enum Variant: Sendable, Equatable {
        case cifar10
        case cifar100(fine: Bool)

        /// 10, 100 fine or 20 coarse classes.
        public var classCount: Int { self == .cifar10 ? 10 : (self == .cifar100(fine: true) ? 100 : 20) }
        /// Label bytes before each record's pixels: CIFAR-100 stores the coarse label, then the fine one.
        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        /// Which of those bytes is the label used.
        var labelOffset: Int { self == .cifar100(fine: true) ? 1 : 0 }
    }

    public let variant: Variant
    public let count: Int
    public var channels: Int { 3 }
    public var height: Int { 32 }
    public var width: Int { 32 }
    public var classCount: Int { variant.classCount }
    public let pixels: [UInt8]
    public let labels: [Int32]
    /// Class names read from the release's name file, if it is there.
    public let classNames: [String]?
    /// The largest batch file read (the release's are 30.7 MB for CIFAR-10 and 154 MB for CIFAR-100's training set).
    public static let maximumFileBytes = 1 << 30

    /// Appends the records of one batch file's `data` to `pixels` and `labels`; `path` names it in errors. A record is a
    /// label byte (CIFAR-100: coarse, then fine) and 3072 pixel bytes; the file must hold at least one whole record and
    /// nothing else, and every label must be one of the variant's classes.
    public static func parseRecords(_ data: [UInt8], path: String, variant: Variant, pixels: inout [UInt8],
                                    labels: inout [Int32]) throws {
        let (labelBytes, classCount) = (variant.labelBytes, variant.classCount)
        let recordSize = labelBytes + 3072
        guard !data.isEmpty, data.count % recordSize == 0 else {
            throw DatasetError.partialRecord(path: path, byteCount: data.count, recordSize: recordSize)
        }
        let records = data.count / recordSize
        pixels.reserveCapacity(pixels.count + records * 3072)
        labels.reserveCapacity(labels.count + records)
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            for record in 0..<records {
                let base = record * recordSize
                let label = Int(bytes[base + variant.labelOffset])
                guard label < classCount else {
                    throw DatasetError.labelOutOfRange(path: path, index: record, label: label, classCount: classCount)
                }
                labels.append(Int32(label))
                pixels.append(contentsOf: bytes[(base + labelBytes)..<(base + recordSize)])
            }
        }
    }

    /// Loads a split from `directory`, keeping the first `limit` samples if given.
    /// - Throws: `DatasetError` naming the folder or file at fault (missing, wrong size, bad label).
    public init(directory: String, variant: Variant, split: IDXDataset.Split, limit: Int? = nil) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError.missingDirectory(path: directory)
        }
        let isTen = variant == .cifar10
        var folder = directory
        let nested = joinPath(directory, isTen ? "cifar-10-batches-bin" : "cifar-100-binary")
        if FileManager.default.fileExists(atPath: nested) { folder = nested }
        let names: [String] = switch (isTen, split) {
        case (true, .train): (1...5).map { "data_batch_\($0).bin" }
        case (true, .test): ["test_batch.bin"]
        case (false, .train): ["train.bin"]
        case (false, .test): ["test.bin"]
        }
        var pixels: [UInt8] = [], labels: [Int32] = []
        for name in names {
            let path = joinPath(folder, name)
            guard FileManager.default.fileExists(atPath: path) else {
                throw DatasetError.missingFile(directory: folder, expected: [name])
            }
            try Self.parseRecords(readWholeFile(path: path, limit: Self.maximumFileBytes), path: path, variant: variant,
                                  pixels: &pixels, labels: &labels)
        }
        let count = min(labels.count, limit ?? Int.max)
        self.variant = variant
        self.count = count
        self.pixels = count == labels.count ? pixels : Array(pixels.prefix(count * 3072))
        self.labels = Array(labels.prefix(count))
        let nameFile = joinPath(folder, isTen ? "batches.meta.txt"
                                    : (variant == .cifar100(fine: true) ? "fine_label_names.txt" : "coarse_label_names.txt"))
        // Names are optional: a missing name file leaves the classes numbered; one that is there must be readable.
        let nameBytes = FileManager.default.fileExists(atPath: nameFile) ? try readWholeFile(path: nameFile, limit: 1 << 20) : nil
        let listed = nameBytes.map { String(decoding: $0, as: UTF8.self) }?
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        classNames = listed?.count == variant.classCount ? listed : nil
    }
}
