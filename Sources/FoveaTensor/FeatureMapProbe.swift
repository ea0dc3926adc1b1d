import Foundation

/// Finds a classifier's last convolutional feature map and its gradient, for Grad-CAM (Selvaraju et al. 2017).
///
/// Every CNN reduces its last feature map to a vector before its classifier, by a global or adaptive average pool or
/// by flattening; both operations report their (N, C, H, W) input to the probe active on the calling thread. The probe
/// keeps each reported map and the gradient that reaches it: the last map with more than one position that the forward
/// pass reduces is the target (a pool's 1×1 output flattened afterwards, and a squeeze-excitation block's pooling
/// earlier in the network, are passed over). With the parameters frozen, the first map is a tape leaf, so a backward
/// pass from the logits runs no further back than it.
///
/// This is the probe of imported ONNX graphs too (their GlobalAveragePool and Flatten run the same operations).
public final class FeatureMapProbe {
    /// A reported map: its values and, after `backward()`, the gradient of the seeded output with respect to them.
    public final class Map {
        public let values: Tensor
        public fileprivate(set) var gradient: Tensor?
        init(values: Tensor) { self.values = values }
    }

    /// Every (N, C, H, W) map reported so far, in the order the forward pass reached them.
    public private(set) var maps: [Map] = []

    /// The Grad-CAM target: the last reported map with more than one spatial position, else the last one.
    public var target: Map? { maps.last(where: { $0.values.shape[2] * $0.values.shape[3] > 1 }) ?? maps.last }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Runs `body` with a new probe active on this thread (tape recording must be on for gradients to reach it).
    public static func run<R>(_ body: () throws -> R) rethrows -> (R, FeatureMapProbe) {
        let probe = FeatureMapProbe()
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(probe).toOpaque())
        defer { pthread_setspecific(key, previous) }
        return (try body(), probe)
    }

    /// Called by the reducing operations with their input: returns it, or its leaf copy while a probe is active.
    static func observe(_ x: Tensor) -> Tensor {
        guard let raw = pthread_getspecific(key), x.shape.count == 4, Autodiff.recording else { return x }
        let probe = Unmanaged<FeatureMapProbe>.fromOpaque(raw).takeUnretainedValue()
        let map = Map(values: x.detached)
        probe.maps.append(map)
        func keep(_ gradient: Tensor) throws { map.gradient = try map.gradient.map { try $0.adding(gradient) } ?? gradient }
        // The first map on a tape-free trunk becomes a leaf; later ones (a pool's output flattened, or the network's
        // last map after a squeeze-excitation pooling) pass their gradient on, so the earlier maps still receive theirs.
        guard x.requiresGradient else { return map.values.trackingGradient(into: keep) }
        return x.detached.recorded(from: [x]) { gradient in
            try keep(gradient)
            return [gradient]
        }
    }
}
