import Foundation
import FoveaDataKernels
import FoveaTensor

/// The fast path from an image file to normalised network input, for the transform sequences image folders use
/// (RandomResizedCrop + flip for training; shorter side + centre crop for evaluation; a plain resize).
///
/// It computes exactly what decoding to a `DecodedImage`, applying the transforms one by one and normalising does,
/// byte for byte and draw for draw, but in one pass over reusable per-thread memory: the file is read and decoded
/// into interleaved rows, the transforms are folded into one window of the source, one resize and one window of the
/// result (plus a mirror), only the source rows that window reads are resampled, and the output rows are normalised
/// straight into the destination (a slot of the batch tensor).
public struct ImagePipeline: Sendable {
    /// Output shape (C, H, W); C is 1 (grey) or 3 (RGB).
    public let shape: [Int]
    /// Largest width × height accepted from a file header.
    public let pixelLimit: Int
    let transforms: [ImageTransform]
    /// Per-channel mean and standard deviation of the normalisation (p/255 − mean) / std.
    let mean: SIMD4<Float>
    let std: SIMD4<Float>

    /// A pipeline for `transforms` to `shape`, normalising byte p of channel c to (p/255 − mean[c]) / std[c] (a single
    /// value serves every channel); nil when the transforms are a sequence this path does not reproduce (the general
    /// path then applies them one by one).
    public init?(transforms: [ImageTransform], shape: [Int], mean: [Float], std: [Float],
                 pixelLimit: Int = ImageDecoder.defaultPixelLimit) {
        guard shape.count == 3, shape[0] == 1 || shape[0] == 3, shape[1] > 0, shape[2] > 0, !mean.isEmpty, !std.isEmpty,
              transforms.allSatisfy(Self.folds) else { return nil }
        // Geometry after a mirror would need the mirrored window; only trailing flips are folded.
        let geometric = transforms.filter { if case .randomErasing = $0 { false } else { true } }
        if let flip = geometric.firstIndex(where: { if case .horizontalFlip = $0 { true } else { false } }),
           !geometric[flip...].allSatisfy({ if case .horizontalFlip = $0 { true } else { false } }) {
            return nil
        }
        (self.transforms, self.shape, self.pixelLimit) = (transforms, shape, pixelLimit)
        self.mean = SIMD4((0..<4).map { mean[min($0, mean.count - 1)] })
        self.std = SIMD4((0..<4).map { std[min($0, std.count - 1)] })
    }

    /// Whether the fused path reproduces `transform`: crops, bilinear resizes and horizontal flips (random erasing acts
    /// later, on the normalised sample, so it is no byte transform here); anything else goes the general way.
    static func folds(_ transform: ImageTransform) -> Bool {
        switch transform {
        case .randomResizedCrop, .resizeShorterSide, .centerCrop, .resize, .horizontalFlip, .randomErasing: return true
        default: return false
        }
    }

    /// Loads the image at `path` into `destination` (C×H×W floats), applying random transforms only when `augment`,
    /// with parameters drawn from `generator` in the order the transforms draw them. Returns false, having written
    /// nothing, for the rare image the fused path cannot reproduce (e.g. a centre crop larger than the image).
    /// Random erasing, which acts on the normalised floats with a generator of its own, is left to the caller.
    public func load(path: String, augment: Bool, generator: inout SeededGenerator,
                     into destination: UnsafeMutablePointer<Float>) throws -> Bool {
        try load(path: path, into: destination) { height, width in
            ResamplePlan(transforms, augment: augment, height: height, width: width, shape: (shape[1], shape[2]),
                         generator: &generator)
        }
    }

