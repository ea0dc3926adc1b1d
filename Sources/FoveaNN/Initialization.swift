import FoveaTensor
#if canImport(Glibc)
import Glibc
#endif

/// How a weight tensor is filled when a layer is created.
public enum Initializer: Sendable, Equatable {
    /// PyTorch's default for conv and linear: Kaiming-uniform with a = √5, i.e. U(−1/√fanIn, 1/√fanIn).
    case pytorchDefault
    /// He et al. 2015: N(0, 2/fan) with fan = fan-in or fan-out (torchvision's ResNets use fan-out).
    case kaimingNormal(fanOut: Bool)
    /// Kaiming-uniform for ReLU: U(−√(6/fan), √(6/fan)).
    case kaimingUniform(fanOut: Bool)
    /// Glorot & Bengio 2010: U(−√(6/(fanIn+fanOut)), +).
    case xavierUniform
    /// Glorot & Bengio 2010: N(0, 2/(fanIn+fanOut)).
    case xavierNormal
    /// Every element equal to a constant.
    case constant(Float)
    /// N(0, std²).
    case normal(std: Float)
}

/// The generator layers draw their initial weights from (PyTorch's global seed, made explicit).
/// It is per thread, so models built concurrently on different threads do not disturb each other.
public enum Initialization {
    /// The calling thread's initialisation generator (seed 0 until `seed(_:)` is called on that thread).
    static var generator: SeededGenerator {
        get { box().generator }
        set { box().generator = newValue }
    }

    /// Re-seeds the calling thread's generator used by layer initialisers.
    public static func seed(_ seed: UInt64) { generator = SeededGenerator(seed: seed) }

    /// Builds layers without drawing their random initial weights: those are left zero (constant initialisers
    /// still apply) and the calling thread's generator does not move. For models whose weights are loaded right
    /// after, or whose shapes alone are wanted: building VGG-16 otherwise draws 138 M numbers.
    public static func withoutDrawing<T>(_ body: () throws -> T) rethrows -> T {
        let box = box()
        let drawing = box.drawing
        box.drawing = false
        defer { box.drawing = drawing }
        return try body()
    }

    private final class Box {
        var generator = SeededGenerator(seed: 0)
        var drawing = true
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in if let pointer { Unmanaged<Box>.fromOpaque(pointer).release() } }
        return key
    }()

    private static func box() -> Box {
        if let pointer = pthread_getspecific(key) { return Unmanaged<Box>.fromOpaque(pointer).takeUnretainedValue() }
        let box = Box()
        pthread_setspecific(key, Unmanaged.passRetained(box).toOpaque())
        return box
    }

    /// A plain tensor of `shape` filled by `initializer`; fan-in/out from (out, in, kh, kw) weight shapes.
    public static func make(_ shape: [Int], _ initializer: Initializer) -> Tensor {
        let receptive = shape.count > 2 ? shape[2...].reduce(1, *) : 1
        let fanIn = Double(shape.count > 1 ? shape[1] * receptive : shape[0])
        let fanOut = Double(shape[0] * receptive)
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        // Without drawing (`withoutDrawing`), random initialisers leave zeros; constants still apply below.
        let drawing = box().drawing
        // One copy of the thread's generator per tensor: drawing through `generator` copies its state on every draw.
        var generator = Initialization.generator
        defer { if drawing { Initialization.generator = generator } }
        func uniform(_ bound: Double) {
            guard drawing else { return }
            for i in 0..<count { values[i] = Float((generator.nextDouble() * 2 - 1) * bound) }
        }
        func normal(_ std: Double) {
            guard drawing else { return }
            for i in 0..<count { values[i] = Float(generator.nextNormal() * std) }
        }
        switch initializer {
        case .pytorchDefault: uniform(1 / fanIn.squareRoot())
        case let .kaimingNormal(fanOutMode): normal((2 / (fanOutMode ? fanOut : fanIn)).squareRoot())
        case let .kaimingUniform(fanOutMode): uniform((6 / (fanOutMode ? fanOut : fanIn)).squareRoot())
        case .xavierUniform: uniform((6 / (fanIn + fanOut)).squareRoot())
        case .xavierNormal: normal((2 / (fanIn + fanOut)).squareRoot())
        case let .constant(value): values = [Float](repeating: value, count: count)
        case let .normal(std): normal(Double(std))
        }
        // Counts and values agree by construction.
        return try! Tensor(shape: shape, values: values)
    }

    /// PyTorch's default bias: U(−1/√fanIn, 1/√fanIn).
    static func bias(count: Int, fanIn: Int) -> Tensor {
        let bound = 1 / Double(max(fanIn, 1)).squareRoot()
        if !box().drawing { return Tensor.zeros([count]) }
        var generator = Initialization.generator
        defer { Initialization.generator = generator }
        let values = (0..<count).map { _ in Float((generator.nextDouble() * 2 - 1) * bound) }
        return try! Tensor(shape: [count], values: values)
    }
}
