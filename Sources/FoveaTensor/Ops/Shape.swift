/// Shape operations: reshape, flatten and channel concatenation.
extension Tensor {
    /// The same elements with a new shape of equal count (reorders to plain first). Differentiable.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var newShape = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else {
                throw TensorError.shapeMismatch(operation: "reshape", expected: "\(newShape)", actual: shape)
            }
            newShape[inferred] = count / known
        }
        guard newShape.allSatisfy({ $0 >= 0 }), newShape.reduce(1, *) == count else {
            throw TensorError.shapeMismatch(operation: "reshape", expected: "\(count) elements as \(newShape)", actual: shape)
        }
        let plain = try detached.reordered(to: .plain)
        let result = Tensor(shape: newShape, layout: .plain, storage: plain.storage)
        OperationTrace.record(.reshape, [plain], result)
        let inputShape = shape, inputLayout = layout
        return result.recorded(from: [self]) { gradient in
            let plainGradient = try gradient.detached.reordered(to: .plain)
            return [try Tensor(shape: inputShape, layout: .plain, storage: plainGradient.storage).reordered(to: inputLayout)]
        }
    }

    /// (N, C, H, W) → (N, C·H·W) in plain layout. Differentiable.
    public func flattened() throws -> Tensor {
        guard let first = shape.first else { throw TensorError.shapeMismatch(operation: "flatten", expected: "(N, …)", actual: shape) }
        return try FeatureMapProbe.observe(self).reshaped([first, count / max(first, 1)])
    }
}

/// Concatenates (N, Cᵢ, H, W) tensors along channels → (N, ΣCᵢ, H, W), in plain layout. Differentiable.
public func concatenateChannels(_ parts: [Tensor], name: String = "concatenate") throws -> Tensor {
    guard let first = parts.first, first.shape.count == 4 else {
        throw TensorError.invalidArgument(operation: name, message: "needs at least one (N, C, H, W) tensor")
    }
    for part in parts where part.shape.count != 4 || part.shape[0] != first.shape[0] || part.shape[2...] != first.shape[2...] {
        throw TensorError.incompatibleShapes(operation: name, first.shape, part.shape)
    }
    let (n, h, w) = (first.shape[0], first.shape[2], first.shape[3])
    let channels = parts.map { $0.shape[1] }
    let total = channels.reduce(0, +)
    let result = try Tensor.uninitialized([n, total, h, w])
    let plane = h * w
    var offset = 0
    for (part, c) in zip(parts, channels) {
        let plain = try part.detached.reordered(to: .plain)
        for image in 0..<n {
            (result.storage.pointer + (image * total + offset) * plane)
                .update(from: plain.storage.pointer + image * c * plane, count: c * plane)
        }
        offset += c
    }
    let layouts = parts.map(\.layout)
    OperationTrace.record(.concatenateChannels, parts, result)
    return result.recorded(from: parts) { gradient in
        let plain = try gradient.detached.reordered(to: .plain)
        var gradients: [Tensor?] = []
        var offset = 0
        for (c, layout) in zip(channels, layouts) {
            let slice = try Tensor.uninitialized([n, c, h, w])
            for image in 0..<n {
                slice.storage.pointer.advanced(by: image * c * plane)
                    .update(from: plain.storage.pointer + (image * total + offset) * plane, count: c * plane)
            }
            gradients.append(try slice.reordered(to: layout))
            offset += c
        }
        return gradients
    }
}

extension Tensor {
    /// Images `range` of the batch (the first dimension), in this tensor's layout: every layout keeps each image
    /// contiguous, so this is one copy. Differentiable.
    public func batchSlice(_ range: Range<Int>) throws -> Tensor {
        guard let n = shape.first, range.lowerBound >= 0, range.upperBound <= n, !range.isEmpty else {
            throw TensorError.invalidArgument(operation: "batchSlice", message: "images \(range) of a batch of \(shape.first ?? 0)")
        }
        let perImage = try elementsPerImage(shape, layout)
        let sliceShape = [range.count] + shape.dropFirst()
        let result = Tensor(shape: sliceShape, layout: layout, storage: Storage(capacity: perImage * range.count))
        result.storage.pointer.update(from: storage.pointer + range.lowerBound * perImage, count: perImage * range.count)
        let (fullShape, fullLayout) = (shape, layout)
        return result.recorded(from: [self]) { gradient in
            let g = try gradient.detached.reordered(to: fullLayout)
            let full = Tensor(shape: fullShape, layout: fullLayout, storage: Storage(capacity: perImage * n))
            full.storage.pointer.update(repeating: 0, count: perImage * n)
            (full.storage.pointer + range.lowerBound * perImage).update(from: g.storage.pointer, count: perImage * range.count)
            return [full]
        }
    }
}

/// Concatenates tensors along the batch (first) dimension; the result takes the first part's layout. Differentiable.
public func concatenateBatch(_ parts: [Tensor], name: String = "concatenateBatch") throws -> Tensor {
    guard let first = parts.first, !first.shape.isEmpty else {
        throw TensorError.invalidArgument(operation: name, message: "needs at least one tensor with a batch dimension")
    }
    for part in parts where part.shape.count != first.shape.count || part.shape.dropFirst() != first.shape.dropFirst() {
        throw TensorError.incompatibleShapes(operation: name, first.shape, part.shape)
    }
    if parts.count == 1 { return first }
    let arranged = try parts.map { try $0.detached.reordered(to: first.layout) }
    let counts = parts.map { $0.shape[0] }
    let perImage = try elementsPerImage(first.shape, first.layout)
    let total = counts.reduce(0, +)
    let result = Tensor(shape: [total] + first.shape.dropFirst(), layout: first.layout, storage: Storage(capacity: perImage * total))
    var offset = 0
    for (part, count) in zip(arranged, counts) {
        (result.storage.pointer + offset * perImage).update(from: part.storage.pointer, count: count * perImage)
        offset += count
    }
    return result.recorded(from: parts) { gradient in
        var start = 0
        return try counts.map { count in
            defer { start += count }
            return try gradient.detached.batchSlice(start..<(start + count))
        }
    }
}

/// Elements one image of a batch occupies in `layout`, blocking padding included.
func elementsPerImage(_ shape: [Int], _ layout: Layout) throws -> Int {
    let single = [1] + shape.dropFirst()
    return layout == .plain ? single.reduce(1, *) : byteSize(try memoryDescriptor(single, layout)) / 4
}