    /// Loads the image at `path` into `destination` as `plan` (given the image's height and width) says.
    func load(path: String, into destination: UnsafeMutablePointer<Float>,
              plan makePlan: (_ height: Int, _ width: Int) -> ResamplePlan?) throws -> Bool {
        let buffers = DecodeBuffers.current
        defer { buffers.trim() }
        var clock = LoaderProfile.Clock()
        let length = try ImageDecoder.readFile(path, into: buffers.file)
        clock.lap(.read)
        let image = try ImageDecoder.decodeInterleaved(UnsafeRawBufferPointer(start: buffers.file.pointer, count: length),
                                                       path: path, grey: shape[0] == 1, pixelLimit: pixelLimit,
                                                       buffers: buffers)
        clock.lap(.decode)
        guard let plan = makePlan(image.height, image.width), plan.window.top >= 0, plan.window.left >= 0,
              plan.window.top + plan.window.height <= image.height, plan.window.left + plan.window.width <= image.width,
              plan.output.top >= 0, plan.output.left >= 0, plan.output.top + shape[1] <= plan.resized.height,
              plan.output.left + shape[2] <= plan.resized.width
        else { return false }
        let rows = Resize.taps(input: plan.window.height, output: plan.resized.height,
                               range: plan.output.top..<(plan.output.top + shape[1]))
        let columns = Resize.taps(input: plan.window.width, output: plan.resized.width,
                                  range: plan.output.left..<(plan.output.left + shape[2]))
        let (height, width) = (shape[1], shape[2]), plane = height * width
        let (mean, std, flip) = (self.mean, self.std, plan.flip)
        Resize.resample(image.pixels, rowBytes: image.width * image.bytesPerPixel, bytesPerPixel: image.bytesPerPixel,
                        top: plan.window.top, left: plan.window.left, rows: rows, columns: columns,
                        verticalFirst: Resize.verticalFirst(from: (plan.window.height, plan.window.width), to: plan.resized),
                        buffers: buffers.resample) { y, line in
            if image.bytesPerPixel == 4 {
                ResampleKernels.normaliseRGB(line, width: width, mean: mean, std: std, mirrored: flip, plane: plane,
                                             into: destination + y * width)
            } else {
                ResampleKernels.normaliseGrey(line, width: width, mean: mean[0], std: std[0], mirrored: flip,
                                              into: destination + y * width)
            }
        }
        clock.lap(.resample)
        return true
    }
}

/// The transforms of an `ImagePipeline` folded into a window of the source, one resize, a window of the resized image
/// and a mirror, with the random parameters drawn as the transforms themselves draw them.
struct ResamplePlan: Equatable {
    typealias Window = (top: Int, left: Int, height: Int, width: Int)
    var window: Window
    var resized: (height: Int, width: Int)
    /// Top-left corner of the output in the resized image (its size is the output shape).
    var output: (top: Int, left: Int)
    var flip: Bool

    static func == (a: ResamplePlan, b: ResamplePlan) -> Bool {
        a.window == b.window && a.resized == b.resized && a.output == b.output && a.flip == b.flip
    }
}

