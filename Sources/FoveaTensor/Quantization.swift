import Foundation

/// Static post-training quantization of one layer's input: the range its values took on calibration data, and from it
/// the 8-bit type and scale the layer's int8 kernel reads its input in.
///
/// Convolutions and fully connected layers own one each. During `ActivationQuantizer.calibrate { … }` every such layer
/// that runs (in inference) widens its range to cover its input; afterwards, under `Precision.run(.int8)`, a layer with a
/// range quantizes its input per tensor — `u8` with scale max/255 when the range has no negative value (after a ReLU),
/// else symmetric `s8` with scale max|x|/127 — its weights per output channel, symmetric `s8` with scale max|w|/127 —
/// and runs oneDNN's int8 kernel, whose int32 sums are scaled back to float32 (input scale × weight scale) before bias,
/// residual and activation. Values outside the calibrated range saturate, as in every static scheme.
///
/// A convolution's quantizer also records the range of the convolution's output (after its fused batch norm, residual
/// and activation) on the calibration data, `outputRange`. With it, the int8 kernel writes its output as 8-bit integers
/// on that range's scale (u8 or s8 by the same rule) instead of float32, as ONNX Runtime's QLinearConv does: the next
/// int8 convolution reads them as they are, and so does a residual sum; anything else gets them widened to float32
/// (q × scale) on first use (`Storage`). Without an output range (records written before there were any) the output
/// is float32 and the next layer quantizes it itself.
public final class ActivationQuantizer: @unchecked Sendable {
    private let lock = NSLock()
    private var observed: ClosedRange<Float>?
    private var observedOutput: ClosedRange<Float>?
    /// The weights' stamp the output range was measured with (nil: it was assigned, and belongs to the next stamp seen).
    private var outputStamp: [Int]?
    /// The int8 weights made from one float weight tensor (kept alive here, so its identity cannot be reused), per kernel
    /// format.
    private var weightSource: Storage?
    private var weightStamp: [Int] = []
    private var weightScales: [Float] = []
    private var kernelWeights: [PrimitiveKey: Storage] = [:]

    public init() {}

    /// The calibrated range of the input, or nil before calibration.
    public var range: ClosedRange<Float>? {
        get { lock.lock(); defer { lock.unlock() }; return observed }
        set { lock.lock(); defer { lock.unlock() }; observed = newValue }
    }

    /// The calibrated range of the layer's output, or nil (before calibration, or a layer whose output stays float32).
    /// It belongs to the weights it was measured with (an assigned range to the weights of the next call): once they
    /// change, in place by an optimizer or otherwise (`weightsAre`), it is dropped and the output is float32 again.
    public var outputRange: ClosedRange<Float>? {
        get { lock.lock(); defer { lock.unlock() }; return observedOutput }
        set { lock.lock(); defer { lock.unlock() }; (observedOutput, outputStamp) = (newValue, nil) }
    }

    /// Whether the input is quantized unsigned (`u8`: the range has no negative value) rather than signed (`s8`).
    public var isUnsigned: Bool { Self.isUnsigned(range) }

    /// The float value of one quantization step: max/255 for u8, max|x|/127 for s8 (1 for a range of zeros).
    public var scale: Float? { Self.scale(of: range) }

    /// The 8-bit type (unsigned or not) and step of the output, by the same rules as the input's, once calibrated.
    public var outputQuantization: (unsigned: Bool, scale: Float)? {
        let range = outputRange
        return Self.scale(of: range).map { (Self.isUnsigned(range), $0) }
    }

    private static func isUnsigned(_ range: ClosedRange<Float>?) -> Bool { (range?.lowerBound ?? -1) >= 0 }

    private static func scale(of range: ClosedRange<Float>?) -> Float? {
        guard let range else { return nil }
        let magnitude = isUnsigned(range) ? range.upperBound / 255 : max(-range.lowerBound, range.upperBound) / 127
        return magnitude > 0 && magnitude.isFinite ? magnitude : 1
    }

    /// Widens the input range to cover `x`'s values (calibration).
    func observe(_ x: Tensor) throws {
        try observe(x, into: \.observed)
    }

