/// Why a dataset could not be found or read; every case names the file (or directory) at fault.
///
/// These errors describe bad *data*, never bad code: the command-line tool maps them to exit
/// code 65 and prints `description`, which is written as one sentence a user can act on.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The dataset directory does not exist or is not a directory.
    case missingDirectory(path: String)
    /// None of the accepted names for a required file exists in `directory`.
    case missingFile(directory: String, expected: [String])
    /// The file exists but could not be opened or read.
    case unreadableFile(path: String, reason: String)
    /// The file (after decompression) ends before its header or data is complete.
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    /// The file (after decompression) holds more bytes than its header describes.
    case sizeMismatch(path: String, expectedBytes: Int, actualBytes: Int)
    /// The decompressed stream goes on past the `expectedBytes` its header describes (reading stopped there).
    case exceedsHeader(path: String, expectedBytes: Int)
    /// A file of fixed-size records (CIFAR) is empty or ends inside a record.
    case partialRecord(path: String, byteCount: Int, recordSize: Int)
    /// The first four bytes are not an IDX magic number (`00 00 <type> <rank>`).
    case badMagic(path: String, found: UInt32)
    /// The IDX element type code is not 0x08 (unsigned byte), the only type the MNIST family uses.
    case unsupportedDataType(path: String, code: UInt8)
    /// The header declares dimensions whose element count overflows or exceeds the size limit.
    case dimensionsTooLarge(path: String, dimensions: [Int])
    /// The file, or its decompressed contents, is larger than the `limitBytes` Fovea will load.
    case tooLarge(path: String, limitBytes: Int)
    /// The file is well formed but has the wrong rank or a zero-sized image dimension.
    case unexpectedShape(path: String, expected: String, found: [Int])
    /// A label is not in `0..<classCount`; `index` is the sample's position in the label file.
    case labelOutOfRange(path: String, index: Int, label: Int, classCount: Int)
    /// The image and label files disagree on the number of samples.
    case countMismatch(imagesPath: String, imageCount: Int, labelsPath: String, labelCount: Int)
    /// A `.gz` file could not be decompressed (corrupt, truncated, or followed by garbage).
    case corruptGzip(path: String, reason: String)
    /// A parameter such as `classCount` or `limit` has a value that cannot be honoured.
    case invalidParameter(name: String, value: Int, reason: String)
    /// No dataset of this name is known; `known` lists the names that are.
    case unknownDataset(name: String, known: [String])
    /// A folder that must hold something (class folders, images) holds nothing usable.
    case emptyFolder(path: String, what: String)
    /// One sample of a dataset could not be loaded (e.g. a damaged image), with its index.
    case badSample(index: Int, path: String, reason: String)

    /// One sentence saying what is wrong and where.
    public var description: String {
        switch self {
        case let .missingDirectory(path):
            return "Dataset directory '\(path)' does not exist or is not a directory."
        case let .missingFile(directory, expected):
            let names = expected.map { "'\($0)'" }.joined(separator: " or ")
            return "Dataset directory '\(directory)' has no file named \(names)."
        case let .unreadableFile(path, reason):
            return "Cannot read '\(path)': \(reason)."
        case let .truncated(path, expectedBytes, actualBytes):
            return "File '\(path)' is truncated: expected \(expectedBytes) bytes but found only \(actualBytes)."
        case let .sizeMismatch(path, expectedBytes, actualBytes) where actualBytes < expectedBytes:
            return "File '\(path)' has \(actualBytes) bytes but its header describes \(expectedBytes); "
                + "\(expectedBytes - actualBytes) bytes are missing."
        case let .sizeMismatch(path, expectedBytes, actualBytes):
            return "File '\(path)' has \(actualBytes) bytes but its header describes \(expectedBytes); "
                + "\(actualBytes - expectedBytes) unexpected trailing bytes."
        case let .partialRecord(path, byteCount, recordSize):
            return "File '\(path)' has \(byteCount) bytes, which is not a whole number of \(recordSize)-byte records "
                + "(\(byteCount / recordSize) records and \(byteCount % recordSize) bytes over)."
        case let .exceedsHeader(path, expectedBytes):
            return "File '\(path)' decompresses to more than the \(expectedBytes) bytes its header describes "
                + "(reading stopped there)."
        case let .badMagic(path, found):
            return "File '\(path)' is not an IDX file: magic number 0x\(hex(found)) should be 0x000008NN."
        case let .unsupportedDataType(path, code):
            return "File '\(path)' stores IDX element type 0x\(hex(UInt32(code), width: 2)) "
                + "(\(idxTypeName(code))); only 0x08 (unsigned byte) is supported."
        case let .dimensionsTooLarge(path, dimensions):
            return "File '\(path)' declares dimensions \(dimensions), which are too large to load."
        case let .tooLarge(path, limitBytes):
            return "File '\(path)' is larger than the \(limitBytes)-byte limit for dataset files."
        case let .unexpectedShape(path, expected, found):
            return "File '\(path)' has shape \(found) but \(expected) was expected."
        case let .labelOutOfRange(path, index, label, classCount):
            return "Label file '\(path)' has label \(label) at index \(index), "
                + "outside the valid range 0..<\(classCount)."
        case let .countMismatch(imagesPath, imageCount, labelsPath, labelCount):
            return "Image file '\(imagesPath)' holds \(imageCount) images but label file "
                + "'\(labelsPath)' holds \(labelCount) labels."
        case let .corruptGzip(path, reason):
            return "Gzip file '\(path)' cannot be decompressed: \(reason)."
        case let .invalidParameter(name, value, reason):
            return "Invalid \(name) \(value): \(reason)."
        case let .emptyFolder(path, what):
            return "Folder '\(path)' has no \(what)."
        case let .badSample(index, path, reason):
            return "Sample \(index) ('\(path)') cannot be loaded: \(reason)"
        case let .unknownDataset(name, known):
            return "Unknown dataset '\(name)'; known datasets are \(known.joined(separator: ", "))."
        }
    }
}

/// Upper-case hexadecimal, zero-padded to `width` digits.
private func hex(_ value: UInt32, width: Int = 8) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The element type an IDX type code stands for, for error messages.
private func idxTypeName(_ code: UInt8) -> String {
    switch code {
    case 0x08: return "unsigned byte"
    case 0x09: return "signed byte"
    case 0x0B: return "16-bit integer"
    case 0x0C: return "32-bit integer"
    case 0x0D: return "32-bit float"
    case 0x0E: return "64-bit float"
    default: return "unknown type"
    }
}
