import Foundation
import FoveaONNX
import FoveaTensor
import Testing

/// ONNX's own backend test cases, as Debian's libonnx-testdata ships them: every case whose operators, attributes and
/// data types Fovea supports must give the expected outputs within ONNX's tolerances (rtol 1e-3, atol 1e-7); a case
/// Fovea does not support must say so with a typed error, never a wrong answer.
let conformanceRoot = "/usr/share/libonnx-testdata/data"

/// The result of one case.
enum CaseOutcome: Equatable {
    case passed
    /// An operator, attribute or data type Fovea does not run (the typed error's text).
    case unsupported(String)
    /// A wrong answer or an unexpected error: a failure.
    case failed(String)
}

/// Runs the case in `folder` (model.onnx and test_data_set_*/{input,output}_N.pb).
func runConformanceCase(_ folder: String) -> CaseOutcome {
    let model: ONNXModel
    do {
        model = try ONNXModel(contentsOf: folder + "/model.onnx")
    } catch let error as ONNXError {
        if case .unsupported = error { return .unsupported("\(error)") }
        if case .invalidTensor(_, _, let message) = error, message.contains("is not supported") { return .unsupported("\(error)") }
        return .failed("import: \(error)")
    } catch {
        return .failed("import: \(error)")
    }
    for input in model.graph.inputs where ![1, 6, 7].contains(input.elementType) {
        return .unsupported("input '\(input.name)' has element type \(input.elementType)")
    }
    let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    let sets = files.filter { $0.hasPrefix("test_data_set_") }.sorted()
    guard !sets.isEmpty else { return .failed("no test_data_set_* folder") }
    for set in sets {
        let directory = folder + "/" + set
        func tensors(_ prefix: String) throws -> [ONNXValue] {
            var values: [ONNXValue] = []
            var index = 0
            while FileManager.default.fileExists(atPath: "\(directory)/\(prefix)_\(index).pb") {
                let path = "\(directory)/\(prefix)_\(index).pb"
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
                values.append(try ONNXValue.decodeTensor(bytes, path: path))
                index += 1
            }
            return values
        }
        let inputs: [ONNXValue], expected: [ONNXValue]
        do {
            (inputs, expected) = (try tensors("input"), try tensors("output"))
        } catch let error as ONNXError {
            return .unsupported("test data: \(error)")
        } catch {
            return .failed("test data: \(error)")
        }
        guard inputs.count == model.graph.inputs.count, expected.count == model.graph.outputs.count else {
            return .failed("\(inputs.count) inputs / \(expected.count) outputs for a graph of \(model.graph.inputs.count) / \(model.graph.outputs.count)")
        }
        let outputs: [ONNXValue]
        do {
            var feeds: [String: ONNXValue] = [:]
            for (input, value) in zip(model.graph.inputs, inputs) { feeds[input.name] = value }
            outputs = try Autodiff.withoutRecording { try model.run(feeds) }
        } catch let error as ONNXError {
            if case .unsupported = error { return .unsupported("\(error)") }
            return .failed("run: \(error)")
        } catch {
            return .failed("run: \(error)")
        }
        for (index, (got, want)) in zip(outputs, expected).enumerated() {
            if let problem = mismatch(got, want) { return .failed("\(set) output \(index): \(problem)") }
        }
    }
    return .passed
}

/// Nil when `got` equals `want` within rtol 1e-3, atol 1e-7 (NaN where NaN is expected); else what differs.
func mismatch(_ got: ONNXValue, _ want: ONNXValue) -> String? {
    guard got.shape == want.shape else { return "shape \(got.shape), expected \(want.shape)" }
    switch (got, want) {
    case let (.integer(a), .integer(b)):
        return a.values == b.values ? nil : "integers \(a.values.prefix(8)) expected \(b.values.prefix(8))"
    case let (.float(a), .float(b)):
        guard let x = try? a.toArray(), let y = try? b.toArray() else { return "unreadable tensor" }
        for i in 0..<x.count {
            if y[i].isNaN { if x[i].isNaN { continue } else { return "element \(i): \(x[i]), expected NaN" } }
            if x[i] == y[i] { continue }
            if !(abs(x[i] - y[i]) <= 1e-7 + 1e-3 * abs(y[i])) { return "element \(i): \(x[i]), expected \(y[i])" }
        }
        return nil
    default:
        return "a \(got) tensor where a \(want) one is expected"
    }
}

