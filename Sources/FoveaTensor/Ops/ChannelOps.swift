import CDNNL
import CFoveaKernels
import Foundation

/// Operations that broadcast or reduce per (image, channel): squeeze-excitation scaling, adaptive pooling, dropout.

/// x (N,C,H,W) · s (N,C,1,1), broadcasting s over H and W (squeeze-excitation). Result in x's layout, computed in that
/// layout (no reorders of the large operand). Differentiable in both.
public func multiplyChannels(_ x: Tensor, by scale: Tensor, name: String = "multiplyChannels") throws -> Tensor {
    let result = try scaleChannels(x, by: scale, name: name)
    OperationTrace.record(.multiplyChannels, [x, scale], result)
    return result
}

private func scaleChannels(_ x: Tensor, by scale: Tensor, name: String) throws -> Tensor {
    guard x.shape.count == 4, scale.shape == [x.shape[0], x.shape[1], 1, 1] else {
        throw TensorError.incompatibleShapes(operation: name, x.shape, scale.shape)
    }
    let source = x.detached
    let factors = try scale.detached.reordered(to: .plain)
    if let planes = ChannelPlanes(x.shape, x.layout) {
        return try multiplyChannels(x, source, scale, factors, planes)
    }
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

/// An (N,C,H,W) tensor whose channels are the innermost lanes of each pixel, in multiples of 8 (nChw8c and nChw16c;
/// nhwc with 8k channels), seen as `groups` planes of `pixels` pixels × `lanes` values: the shape Fovea's own channel
/// kernels (`CFoveaKernels/ChannelOps.c`) take. Nil for other layouts, and always with `FOVEA_ONEDNN_CHANNEL_OPS=1`
/// (oneDNN's pooling and binary primitives, for measurements).
struct ChannelPlanes {
    let groups: Int, pixels: Int, lanes: Int
    let images: Int, channels: Int

    init?(_ shape: [Int], _ layout: Layout) {
        guard shape.count == 4, !oneDNNChannelOps else { return nil }
        (images, channels, pixels) = (shape[0], shape[1], shape[2] * shape[3])
        switch layout {
        case .nChw8c, .nChw16c:
            lanes = layout.channelBlock
            groups = images * ((channels + lanes - 1) / lanes)
        case .nhwc where channels % 8 == 0:
            (groups, lanes) = (images, channels)
        default:
            return nil
        }
    }

    /// Per-(image, channel) values (N·C, plain) spread over the planes' lanes, zero in the block padding.
    func spread(_ values: UnsafePointer<Float>, times factor: Float = 1) -> Storage {
        let spread = Storage(capacity: groups * lanes)
        let perImage = groups / images * lanes
        for image in 0..<images {
            for slot in 0..<perImage {
                spread.pointer[image * perImage + slot] = slot < channels ? values[image * channels + slot] * factor : 0
            }
        }
        return spread
    }

    /// The inverse of `spread`: per-plane lane values back to N·C plain values.
    func gather(_ spread: UnsafePointer<Float>, into values: UnsafeMutablePointer<Float>) {
        let perImage = groups / images * lanes
        for image in 0..<images {
            for channel in 0..<channels { values[image * channels + channel] = spread[image * perImage + channel] }
        }
    }
}

/// `FOVEA_ONEDNN_CHANNEL_OPS=1` keeps squeeze-excitation's channel pooling and scaling on oneDNN's primitives.
let oneDNNChannelOps = ProcessInfo.processInfo.environment["FOVEA_ONEDNN_CHANNEL_OPS"] != nil

/// `multiplyChannels` on Fovea's channel kernels: the product, its gradient with respect to x (the gradient scaled by
/// the same factors) and with respect to the factors (per-channel sums of gradient · x), all in x's layout.
private func multiplyChannels(_ x: Tensor, _ source: Tensor, _ scale: Tensor, _ factors: Tensor,
                              _ planes: ChannelPlanes) throws -> Tensor {
    let layout = x.layout
    let spread = planes.spread(factors.storage.pointer)
    let result = try Tensor.uninitialized(x.shape, layout: layout)
    let profileName = { (kind: String) in "\(kind) \(x.shape + [layout.rawValue])" }
    runOwnKernel(profileName("scale_channels")) {
        fovea_scale_channels(source.storage.pointer, spread.pointer, planes.groups, planes.pixels, planes.lanes,
                             result.storage.pointer)
    }
    return result.recorded(from: [x, scale]) { gradient in
        let g = try gradient.detached.reordered(to: layout)
        let dx = try Tensor.uninitialized(x.shape, layout: layout), ds = try Tensor.uninitialized(scale.shape)
        let sums = Storage(capacity: planes.groups * planes.lanes)
        runOwnKernel(profileName("scale_channels_bwd")) {
            fovea_scale_channels(g.storage.pointer, spread.pointer, planes.groups, planes.pixels, planes.lanes,
                                 dx.storage.pointer)
            fovea_channel_dot(g.storage.pointer, source.storage.pointer, planes.groups, planes.pixels, planes.lanes,
                              sums.pointer)
        }
        planes.gather(sums.pointer, into: ds.storage.pointer)
        withExtendedLifetime((g, source)) {}
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
    let x = FeatureMapProbe.observe(x)
    let result = try adaptiveAveragePool(x, outputSize: outputSize, name: name)
    OperationTrace.record(.adaptiveAveragePool(outputSize: outputSize), [x], result)
    return result
}

private func adaptiveAveragePool(_ x: Tensor, outputSize: [Int], name: String) throws -> Tensor {
    guard x.shape.count == 4, outputSize.count == 2, outputSize.allSatisfy({ $0 > 0 }) else {
        throw TensorError.shapeMismatch(operation: name, expected: "(N, C, H, W) and a positive output size", actual: x.shape)
    }
    let (h, w) = (x.shape[2], x.shape[3])
    if outputSize == [1, 1], let planes = ChannelPlanes(x.shape, x.layout) {
        return try globalAveragePool(x, planes)
    }
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

/// Global average pooling on Fovea's channel kernels: (N,C,1,1) in x's layout, whose storage is exactly the planes'
/// lane sums; the gradient spreads each output gradient / (H·W) over its plane.
private func globalAveragePool(_ x: Tensor, _ planes: ChannelPlanes) throws -> Tensor {
    let layout = x.layout, source = x.detached
    let result = try Tensor.uninitialized([planes.images, planes.channels, 1, 1], layout: layout)
    precondition(result.storage.capacity == planes.groups * planes.lanes, "channel planes do not match the layout")
    let profileName = { (kind: String) in "\(kind) \(x.shape + [layout.rawValue])" }
    runOwnKernel(profileName("channel_mean")) {
        fovea_channel_sums(source.storage.pointer, planes.groups, planes.pixels, planes.lanes, 1 / Float(planes.pixels),
                           result.storage.pointer)
    }
    withExtendedLifetime(source) {}
    return result.recorded(from: [x]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        let spread = planes.spread(g.storage.pointer, times: 1 / Float(planes.pixels))
        let dx = try Tensor.uninitialized(x.shape, layout: layout)
        runOwnKernel(profileName("channel_mean_bwd")) {
            fovea_scale_channels(nil, spread.pointer, planes.groups, planes.pixels, planes.lanes, dx.storage.pointer)
        }
        withExtendedLifetime(g) {}
        return [dx]
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
