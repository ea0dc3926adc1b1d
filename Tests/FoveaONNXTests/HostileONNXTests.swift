import Foundation
@testable import FoveaONNX
import FoveaTensor
import Testing

/// Hostile ONNX files: each must give a typed error naming the file and the node or tensor, never a crash, a hang or
/// an allocation the file's size does not justify.
@Suite("Hostile ONNX files")
struct HostileONNXTests {
    /// A small valid model: input (1, 2, 4, 4) → Conv (3 out, 3×3, pad 1, weights 'w', bias 'b') → Relu → output.
    static func validModel() -> Onnx_ModelProto {
        var model = Onnx_ModelProto()
        model.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        model.opsetImport = [opset]
        var graph = Onnx_GraphProto()
        graph.name = "small"
        graph.initializer = [floatTensor("w", [3, 2, 3, 3]), floatTensor("b", [3])]
        graph.node = [node("Conv", ["x", "w", "b"], ["c"], name: "conv", [attribute("pads", ints: [1, 1, 1, 1])]),
                      node("Relu", ["c"], ["y"], name: "relu")]
        graph.input = [valueInfo("x", [1, 2, 4, 4].map(fixed))]
        graph.output = [valueInfo("y", [1, 3, 4, 4].map(fixed))]
        model.graph = graph
        return model
    }

    static func floatTensor(_ name: String, _ dims: [Int]) -> Onnx_TensorProto {
        var tensor = Onnx_TensorProto()
        tensor.name = name
        tensor.dataType = 1
        tensor.dims = dims.map(Int64.init)
        let values = (0..<dims.reduce(1, *)).map { Float($0 % 5) * 0.1 - 0.2 }
        tensor.rawData = values.withUnsafeBytes { Data($0) }
        return tensor
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String,
                     _ attributes: [Onnx_AttributeProto] = []) -> Onnx_NodeProto {
        var node = Onnx_NodeProto()
        (node.opType, node.input, node.output, node.name, node.attribute) = (op, inputs, outputs, name, attributes)
        return node
    }

    static func bytes(_ model: Onnx_ModelProto) throws -> [UInt8] { try model.serializedBytes() }

    /// The error importing `bytes` gives (nil when it imports).
    static func importError(_ bytes: [UInt8], folder: String? = nil, limits: ONNXLimits = .standard) -> ONNXError? {
        do {
            _ = try ONNXModel(graph: ONNXGraph(bytes: bytes, path: "hostile.onnx", folder: folder, limits: limits))
            return nil
        } catch let error as ONNXError {
            return error
        } catch {
            Issue.record("untyped error \(error)")
            return nil
        }
    }

    @Test func validModelImportsAndRuns() throws {
        let model = try ONNXModel(graph: ONNXGraph(bytes: try Self.bytes(Self.validModel()), path: "valid.onnx"))
        let y = try Autodiff.withoutRecording { try model(Tensor(repeating: 1, shape: [1, 2, 4, 4])) }
        #expect(y.shape == [1, 3, 4, 4])
        #expect(try y.toArray().allSatisfy { $0 >= 0 })
    }

    @Test func everyTruncationIsAnError() throws {
        let bytes = try Self.bytes(Self.validModel())
        var errors = 0
        for length in stride(from: 0, to: bytes.count - 1, by: max(1, bytes.count / 97)) {
            if Self.importError(Array(bytes.prefix(length))) != nil { errors += 1 }
        }
        // A prefix can be a valid protobuf of fewer fields, but then the graph checks refuse it.
        #expect(errors == (0..<(bytes.count - 1)).filter { $0 % max(1, bytes.count / 97) == 0 }.count)
    }