    /// Widens the output range to cover `y`'s values (calibration), measured with the current weights.
    func observeOutput(_ y: Tensor) throws {
        try observe(y, into: \.observedOutput, stamping: true)
    }

    private func observe(_ x: Tensor, into field: ReferenceWritableKeyPath<ActivationQuantizer, ClosedRange<Float>?>,
                         stamping: Bool = false) throws {
        let (low, high) = try x.withPlainElements { values -> (Float, Float) in
            var low = Float.infinity, high = -Float.infinity
            for value in values where value.isFinite {
                low = min(low, value)
                high = max(high, value)
            }
            return (low, high)
        }
        guard low <= high else { return }
        lock.lock()
        defer { lock.unlock() }
        self[keyPath: field] = self[keyPath: field].map { min($0.lowerBound, low)...max($0.upperBound, high) } ?? low...high
        if stamping { outputStamp = weightStamp }
    }

    /// Tells the quantizer which version of the layer's weights comes next (the parameters' versions, which change when
    /// an optimizer updates them in place): the int8 weights made from other versions are dropped, and so is an output
    /// range measured with another version.
    public func weightsAre(_ stamp: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if stamp != weightStamp { (weightStamp, weightSource, kernelWeights) = (stamp, nil, [:]) }
        if observedOutput != nil {
            if outputStamp == nil { outputStamp = stamp } else if outputStamp != stamp { (observedOutput, outputStamp) = (nil, nil) }
        }
    }

    /// `weight` (K, …) quantized per output channel k: round(w / s_k) in −127…127 with s_k = max|w_k| / 127, and the
    /// scales. Made once per weight tensor (its storage identity, within one `weightsAre` stamp) and kept.
    func quantizedWeight(_ weight: Tensor) throws -> (values: Storage, scales: [Float]) {
        lock.lock()
        defer { lock.unlock() }
        if weightSource === weight.storage, let plain = kernelWeights[Self.plainKey] { return (plain, weightScales) }
        let channels = weight.shape[0], perChannel = weight.count / channels
        let quantized = Storage(capacity: (weight.count + 3) / 4)
        let bytes = UnsafeMutableRawPointer(quantized.pointer).bindMemory(to: Int8.self, capacity: weight.count)
        var scales = [Float](repeating: 1, count: channels)
        try weight.withPlainElements { values in
            for k in 0..<channels {
                let row = values[(k * perChannel)..<((k + 1) * perChannel)]
                let largest = row.reduce(Float(0)) { max($0, abs($1)) }
                let scale = largest > 0 && largest.isFinite ? largest / 127 : 1
                scales[k] = scale
                for (i, value) in zip(k * perChannel..<(k + 1) * perChannel, row) {
                    bytes[i] = Int8(max(-127, min(127, (value / scale).rounded(.toNearestOrEven))))
                }
            }
        }
        (weightSource, weightScales, kernelWeights) = (weight.storage, scales, [Self.plainKey: quantized])
        return (quantized, scales)
    }

    /// The int8 weights in a kernel's format, made by `make` on first use for the current weight tensor.
    func kernelWeight(for key: PrimitiveKey, make: () throws -> Storage) rethrows -> Storage {
        lock.lock()
        defer { lock.unlock() }
        if let cached = kernelWeights[key] { return cached }
        let made = try make()
        kernelWeights[key] = made
        return made
    }

    private static let plainKey = PrimitiveKey(kind: "q8_plain", values: [])

    /// Runs `body` with calibration on for this thread: every convolution and inner product that runs in inference and
    /// has a quantizer records its input's range (computing in fp32).
    public static func calibrate<R>(_ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }

    /// Whether calibration is on for this thread.
    static var isCalibrating: Bool { pthread_getspecific(key) != nil }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// What a kernel does with this quantizer on the calling thread: observe its input (calibration), run in int8 (a
    /// calibrated range under `Precision.int8`, outside training), or neither.
    func action(training: Bool) -> Action {
        guard !training else { return .none }
        if Self.isCalibrating { return .observe }
        if Precision.current == .int8, Precision.int8.isSupported, let scale { return .quantize(unsigned: isUnsigned, scale: scale) }
        return .none
    }

    enum Action: Equatable {
        case none, observe
        case quantize(unsigned: Bool, scale: Float)
    }
}
