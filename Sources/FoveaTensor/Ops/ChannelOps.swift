import CDNNL

/// Operations that broadcast or reduce per (image, channel): squeeze-excitation scaling, adaptive pooling, dropout.

/// x (N,C,H,W) · s (N,C,1,1), broadcasting s over H and W (squeeze-excitation). Result in x's layout, computed in that
/// layout (no reorders of the large operand). Differentiable in both.
public func multiplyChannels(_ x: Tensor, by scale: Tensor, name: String = "multiplyChannels") throws -> Tensor {
    guard x.shape.count == 4, scale.shape == [x.shape[0], x.shape[1], 1, 1] else {
        throw TensorError.incompatibleShapes(operation: name, x.shape, scale.shape)
    }
    let source = x.detached
    let factors = try scale.detached.reordered(to: .plain)
    let result = try Tensor.uninitialized(x.shape, layout: x.layout)
    let (a, f, y) = (source.storage.pointer, factors.storage.pointer, result.storage.pointer)
    let block = x.layout.channelBlock
    if x.count >= binaryKernelThreshold, try channelScalingKernel(source.storage, x.shape, x.layout, factors,
                                                                    into: result.storage) {
    } else if block > 1 {
        // Blocked: per (image, channel block), one row of lane factors applied to every pixel's block (vectorises).
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let blocks = (c + block - 1) / block
        var lanes = [Float](repeating: 0, count: block)
        for image in 0..<n {
            for b in 0..<blocks {
                for lane in 0..<block { lanes[lane] = b * block + lane < c ? f[image * c + b * block + lane] : 0 }
                let base = (image * blocks + b) * plane * block
                lanes.withUnsafeBufferPointer { factor in
                    for pixel in 0..<plane {
                        let row = base + pixel * block
                        for lane in 0..<block { y[row + lane] = a[row + lane] * factor[lane] }
                    }
                }
            }
        }
    } else {
        forEachChannelRun(x.shape, x.layout) { nc, start, stride, count in
            let factor = f[nc]
            var offset = start
            for _ in 0..<count {
                y[offset] = a[offset] * factor
                offset += stride
            }
        }
    }
    withExtendedLifetime((source, factors)) {}
    let layout = x.layout
    return result.recorded(from: [x, scale]) { [source, factors] gradient in
        // Pointers into the saved tensors; the capture list keeps their storage alive.
        let (a, f) = (source.storage.pointer, factors.storage.pointer)
        let g = try gradient.detached.reordered(to: layout)
        let dx = try Tensor.uninitialized(x.shape, layout: layout), ds = Tensor.zeros(scale.shape)
        let (gp, dxp, dsp) = (g.storage.pointer, dx.storage.pointer, ds.storage.pointer)
        let scaled = try x.count >= binaryKernelThreshold
            && channelScalingKernel(g.storage, x.shape, layout, factors, into: dx.storage)
        forEachChannelRun(x.shape, layout) { nc, start, stride, count in
            let factor = nc < 0 ? 0 : f[nc]
            var total: Float = 0
            var offset = start
            for _ in 0..<count {
                if !scaled { dxp[offset] = nc < 0 ? 0 : gp[offset] * factor }
                total += gp[offset] * a[offset]
                offset += stride
            }
            if nc >= 0 { dsp[nc] += total }
        }
        withExtendedLifetime(g) {}
        return [dx, ds]
    }
}

