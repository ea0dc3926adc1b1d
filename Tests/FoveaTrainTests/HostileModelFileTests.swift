import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FoveaData
import FoveaModels
import FoveaNN
import FoveaTensor
@testable import FoveaTrain
import Testing

/// Malformed sidecars and weights: each is a typed error naming the file and the field, from the library and as exit
/// code 65 from `fovea predict` / `fovea evaluate`, never a trap, a huge allocation or a silent answer.
@Suite("Hostile model files", .serialized)
struct HostileModelFileTests {
    /// A valid LeNet-5 model file pair in a new folder.
    static func writeModel() throws -> (directory: String, weights: String, sidecar: [String: Any]) {
        let directory = try temporaryDirectory("hostile-model")
        let weights = directory + "/model.safetensors"
        Initialization.seed(1)
        let sidecar = ModelSidecar(architecture: "lenet5", classes: (0..<10).map { "class \($0)" }, inputShape: [1, 28, 28],
                                   dataset: "mnist", mean: [0.5], std: [0.25])
        try ModelFile.save(try LeNet5(), sidecar: sidecar, to: weights)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            ModelFile.sidecarPath(for: weights)))) as? [String: Any])
        return (directory, weights, object)
    }

    /// A grey 28×28 PNG for `predict`, in `directory`.
    static func writeImage(in directory: String) throws -> String {
        let image = directory + "/image.png"
        try Data(PNGEncoder.encode(pixels: [UInt8](repeating: 128, count: 784), channels: 1, height: 28, width: 28))
            .write(to: URL(fileURLWithPath: image))
        return image
    }

    /// Sidecar fields replaced by hostile values, with the field the error must name.
    static let cases: [(String, String, Any)] = [
        ("empty mean", "mean", [Float]()), ("empty std", "std", [Float]()), ("std of zero", "std", [0.0]),
        ("denormal std", "std", [1e-45]), ("negative std", "std", [-0.25]), ("three means for one channel", "mean", [0.1, 0.2, 0.3]),
        ("zero height", "input_shape", [1, 0, 28]), ("negative width", "input_shape", [1, 28, -28]),
        ("huge side", "input_shape", [1, 1 << 62, 28]), ("100000 × 100000", "input_shape", [1, 100_000, 100_000]),
        ("rank 2", "input_shape", [28, 28]), ("rank 4", "input_shape", [1, 1, 28, 28]), ("4 channels", "input_shape", [4, 28, 28]),
        ("zero channels", "input_shape", [0, 28, 28]), ("no classes", "classes", [String]()),
        ("unknown architecture", "architecture", "resnet9000"),
    ]

    @Test("each hostile sidecar value is a badModelFile error naming the field, before anything is built")
    func library() throws {
        let (_, weights, valid) = try Self.writeModel()
        #expect(try ModelFile.load(weights).1.architecture == "lenet5")
        let path = ModelFile.sidecarPath(for: weights)
        for (label, field, value) in Self.cases {
            var object = valid
            object[field] = value
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
            do {
                _ = try ModelFile.load(weights)
                Issue.record("\(label): accepted")
            } catch let error as TrainingError {
                guard case let .badModelFile(errorPath, reason) = error else { Issue.record("\(label): \(error)"); continue }
                #expect(errorPath == path && reason.contains("field \(field)"), "\(label): \(reason)")
            }
        }
    }

    @Test("predict and evaluate end with exit 65 naming the field; a sidecar that is a folder or too large is named as such")
    func commandLine() throws {
        let (directory, weights, valid) = try Self.writeModel()
        let path = ModelFile.sidecarPath(for: weights)
        let image = try Self.writeImage(in: directory)
        #expect(try runFovea(["predict", "--weights", weights, image]).status == 0)
        for (label, field, value) in Self.cases where ["std", "input_shape", "architecture", "classes"].contains(field) {
            var object = valid
            object[field] = value
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
            for arguments in [["predict", "--weights", weights, image],
                              ["evaluate", "--weights", weights, "--dataset", "mnist", "--data-dir", directory]] {
                let run = try runFovea(arguments)
                #expect(run.status == 65 && run.error.contains(path) && run.error.contains(field),
                        "\(label), \(arguments[0]): \(run.status) \(run.error)")
            }
        }
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let folder = try runFovea(["predict", "--weights", weights, image])
        #expect(folder.status == 65 && folder.error.contains("not a regular file"), "\(folder.error)")
        try FileManager.default.removeItem(atPath: path)
        let missing = try runFovea(["predict", "--weights", weights, image])
        #expect(missing.status == 65 && missing.error.contains("sidecar missing"), "\(missing.error)")
        try Data(count: ModelFile.maximumSidecarBytes + 1).write(to: URL(fileURLWithPath: path))
        let large = try runFovea(["predict", "--weights", weights, image])
        #expect(large.status == 65 && large.error.contains("more than"), "\(large.error)")
    }

    @Test("every write replaces only a regular file: a FIFO, a folder or a link is refused and left as it was")
    func writesReplaceOnlyRegularFiles() throws {
        let directory = try temporaryDirectory("hostile-writes")
        let fifo = directory + "/fifo", folder = directory + "/folder", link = directory + "/link", plain = directory + "/plain"
        #expect(mkfifo(fifo, 0o600) == 0)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        try Data("old".utf8).write(to: URL(fileURLWithPath: plain))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: plain)
        for target in [fifo, folder, link] {
            #expect(throws: TrainingError.cannotWrite(path: target,
                                                      reason: "it exists and is not a regular file; only a regular file is replaced")) {
                try writeAtomically(Data("new".utf8), to: target)
            }
        }
        var status = stat()
        #expect(lstat(fifo, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO)
        #expect(lstat(link, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK)
        #expect(try String(contentsOfFile: plain, encoding: .utf8) == "old")
        try writeAtomically(Data("new".utf8), to: plain)
        #expect(try String(contentsOfFile: plain, encoding: .utf8) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["fifo", "folder", "link", "plain"])
        // Through the command line: evaluate --output onto a FIFO fails (exit 1) without opening it, so nothing hangs.
        let (modelDirectory, weights, _) = try Self.writeModel()
        try writeSyntheticMNIST(to: modelDirectory, trainCount: 20, testCount: 20)
        let run = try runFovea(["evaluate", "--weights", weights, "--dataset", "mnist", "--data-dir", modelDirectory,
                                "--output", fifo])
        #expect(run.status == 1 && run.error.contains(fifo) && run.error.contains("not a regular file"), "\(run.error)")
        #expect(lstat(fifo, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO)
    }

    @Test("every reader refuses a FIFO at once instead of waiting for a writer: IDX, safetensors, images, predict, train")
    func readersRefuseFIFOs() throws {
        let directory = try temporaryDirectory("hostile-fifo")
        let fifo = directory + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: DatasetError.unreadableFile(path: fifo, reason: "not a regular file")) { try IDXFile.read(path: fifo) }
        #expect(throws: SafeTensorsError.unreadableFile(path: fifo, reason: "not a regular file")) { try SafeTensors.read(path: fifo) }
        #expect(throws: ImageError.self) { try ImageDecoder.decode(path: fifo, channels: 1) }
        let (modelDirectory, weights, _) = try Self.writeModel()
        let predict = try runFovea(["predict", "--weights", weights, fifo])
        #expect(predict.status == 65 && predict.error.contains(fifo) && predict.error.contains("not a regular file"), "\(predict.error)")
        try writeSyntheticMNIST(to: modelDirectory, trainCount: 20, testCount: 20)
        let images = modelDirectory + "/train-images-idx3-ubyte"
        try FileManager.default.removeItem(atPath: images)
        #expect(mkfifo(images, 0o600) == 0)
        let train = try runFovea(["train", "--dataset", "mnist", "--data-dir", modelDirectory, "--epochs", "1", "--quiet"])
        #expect(train.status == 65 && train.error.contains(images), "\(train.error)")
        let weightsFIFO = directory + "/model.safetensors"
        #expect(mkfifo(weightsFIFO, 0o600) == 0)
        try FileManager.default.copyItem(atPath: ModelFile.sidecarPath(for: weights), toPath: ModelFile.sidecarPath(for: weightsFIFO))
        let fifoWeights = try runFovea(["predict", "--weights", weightsFIFO, fifo])
        #expect(fifoWeights.status == 65 && fifoWeights.error.contains(weightsFIFO), "\(fifoWeights.error)")
    }

    @Test("a NaN or infinite weight is refused naming the tensor and element, from the library and predict",
          arguments: [Float.nan, .infinity])
    func nonFiniteWeights(_ poison: Float) throws {
        let (directory, weights, _) = try Self.writeModel()
        var entries = try SafeTensors.read(path: weights).entries
        var bias = try #require(entries["fc3.bias"])
        bias.values[7] = poison
        entries["fc3.bias"] = bias
        try SafeTensors.write(entries.values.sorted { $0.name < $1.name }, metadata: ["format": "pt"], to: weights)
        #expect(throws: TrainingError.self) { try ModelFile.load(weights) }
        let image = try Self.writeImage(in: directory)
        let run = try runFovea(["predict", "--weights", weights, image])
        #expect(run.status == 65 && run.error.contains("fc3.bias") && run.error.contains("element 7"), "\(run.error)")
    }
}
