import Foundation
/// A node of the runtime tape: how to turn the gradient of one result into gradients of its inputs.
final class Node {
    /// Nodes of the inputs, in the order the pullback returns their gradients (`nil`: no gradient needed).
    var inputs: [Node?]
    /// Maps the output gradient to one gradient per input; released after use to free saved activations.
    var pullback: ((Tensor) throws -> [Tensor?])?
    /// For leaves (parameters): receives the accumulated gradient.
    var sink: ((Tensor) throws -> Void)?
    /// Gradient accumulated so far during a backward pass.
    var gradient: Tensor?

    init(inputs: [Node?], pullback: @escaping (Tensor) throws -> [Tensor?]) {
        self.inputs = inputs
        self.pullback = pullback
    }

    init(sink: @escaping (Tensor) throws -> Void) {
        inputs = []
        self.sink = sink
    }
}

/// Controls whether operations record themselves for backpropagation.
public enum Autodiff {
    /// Per-thread recording switch (threads and concurrent tests do not see each other's `withoutRecording`).
    static var recording: Bool {
        get { pthread_getspecific(recordingKey) == nil }
        set { pthread_setspecific(recordingKey, newValue ? nil : UnsafeRawPointer(bitPattern: 1)) }
    }
    private static let recordingKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether operations currently record tape nodes.
    public static var isRecording: Bool { recording }

    /// Runs `body` with recording switched off (inference: no tape, no saved activations).
    public static func withoutRecording<R>(_ body: () throws -> R) rethrows -> R {
        let saved = recording
        recording = false
        defer { recording = saved }
        return try body()
    }
}

extension Tensor {
    /// This tensor as a tape leaf whose gradient is handed to `sink` during `backward()`.
    public func trackingGradient(into sink: @escaping (Tensor) throws -> Void) -> Tensor {
        guard Autodiff.recording else { return self }
        return Tensor(shape: shape, layout: layout, storage: storage, node: Node(sink: sink))
    }

    /// Records `result` as computed from `inputs` with `pullback`, when any input requires a gradient.
    func recorded(from inputs: [Tensor], pullback: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
        guard Autodiff.recording, inputs.contains(where: { $0.node != nil }) else { return self }
        var result = self
        result.node = Node(inputs: inputs.map(\.node), pullback: pullback)
        return result
    }

    /// Backpropagates from this tensor (normally a scalar loss; the seed gradient is all ones).
    ///
    /// Walks the tape in reverse topological order with an explicit stack, so depth is unlimited.
    public func backward(seed: Tensor? = nil) throws {
        guard let root = node else { return }
        // Iterative post-order DFS gives a topological order.
        var order: [Node] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (current, next) = stack.popLast() {
            if next < current.inputs.count {
                stack.append((current, next + 1))
                if let child = current.inputs[next], visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(current)
            }
        }
        root.gradient = seed ?? Tensor(repeating: 1, shape: shape)
        for current in order.reversed() {
            guard let gradient = current.gradient else { continue }
            current.gradient = nil
            if let sink = current.sink {
                try sink(gradient)
                continue
            }
            guard let pullback = current.pullback else { continue }
            let inputGradients = try pullback(gradient)
            current.pullback = nil
            for (input, inputGradient) in zip(current.inputs, inputGradients) {
                guard let input, let inputGradient else { continue }
                if let existing = input.gradient {
                    input.gradient = try existing.adding(inputGradient)
                } else {
                    input.gradient = inputGradient
                }
            }
            current.inputs = []
        }
    }
}
