import Foundation
import FoveaData
import FoveaONNX
import FoveaTensor
import FoveaTrain

/// One libFuzzer entry point for each parser Fovea has, chosen by FOVEA_FUZZ_TARGET (scripts/fuzz.sh sets it):
/// `safetensors` (weights and checkpoints: header, offsets, digest), `checkpoint` (a checkpoint's metadata JSON:
/// options and progress), `sidecar` (model.json), `image` (PNG and JPEG, chunk checks and the codecs), `idx` (IDX,
/// raw or gzip), `cifar` (a CIFAR batch file's records), `onnx` (an ONNX model: protobuf, graph checks, operator
/// attributes, then one run on small inputs of the declared shapes). Errors are the expected outcome of most inputs; a trap, a
/// sanitizer report, a timeout or memory past libFuzzer's limit is a finding.
let target = ProcessInfo.processInfo.environment["FOVEA_FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    switch target {
    case "safetensors":
        _ = try? SafeTensors.decode(bytes, path: "input")
    case "checkpoint":
        if let (options, progress) = try? Checkpoint.decodeMetadata(json: String(decoding: bytes, as: UTF8.self), path: "input") {
            _ = progress.problem(epochs: options.epochs, batches: 10, samples: 100)
        }
    case "sidecar":
        if let sidecar = try? JSONDecoder().decode(ModelSidecar.self, from: Data(bytes)) { try? sidecar.validate(path: "input") }
    case "image":
        // A lower pixel limit than the default keeps each input fast; the checks before it are the same.
        _ = try? ImageDecoder.decode(bytes, path: "input", channels: 3, pixelLimit: 1 << 22)
        _ = try? ImageDecoder.decode(bytes, path: "input", channels: 1, pixelLimit: 1 << 22)
    case "idx":
        _ = try? IDXFile.parse(bytes, path: "input")
    case "cifar":
        var pixels: [UInt8] = [], labels: [Int32] = []
        for variant in [CIFARDataset.Variant.cifar10, .cifar100(fine: true), .cifar100(fine: false)] {
            try? CIFARDataset.parseRecords(bytes, path: "input", variant: variant, pixels: &pixels, labels: &labels)
        }
    case "onnx":
        // Small limits keep each input fast: 2²⁰ elements per built tensor (a Tile of 2²⁷ took 10 s under ASan).
        let limits = ONNXLimits(fileBytes: 1 << 20, tensorBytes: 64 << 20, totalBytes: 128 << 20, nodes: 10_000, elements: 1 << 20)
        guard let graph = try? ONNXGraph(bytes: bytes, path: "input", limits: limits),
              let model = try? ONNXModel(graph: graph) else { break }
        var feeds: [String: ONNXValue] = [:]
        for input in graph.inputs {
            let shape = (input.shape ?? []).map { $0 ?? 1 }
            var count = 1
            for dim in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dim)
                guard dim >= 0, !overflow, product <= 1 << 16 else { return 0 }
                count = product
            }
            feeds[input.name] = input.elementType == 1
                ? .float((try? Tensor(shape: shape, values: (0..<count).map { Float($0 % 7) - 3 })) ?? Tensor(scalar: 0))
                : .integer(ONNXIntegers(shape: shape, values: (0..<count).map { Int64($0 % 3) }))
        }
        _ = try? Autodiff.withoutRecording { try model.run(feeds) }
    default:
        FileHandle.standardError.write(Data("set FOVEA_FUZZ_TARGET to safetensors, checkpoint, sidecar, image, idx, cifar or onnx\n".utf8))
        exit(2)
    }
    return 0
}

/// libFuzzer's driver, for a main of our own (SwiftPM names an executable's entry point `fovea_fuzz_main`).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("fovea_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc, arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOneInput)
}