extension ResamplePlan {
    /// The plan for an image of `height` × `width` ending at `shape`, or nil when the sequence needs two resizes,
    /// zero padding, or anything else the general path handles alone.
    init?(_ transforms: [ImageTransform], augment: Bool, height: Int, width: Int, shape: (height: Int, width: Int),
          generator: inout SeededGenerator) {
        var window: Window = (0, 0, height, width)
        var resized: (height: Int, width: Int)?
        var output: Window = (0, 0, height, width)
        var flip = false
        /// The centre size×size window of a region of `regionHeight` × `regionWidth`, as ImageTransform.centerCrop places it
        /// (nil when it would pad).
        func centre(_ size: Int, _ regionHeight: Int, _ regionWidth: Int) -> (top: Int, left: Int)? {
            guard size <= regionHeight, size <= regionWidth else { return nil }
            return (Geometric.centeredOffset(side: regionHeight, size: size), Geometric.centeredOffset(side: regionWidth, size: size))
        }
        // As ImageTransform.apply: invalid transforms leave the image alone and draw nothing.
        for transform in transforms where (augment || !transform.isRandom) && transform.problem == nil {
            switch transform {
            case let .randomResizedCrop(size, scale, ratio):
                guard resized == nil else { return nil }
                let (top, left, h, w) = ImageTransform.randomWindow(window.height, window.width, scale, ratio, &generator)
                window = (window.top + top, window.left + left, h, w)
                resized = (size, size)
                output = (0, 0, size, size)
            case let .resizeShorterSide(size):
                guard resized == nil else { return nil }
                let (h, w) = (window.height, window.width)
                let target = h <= w ? (size, max(1, size * w / h)) : (max(1, size * h / w), size)
                resized = target
                output = (0, 0, target.0, target.1)
            case let .resize(h, w):
                guard resized == nil else { return nil }
                resized = (h, w)
                output = (0, 0, h, w)
            case let .centerCrop(size):
                if resized == nil {
                    guard let (top, left) = centre(size, window.height, window.width) else { return nil }
                    window = (window.top + top, window.left + left, size, size)
                    output = (0, 0, size, size)
                } else {
                    guard let (top, left) = centre(size, output.height, output.width) else { return nil }
                    output = (output.top + top, output.left + left, size, size)
                }
            case let .horizontalFlip(probability):
                if generator.nextDouble() < probability { flip.toggle() }
            case .randomErasing:
                continue
            default:
                return nil
            }
        }
        if output.height != shape.height || output.width != shape.width {
            // The general path then resizes the result to the shape: foldable only when nothing was resized yet.
            guard resized == nil else { return nil }
            resized = shape
            output = (0, 0, shape.height, shape.width)
        }
        self.window = window
        self.resized = resized ?? (window.height, window.width)
        self.output = (output.top, output.left)
        self.flip = flip
    }
}

/// Where loading time goes, per stage, in CPU time summed over all loader threads; collected only when the variable
/// `FOVEA_PROFILE` is set (`fovea bench` then prints it).
public enum LoaderProfile {
    /// A stage of loading one sample.
    public enum Stage: String, CaseIterable, Sendable {
        /// Reading the file into memory.
        case read
        /// JPEG / PNG decoding to interleaved pixels.
        case decode
        /// Crop, resize, flip and normalisation into the batch (fused).
        case resample
        /// Everything else of the general (unfused) path: decode, transforms, normalisation.
        case generalPath = "general-path"
    }

    /// Whether stages are timed (FOVEA_PROFILE is set).
    public static let enabled = ProcessInfo.processInfo.environment["FOVEA_PROFILE"] != nil
    nonisolated(unsafe) private static var nanoseconds: [Stage: UInt64] = [:]
    nonisolated(unsafe) private static var samples: [Stage: Int] = [:]
    private static let lock = NSLock()

    /// Adds `elapsed` nanoseconds to `stage`.
    static func add(_ stage: Stage, _ elapsed: UInt64) {
        lock.lock()
        nanoseconds[stage, default: 0] += elapsed
        samples[stage, default: 0] += 1
        lock.unlock()
    }

    /// Milliseconds per sample spent in each stage so far (thread CPU time, summed over threads).
    public static func millisecondsPerSample() -> [(stage: Stage, milliseconds: Double, samples: Int)] {
        lock.lock()
        defer { lock.unlock() }
        return Stage.allCases.compactMap { stage in
            guard let count = samples[stage], count > 0 else { return nil }
            return (stage, Double(nanoseconds[stage] ?? 0) / 1e6 / Double(count), count)
        }
    }

    /// Forgets what was collected.
    public static func reset() {
        lock.lock()
        (nanoseconds, samples) = ([:], [:])
        lock.unlock()
    }

    /// Times consecutive stages of one sample in CPU time of the calling thread, so that other processes on the
    /// machine do not inflate the figures (does nothing unless profiling is enabled).
    struct Clock {
        var last: UInt64 = LoaderProfile.enabled ? Clock.threadTime() : 0

        /// Charges the time since the previous lap to `stage`.
        mutating func lap(_ stage: Stage) {
            guard LoaderProfile.enabled else { return }
            let now = Clock.threadTime()
            LoaderProfile.add(stage, now - last)
            last = now
        }

        static func threadTime() -> UInt64 {
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
        }
    }
}