/// `y = x · s` per (image, channel) with oneDNN's binary primitive over a plain view of x's layout in which the factors
/// broadcast along one dimension: nchw as (N·C, H·W) · (N·C, 1); nhwc as (N, H·W, C) · (N, 1, C); blocked as
/// (N·C/b, H·W, b) · (N·C/b, 1, b) with zero factors for the padding lanes (which stay zero). False when oneDNN has no
/// optimised kernel for the view.
func channelScalingKernel(_ x: Storage, _ shape: [Int], _ layout: Layout, _ factors: Tensor,
                          into y: Storage) throws -> Bool {
    let (n, c, plane) = (shape[0], shape[1], shape[2] * shape[3])
    switch layout {
    case .plain:
        return try binaryKernel(dnnl_binary_mul, x, [n * c, plane], factors.storage, [n * c, 1], into: y)
    case .nhwc:
        // One image: rows of k pixels, (H·W/k, k·C) · (1, k·C) with the factors repeated k times: the per-channel
        // broadcast oneDNN parallelises over rows, with rows wide enough for its vector loop (C alone may be 16).
        if n == 1 {
            let k = (1...max(1, 1024 / c)).last { plane % $0 == 0 } ?? 1
            let tiled = Storage(capacity: k * c)
            for i in 0..<(k * c) { tiled.pointer[i] = factors.storage.pointer[i % c] }
            return try binaryKernel(dnnl_binary_mul, x, [plane / k, k * c], tiled, [1, k * c], into: y)
        }
        return try binaryKernel(dnnl_binary_mul, x, [n, plane, c], factors.storage, [n, 1, c], into: y)
    case .nChw8c, .nChw16c:
        let block = layout.channelBlock, blocks = (c + block - 1) / block
        let padded = Storage(capacity: n * blocks * block)
        let (f, p) = (factors.storage.pointer, padded.pointer)
        for image in 0..<n {
            for channel in 0..<(blocks * block) { p[image * blocks * block + channel] = channel < c ? f[image * c + channel] : 0 }
        }
        return try binaryKernel(dnnl_binary_mul, x, [n * blocks, plane, block], padded, [n * blocks, 1, block], into: y)
    }
}

/// Visits every element of an (N,C,H,W) tensor stored in `layout`, as runs of elements that share one (image, channel):
/// `body(n·C + c, first offset, stride, count)`. Lanes past C in blocked layouts (the block padding) come as runs
/// with channel index −1.
func forEachChannelRun(_ shape: [Int], _ layout: Layout, _ body: (Int, Int, Int, Int) -> Void) {
    let (n, c, plane) = (shape[0], shape[1], shape[2] * shape[3])
    switch layout {
    case .plain:
        for nc in 0..<(n * c) { body(nc, nc * plane, 1, plane) }
    case .nhwc:
        for image in 0..<n {
            for channel in 0..<c { body(image * c + channel, image * plane * c + channel, c, plane) }
        }
    case .nChw8c, .nChw16c:
        let block = layout.channelBlock, blocks = (c + block - 1) / block
        for image in 0..<n {
            for b in 0..<blocks {
                let base = (image * blocks + b) * plane * block
                for lane in 0..<block {
                    let channel = b * block + lane
                    body(channel < c ? image * c + channel : -1, base + lane, block, plane)
                }
            }
        }
    }
}

/// Adaptive average pooling to `outputSize` [P, Q] with PyTorch's window rule
/// (start ⌊i·H/P⌋, end ⌈(i+1)·H/P⌉). Uses oneDNN pooling when the windows are uniform. Differentiable.
public func adaptiveAvgPool2d(_ x: Tensor, outputSize: [Int], name: String = "adaptiveAvgPool2d") throws -> Tensor {
    guard x.shape.count == 4, outputSize.count == 2, outputSize.allSatisfy({ $0 > 0 }) else {
        throw TensorError.shapeMismatch(operation: name, expected: "(N, C, H, W) and a positive output size", actual: x.shape)
    }
    let (h, w) = (x.shape[2], x.shape[3])
    if h % outputSize[0] == 0 && w % outputSize[1] == 0 {
        let kernel = [h / outputSize[0], w / outputSize[1]]
        return try avgPool2d(x, geometry: PoolingGeometry(kernel: kernel), name: name)
    }
    let (p, q) = (outputSize[0], outputSize[1])
    let rows = (0..<p).map { ($0 * h / p, (($0 + 1) * h + p - 1) / p) }
    let columns = (0..<q).map { ($0 * w / q, (($0 + 1) * w + q - 1) / q) }
    let source = try x.detached.reordered(to: .plain)
    let planes = x.shape[0] * x.shape[1]
    let result = try Tensor.uninitialized([x.shape[0], x.shape[1], p, q])
    let (a, c) = (source.storage.pointer, result.storage.pointer)
    for plane in 0..<planes {
        for (i, (top, bottom)) in rows.enumerated() {
            for (j, (left, right)) in columns.enumerated() {
                var total: Float = 0
                for y in top..<bottom { for xx in left..<right { total += a[(plane * h + y) * w + xx] } }
                c[(plane * p + i) * q + j] = total / Float((bottom - top) * (right - left))
            }
        }
    }
    withExtendedLifetime(source) {}
    let layout = x.layout
    return result.recorded(from: [x]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        let dx = Tensor.zeros(x.shape)
        let (gp, dp) = (g.storage.pointer, dx.storage.pointer)
        for plane in 0..<planes {
            for (i, (top, bottom)) in rows.enumerated() {
                for (j, (left, right)) in columns.enumerated() {
                    let share = gp[(plane * p + i) * q + j] / Float((bottom - top) * (right - left))
                    for y in top..<bottom { for xx in left..<right { dp[(plane * h + y) * w + xx] += share } }
                }
            }
        }
        withExtendedLifetime(g) {}
        return [try dx.reordered(to: layout)]
    }
}