    @Test func wrongWireTypeAndLengthsPastTheEnd() throws {
        // Field 7 (graph) announced as a 32-bit value instead of a length-delimited message: skipped as an unknown
        // field by protobuf's rules, so the model has no graph.
        #expect(Self.importError([0x3D, 1, 2, 3, 4]).map { "\($0)".hasPrefix("hostile.onnx:") } == true)
        // A varint that never ends.
        #expect(Self.importError([0x08] + [UInt8](repeating: 0xFF, count: 12)).map { if case .malformed = $0 { true } else { false } } == true)
        // Field 7 claiming a billion bytes in a 7-byte file.
        #expect(Self.importError([0x3A, 0x80, 0x94, 0xEB, 0xDC, 0x03, 0]).map { if case .malformed = $0 { true } else { false } } == true)
        // Random bytes.
        var generator = SeededGenerator(seed: 5)
        for _ in 0..<50 {
            let garbage = (0..<Int(generator.next() % 200)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            #expect(Self.importError(garbage) != nil)
        }
    }

    @Test func dimsPastMemoryAreRefusedBeforeAllocating() throws {
        var model = Self.validModel()
        var huge = Onnx_TensorProto()
        (huge.name, huge.dataType, huge.dims) = ("w", 1, [1 << 30, 1 << 30, 3, 3])
        model.graph.initializer[0] = huge
        let error = Self.importError(try Self.bytes(model))
        #expect(error.map { "\($0)".contains("tensor 'w'") && "\($0)".contains("limit") } == true, "\(String(describing: error))")
        (huge.dims) = ([-1, 2, 3, 3])
        model.graph.initializer[0] = huge
        #expect(Self.importError(try Self.bytes(model)).map { "\($0)".contains("negative") } == true)
    }

    @Test func rawDataOfTheWrongSize() throws {
        var model = Self.validModel()
        model.graph.initializer[1].rawData = Data(count: 11)
        let error = Self.importError(try Self.bytes(model))
        #expect(error.map { "\($0)".contains("tensor 'b'") && "\($0)".contains("raw_data has 11 bytes") } == true, "\(String(describing: error))")
    }

    @Test func initializerOverAStatedLimit() throws {
        let limits = ONNXLimits(fileBytes: 1 << 20, tensorBytes: 100, totalBytes: 1 << 20, nodes: 100)
        let error = Self.importError(try Self.bytes(Self.validModel()), limits: limits)
        #expect(error.map { "\($0)".contains("tensor 'w'") && "\($0)".contains("100-byte") } == true, "\(String(describing: error))")
    }

    @Test func cyclesAndUndefinedInputs() throws {
        var model = Self.validModel()
        model.graph.node = [Self.node("Relu", ["y"], ["c"], name: "first"), Self.node("Relu", ["c"], ["y"], name: "second")]
        let cycle = Self.importError(try Self.bytes(model))
        #expect(cycle.map { "\($0)".contains("cycle") } == true, "\(String(describing: cycle))")
        model.graph.node = [Self.node("Relu", ["nowhere"], ["y"], name: "reader")]
        let undefined = Self.importError(try Self.bytes(model))
        #expect(undefined.map { "\($0)".contains("'reader'") && "\($0)".contains("'nowhere' is never defined") } == true)
        model.graph.node = [Self.node("Relu", ["x"], ["y"], name: "a"), Self.node("Relu", ["x"], ["y"], name: "b")]
        #expect(Self.importError(try Self.bytes(model)).map { "\($0)".contains("defined twice") } == true)
    }

    @Test func tenThousandDeepNestingIsRefused() {
        // attribute.g → graph.node → node.attribute → … 10,000 levels, built from the inside out.
        var message: [UInt8] = []
        func wrap(_ field: UInt8, _ payload: [UInt8]) -> [UInt8] {
            var length = payload.count, varint: [UInt8] = []
            repeat { varint.append(UInt8(length & 0x7F) | (length > 0x7F ? 0x80 : 0)); length >>= 7 } while length > 0
            return [field << 3 | 2] + varint + payload
        }
        // graph.node (1) → node.attribute (5) → attribute.g (6) → graph …, 3 levels per round.
        for _ in 0..<3_334 { message = wrap(1, wrap(5, wrap(6, message))) }
        let model = wrap(7, message)
        let error = Self.importError(model)
        #expect(error.map { if case .malformed = $0 { true } else { false } } == true, "\(String(describing: error))")
    }

    @Test func externalDataMustStayInTheModelsFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fovea-onnx-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: folder + "/inside", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let resolved = URL(fileURLWithPath: folder + "/inside").resolvingSymlinksInPath().path
        try Data(count: 12).write(to: URL(fileURLWithPath: folder + "/outside.bin"))
        try Data(count: 12).write(to: URL(fileURLWithPath: folder + "/inside/bias.bin"))
        try FileManager.default.createSymbolicLink(atPath: folder + "/inside/link.bin", withDestinationPath: folder + "/outside.bin")
        func model(_ location: String, length: String = "12") throws -> [UInt8] {
            var model = Self.validModel()
            var bias = Onnx_TensorProto()
            (bias.name, bias.dataType, bias.dims, bias.dataLocation) = ("b", 1, [3], .external)
            bias.externalData = [("location", location), ("length", length)].map {
                var entry = Onnx_StringStringEntryProto()
                (entry.key, entry.value) = ($0.0, $0.1)
                return entry
            }
            model.graph.initializer[1] = bias
            return try Self.bytes(model)
        }
        #expect(Self.importError(try model("bias.bin"), folder: resolved) == nil)
        for location in ["../outside.bin", "../../etc/passwd", "/etc/passwd", "link.bin"] {
            let error = Self.importError(try model(location), folder: resolved)
            #expect(error.map { "\($0)".contains("tensor 'b'") && ("\($0)".contains("leaves") || "\($0)".contains("outside")) } == true,
                    "\(location): \(String(describing: error))")
        }
        #expect(Self.importError(try model("missing.bin"), folder: resolved).map { "\($0)".contains("cannot be opened") } == true)
        #expect(Self.importError(try model("bias.bin", length: "8"), folder: resolved) != nil)
        #expect(Self.importError(try model("bias.bin"), folder: nil) != nil)
    }

    @Test func unsupportedOperatorsAndAttributesNameTheNode() throws {
        var model = Self.validModel()
        model.graph.node[1] = Self.node("Hardmax", ["c"], ["y"], name: "odd")
        let op = Self.importError(try Self.bytes(model))
        #expect(op == .unsupported(path: "hostile.onnx", node: "'odd'", operator: "Hardmax", opset: 17, detail: "operator Hardmax"))
        model = Self.validModel()
        model.graph.node[1] = Self.node("Relu", ["c"], ["y"], name: "relu", [attribute("mystery", int: 1)])
        let attributeError = Self.importError(try Self.bytes(model))
        #expect(attributeError.map { "\($0)".contains("'relu'") && "\($0)".contains("attribute 'mystery'") } == true)
        model = Self.validModel()
        model.graph.node[0].domain = "com.example"
        #expect(Self.importError(try Self.bytes(model)).map { "\($0)".contains("domain 'com.example'") } == true)
    }

    /// Found by the fuzzer: an Add with one input indexed past its inputs. Every operator's input count is checked.
    @Test func operatorsWithTooFewInputsOrNoOutput() throws {
        for (op, inputs) in [("Add", ["c"]), ("Conv", ["x"]), ("BatchNormalization", ["c", "b"]), ("Gemm", ["c"]),
                             ("Relu", ["c", "c"]), ("Concat", [String]())] {
            var model = Self.validModel()
            model.graph.node[1] = Self.node(op, inputs, ["y"], name: "short")
            let error = Self.importError(try Self.bytes(model))
            #expect(error.map { "\($0)".contains("'short'") && "\($0)".contains("inputs, the node has \(inputs.count)") } == true,
                    "\(op) with \(inputs.count) inputs: \(String(describing: error))")
        }
        var model = Self.validModel()
        model.graph.node[1] = Self.node("Relu", ["c"], [], name: "silent")
        #expect(Self.importError(try Self.bytes(model)).map { "\($0)".contains("'silent'") && "\($0)".contains("no output") } == true)
        model.graph.node[1] = Self.node("Relu", ["c"], ["", "y"], name: "hollow")
        #expect(Self.importError(try Self.bytes(model)).map { "\($0)".contains("'hollow'") && "\($0)".contains("first output") } == true)
        model = Self.validModel()
        model.graph.node[1] = Self.node("Dropout", ["c"], ["y"], name: "bad", [attribute("ratio", float: 2)])
        model.opsetImport[0].version = 10
        #expect(Self.importError(try Self.bytes(model)).map { "\($0)".contains("'bad'") } == true)
    }

    /// Found by the fuzzer: Gather (and every operator with an axis) on a 0-D tensor read past its shape.
    @Test func axesOfScalarsAreErrors() throws {
        var model = Self.validModel()
        var scalar = Onnx_TensorProto()
        (scalar.name, scalar.dataType, scalar.dims, scalar.floatData) = ("s", 1, [], [2])
        var index = Onnx_TensorProto()
        (index.name, index.dataType, index.dims, index.int64Data) = ("i", 7, [], [0])
        model.graph.initializer += [scalar, index]
        for (op, inputs, attributes) in [("Gather", ["s", "i"], [Onnx_AttributeProto]()), ("Concat", ["s", "s"], [attribute("axis", int: 0)]),
                                         ("Softmax", ["s"], [])] {
            model.graph.node = [Self.node(op, inputs, ["y"], name: "scalar", attributes)]
            let imported = try ONNXModel(graph: ONNXGraph(bytes: try Self.bytes(model), path: "scalar.onnx"))
            #expect(throws: ONNXError.self, "\(op) of a scalar") {
                try imported.run(["x": .float(Tensor(repeating: 1, shape: [1, 2, 4, 4]))])
            }
        }
    }

    @Test func aWrongInputShapeIsAnErrorAtRunTime() throws {
        let model = try ONNXModel(graph: ONNXGraph(bytes: try Self.bytes(Self.validModel()), path: "valid.onnx"))
        #expect(throws: ONNXError.self) { try model(Tensor(repeating: 1, shape: [1, 5, 4, 4])) }
    }

    /// Seeded mutations of real models (byte flips, truncations, insertions, repeated spans) never crash the importer or
    /// a run on the declared input shapes; every failure is a typed error.
    @Test func seededMutationsOfConformanceModels() throws {
        let root = "/usr/share/libonnx-testdata/data/node"
        let names = ["test_conv_with_strides_padding", "test_batchnorm_example", "test_maxpool_2d_pads", "test_gemm_default_matrix_bias",
                     "test_reshape_negative_dim", "test_concat_2d_axis_0", "test_averagepool_2d_same_lower", "test_constant_pad"]
        var generator = SeededGenerator(seed: 20261203)
        var (imported, refused) = (0, 0)
        for name in names {
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(root)/\(name)/model.onnx")))
            for _ in 0..<150 {
                var bytes = original
                for _ in 0..<(1 + Int(generator.next() % 4)) {
                    guard !bytes.isEmpty else { break }
                    let at = Int(generator.next() % UInt64(bytes.count))
                    switch generator.next() % 4 {
                    case 0: bytes[at] ^= UInt8(1 << (generator.next() % 8))
                    case 1: bytes.removeLast(bytes.count - at)
                    case 2: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: at)
                    default: bytes[at] = [0x00, 0x7F, 0x80, 0xFF][Int(generator.next() % 4)]
                    }
                }
                let limits = ONNXLimits(fileBytes: 1 << 20, tensorBytes: 16 << 20, totalBytes: 64 << 20, nodes: 1000, elements: 1 << 20)
                guard let graph = try? ONNXGraph(bytes: bytes, path: name, limits: limits), let model = try? ONNXModel(graph: graph) else {
                    refused += 1
                    continue
                }
                imported += 1
                var feeds: [String: ONNXValue] = [:]
                for input in graph.inputs {
                    let shape = (input.shape ?? []).map { min($0 ?? 1, 64) }
                    feeds[input.name] = .float(Tensor(repeating: 0.5, shape: shape))
                }
                do { _ = try Autodiff.withoutRecording { try model.run(feeds) } } catch is ONNXError {} catch {
                    Issue.record("\(name): untyped error \(error)")
                }
            }
        }
        print("ONNX mutations: \(imported) imported, \(refused) refused")
        #expect(imported + refused == names.count * 150)
    }
}