@Suite("ONNX conformance (libonnx-testdata)")
struct ConformanceTests {
    static let folders = ["node", "pytorch-converted", "pytorch-operator", "simple"]

    @Test(arguments: folders)
    func folder(_ name: String) throws {
        let root = conformanceRoot + "/" + name
        let cases = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
            .filter { FileManager.default.fileExists(atPath: "\(root)/\($0)/model.onnx") }
        #expect(cases.count > 0, "no cases under \(root) (scripts/install-dependencies.sh installs libonnx-testdata)")
        var (passed, unsupported, failed) = (0, 0, [String]())
        var reasons: [String: Int] = [:]
        for name in cases {
            switch runConformanceCase(root + "/" + name) {
            case .passed: passed += 1
            case let .unsupported(reason):
                unsupported += 1
                let key = reason.range(of: "is not supported: ").map { String(reason[$0.upperBound...]) } ?? reason
                reasons[key, default: 0] += 1
            case let .failed(reason): failed.append("\(name): \(reason)")
            }
        }
        let supported = passed + failed.count
        print("ONNX conformance \(name): \(supported) supported, \(passed) passed, \(cases.count) total")
        if ProcessInfo.processInfo.environment["FOVEA_ONNX_REASONS"] != nil {
            for (reason, count) in reasons.sorted(by: { $0.value > $1.value }) { print("  unsupported \(count)×: \(reason)") }
        }
        for failure in failed { Issue.record("\(name)/\(failure)") }
    }

    /// Cases of the operators CNN exports use, which must run (not merely be refused as unsupported): a change that
    /// made them unsupported would otherwise shrink the suite silently.
    static let required = [
        "node/test_conv_with_strides_padding", "node/test_conv_with_autopad_same", "node/test_conv_with_strides_and_asymmetric_padding",
        "node/test_batchnorm_example", "node/test_batchnorm_epsilon", "node/test_relu", "node/test_leakyrelu",
        "node/test_clip", "node/test_clip_default_min", "node/test_sigmoid", "node/test_hardsigmoid", "node/test_hardswish",
        "node/test_tanh", "node/test_mul_bcast", "node/test_add_bcast", "node/test_sub_bcast", "node/test_div_bcast",
        "node/test_maxpool_2d_pads", "node/test_maxpool_2d_ceil", "node/test_maxpool_2d_same_upper",
        "node/test_averagepool_2d_pads", "node/test_averagepool_2d_pads_count_include_pad", "node/test_averagepool_2d_same_lower",
        "node/test_globalaveragepool", "node/test_gemm_default_matrix_bias", "node/test_gemm_transposeA",
        "node/test_matmul_2d", "node/test_matmul_4d", "node/test_flatten_axis1", "node/test_reshape_negative_dim",
        "node/test_concat_2d_axis_0", "node/test_softmax_axis_1", "node/test_logsoftmax_axis_0", "node/test_lrn",
        "node/test_dropout_default", "node/test_identity", "node/test_constant", "node/test_constant_pad",
        "node/test_squeeze", "node/test_unsqueeze_axis_0", "node/test_transpose_all_permutations_0", "node/test_shape",
        "node/test_gather_0", "pytorch-converted/test_Conv2d_groups", "pytorch-converted/test_Conv2d_depthwise_strided",
        "pytorch-converted/test_BatchNorm2d_eval", "pytorch-converted/test_AvgPool2d", "pytorch-operator/test_operator_flatten",
    ]

    @Test(arguments: required)
    func requiredCase(_ name: String) {
        let outcome = runConformanceCase(conformanceRoot + "/" + name)
        #expect(outcome == .passed, "\(name): \(outcome)")
    }
}