/// Inverted dropout: zeroes each element with probability `probability` and scales the rest by 1/(1−p).
/// The mask is drawn from `generator`. Differentiable.
public func dropout(_ x: Tensor, probability: Float, generator: inout SeededGenerator) throws -> Tensor {
    guard (0..<1).contains(probability) else {
        throw TensorError.invalidArgument(operation: "dropout", message: "probability \(probability) not in [0, 1)")
    }
    if probability == 0 { return x }
    let mask = Tensor(shape: x.shape, layout: x.layout, storage: Storage(capacity: x.storage.capacity))
    let keep = 1 / (1 - probability)
    let m = mask.storage.pointer
    for i in 0..<x.storage.capacity { m[i] = generator.nextUniform() < probability ? 0 : keep }
    let result = Tensor(shape: x.shape, layout: x.layout, storage: Storage(capacity: x.storage.capacity))
    let (a, c) = (x.storage.pointer, result.storage.pointer)
    for i in 0..<x.storage.capacity { c[i] = a[i] * m[i] }
    return result.recorded(from: [x]) { [mask] gradient in
        let m = mask.storage.pointer
        let g = try gradient.detached.reordered(to: mask.layout)
        let dx = Tensor(shape: x.shape, layout: x.layout, storage: Storage(capacity: x.storage.capacity))
        let (gp, dp) = (g.storage.pointer, dx.storage.pointer)
        for i in 0..<x.storage.capacity { dp[i] = gp[i] * m[i] }
        withExtendedLifetime(g) {}
        return [dx]
    }
}

/// Stochastic depth (Huang et al. 2016, "row" mode as torchvision): drops each sample's whole tensor
/// with probability `probability` and scales survivors by 1/(1−p). The mask comes from `generator`. Differentiable.
public func dropSamples(_ x: Tensor, probability: Float, generator: inout SeededGenerator) throws -> Tensor {
    guard (0..<1).contains(probability) else {
        throw TensorError.invalidArgument(operation: "stochasticDepth", message: "probability \(probability) not in [0, 1)")
    }
    guard probability > 0, let n = x.shape.first, n > 0 else { return x }
    // Every layout keeps the batch dimension outermost, so each sample is one contiguous chunk.
    let chunk = x.storage.capacity / n
    let keep = 1 / (1 - probability)
    let factors = (0..<n).map { _ in generator.nextUniform() < probability ? Float(0) : keep }
    func scaled(_ t: Tensor) -> Tensor {
        let result = Tensor(shape: t.shape, layout: t.layout, storage: Storage(capacity: t.storage.capacity))
        let (a, c) = (t.storage.pointer, result.storage.pointer)
        for sample in 0..<n {
            let factor = factors[sample]
            for i in (sample * chunk)..<((sample + 1) * chunk) { c[i] = a[i] * factor }
        }
        return result
    }
    let layout = x.layout
    return scaled(x).recorded(from: [x]) { gradient in [scaled(try gradient.detached.reordered(to: layout))] }
}
