import Foundation

/// Pure colour and filter functions of planar byte images with the semantics of torchvision's tensor backend on
/// uint8 (Float arithmetic; blends truncate toward zero, filters round to nearest). One-channel images are grey:
/// saturation, hue and grayscale leave them unchanged, as torchvision does.
public enum Photometric {
    /// Per-pixel luma 0.2989 R + 0.587 G + 0.114 B truncated to a byte (ITU-R 601-2), one plane of height × width.
    public static func luma(_ image: DecodedImage) -> [UInt8] {
        let plane = image.height * image.width
        guard image.channels >= 3 else { return Array(image.pixels.prefix(plane)) }
        var result = [UInt8](repeating: 0, count: plane)
        image.pixels.withUnsafeBufferPointer { p in
            result.withUnsafeMutableBufferPointer { out in
                for i in 0..<plane {
                    let value = Float(0.2989) * Float(p[i]) + Float(0.587) * Float(p[plane + i]) + Float(0.114) * Float(p[2 * plane + i])
                    out[i] = UInt8(max(0, min(255, value)))
                }
            }
        }
        return result
    }

    /// The image as grey: `outputChannels` (1 or 3) copies of its luma (torchvision `rgb_to_grayscale`).
    public static func grayscale(_ image: DecodedImage, outputChannels: Int) -> DecodedImage {
        let gray = luma(image), copies = outputChannels == 3 ? 3 : 1
        return DecodedImage(channels: copies, height: image.height, width: image.width,
                            pixels: Array([[UInt8]](repeating: gray, count: copies).joined()))
    }

    /// ratio · a + (1 − ratio) · b clamped to 0…255 and truncated, with `b` given per pixel of each plane.
    static func blend(_ image: DecodedImage, ratio: Double, with other: (_ channel: Int, _ index: Int) -> Float) -> DecodedImage {
        var result = image
        let plane = image.height * image.width, r = Float(ratio), rest = Float(1 - ratio)
        image.pixels.withUnsafeBufferPointer { p in
            result.pixels.withUnsafeMutableBufferPointer { out in
                for c in 0..<image.channels {
                    for i in 0..<plane {
                        let value = r * Float(p[c * plane + i]) + rest * other(c, i)
                        out[c * plane + i] = UInt8(max(0, min(255, value)))
                    }
                }
            }
        }
        return result
    }

    /// Brightness × `factor` (0 black, 1 unchanged): torchvision `adjust_brightness`.
    public static func adjustBrightness(_ image: DecodedImage, factor: Double) -> DecodedImage {
        blend(image, ratio: factor) { _, _ in 0 }
    }

    /// Contrast about the mean luma (0 flat grey, 1 unchanged): torchvision `adjust_contrast`.
    public static func adjustContrast(_ image: DecodedImage, factor: Double) -> DecodedImage {
        let gray = image.channels >= 3 ? luma(image) : image.pixels
        let mean = Float(gray.reduce(0.0) { $0 + Double($1) } / Double(max(1, gray.count)))
        return blend(image, ratio: factor) { _, _ in mean }
    }

    /// Saturation: a blend with the luma image (0 grey, 1 unchanged): torchvision `adjust_saturation`.
    public static func adjustSaturation(_ image: DecodedImage, factor: Double) -> DecodedImage {
        guard image.channels >= 3 else { return image }
        let gray = luma(image)
        return gray.withUnsafeBufferPointer { g in blend(image, ratio: factor) { _, i in Float(g[i]) } }
    }

    /// Hue rotated by `shift` turns (−0.5…0.5) in HSV space, back to bytes as ⌊255.999·x⌋: torchvision `adjust_hue`.
    public static func adjustHue(_ image: DecodedImage, shift: Double) -> DecodedImage {
        guard image.channels >= 3 else { return image }
        var result = image
        // torch divides by a scalar as a multiplication by its reciprocal.
        let plane = image.height * image.width, delta = Float(shift), inverse = 1 / Float(255)
        image.pixels.withUnsafeBufferPointer { p in
            result.pixels.withUnsafeMutableBufferPointer { out in
                for i in 0..<plane {
                    let r = Float(p[i]) * inverse, g = Float(p[plane + i]) * inverse, b = Float(p[2 * plane + i]) * inverse
                    var (h, s, v) = hsv(r, g, b)
                    h = (h + delta).truncatingRemainder(dividingBy: 1)
                    if h < 0 { h += 1 }
                    let (r2, g2, b2) = rgb(h, s, v)
                    out[i] = UInt8(max(0, min(255, r2 * 255.999)))
                    out[plane + i] = UInt8(max(0, min(255, g2 * 255.999)))
                    out[2 * plane + i] = UInt8(max(0, min(255, b2 * 255.999)))
                }
            }
        }
        return result
    }

    /// Hue (turns), saturation and value of an RGB colour in [0, 1].
    static func hsv(_ r: Float, _ g: Float, _ b: Float) -> (Float, Float, Float) {
        let high = max(r, g, b), low = min(r, g, b), chroma = high - low
        guard chroma > 0 else { return (0, 0, high) }
        let saturation = chroma / high
        // Distance of each channel from the maximum, in units of chroma; the sector offset picks the hue.
        let (rc, gc, bc) = ((high - r) / chroma, (high - g) / chroma, (high - b) / chroma)
        let sector: Float = high == r ? bc - gc : (high == g ? 2 + rc - bc : 4 + gc - rc)
        var hue = (sector * (1 / Float(6)) + 1).truncatingRemainder(dividingBy: 1)
        if hue < 0 { hue += 1 }
        return (hue, saturation, high)
    }

    /// RGB in [0, 1] of a hue (turns), saturation and value.
    static func rgb(_ h: Float, _ s: Float, _ v: Float) -> (Float, Float, Float) {
        let scaled = h * 6, floor = scaled.rounded(.down), f = scaled - floor
        let p = min(max(v * (1 - s), 0), 1), q = min(max(v * (1 - s * f), 0), 1), t = min(max(v * (1 - s * (1 - f)), 0), 1)
        switch ((Int(floor) % 6) + 6) % 6 {
        case 0: return (v, t, p)
        case 1: return (q, v, p)
        case 2: return (p, v, t)
        case 3: return (p, q, v)
        case 4: return (t, p, v)
        default: return (v, p, q)
        }
    }

    /// The normalised 1-D Gaussian of `size` taps at −(size−1)/2 … (size−1)/2 with standard deviation `sigma`.
    public static func gaussianKernel(size: Int, sigma: Double) -> [Float] {
        let half = Float(size - 1) / 2, s = Float(sigma)
        let taps = (0..<size).map { i -> Float in
            let x = size == 1 ? 0 : -half + Float(i) * (2 * half / Float(size - 1))
            return exp(-0.5 * (x / s) * (x / s))
        }
        let total = taps.reduce(0, +)
        return taps.map { $0 / total }
    }

    /// Index `i` reflected into 0..<count without repeating the edge (…2 1 | 0 1 2 … n−1 | n−2 …), as "reflect" padding.
    static func reflect(_ i: Int, _ count: Int) -> Int {
        guard count > 1 else { return 0 }
        let period = 2 * (count - 1)
        var j = i % period
        if j < 0 { j += period }
        return j < count ? j : period - j
    }

    /// Gaussian blur with an odd `kernelSize` and `sigma`, reflect-padded, rounded: torchvision `gaussian_blur`.
    public static func gaussianBlur(_ image: DecodedImage, kernelSize: Int, sigma: Double) -> DecodedImage {
        let kernel = gaussianKernel(size: max(1, kernelSize), sigma: max(sigma, 1e-6)), half = kernel.count / 2
        let (height, width) = (image.height, image.width), plane = height * width
        var result = image
        var rows = [Float](repeating: 0, count: plane)
        let columnIndex = (0..<width).map { x in (0..<kernel.count).map { reflect(x + $0 - half, width) } }
        let rowIndex = (0..<height).map { y in (0..<kernel.count).map { reflect(y + $0 - half, height) } }
        image.pixels.withUnsafeBufferPointer { p in
            result.pixels.withUnsafeMutableBufferPointer { out in
                for c in 0..<image.channels {
                    let base = c * plane
                    for y in 0..<height {
                        for x in 0..<width {
                            var sum: Float = 0
                            for (k, sx) in columnIndex[x].enumerated() { sum += kernel[k] * Float(p[base + y * width + sx]) }
                            rows[y * width + x] = sum
                        }
                    }
                    for y in 0..<height {
                        for x in 0..<width {
                            var sum: Float = 0
                            for (k, sy) in rowIndex[y].enumerated() { sum += kernel[k] * rows[sy * width + x] }
                            out[base + y * width + x] = UInt8(max(0, min(255, sum.rounded(.toNearestOrEven))))
                        }
                    }
                }
            }
        }
        return result
    }

    /// Sharpness: a blend with the image smoothed by [[1,1,1],[1,5,1],[1,1,1]]/13 inside its one-pixel border
    /// (0 smooth, 1 unchanged, 2 sharper): torchvision `adjust_sharpness`.
    public static func adjustSharpness(_ image: DecodedImage, factor: Double) -> DecodedImage {
        let (height, width) = (image.height, image.width), plane = height * width
        guard height > 2, width > 2 else { return image }
        var smooth = image.pixels
        image.pixels.withUnsafeBufferPointer { p in
            smooth.withUnsafeMutableBufferPointer { out in
                for c in 0..<image.channels {
                    let base = c * plane
                    for y in 1..<(height - 1) {
                        for x in 1..<(width - 1) {
                            var sum: Float = 0
                            for dy in -1...1 { for dx in -1...1 { sum += Float(p[base + (y + dy) * width + x + dx]) } }
                            sum += 4 * Float(p[base + y * width + x])
                            out[base + y * width + x] = UInt8(max(0, min(255, (sum / 13).rounded(.toNearestOrEven))))
                        }
                    }
                }
            }
        }
        return smooth.withUnsafeBufferPointer { s in blend(image, ratio: factor) { c, i in Float(s[c * plane + i]) } }
    }

    /// Each byte with only its top `bits` (0…8) kept: torchvision `posterize`.
    public static func posterize(_ image: DecodedImage, bits: Int) -> DecodedImage {
        let mask = UInt8(truncatingIfNeeded: -(1 << (8 - min(max(bits, 0), 8))))
        var result = image
        result.pixels.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] &= mask } }
        return result
    }

    /// Bytes at or above `threshold` inverted (255 − p): torchvision `solarize`.
    public static func solarize(_ image: DecodedImage, threshold: Double) -> DecodedImage {
        var result = image
        result.pixels.withUnsafeMutableBufferPointer { p in for i in p.indices where Double(p[i]) >= threshold { p[i] = 255 - p[i] } }
        return result
    }

    /// Each channel stretched linearly so its minimum is 0 and maximum 255, truncated: torchvision `autocontrast`.
    public static func autocontrast(_ image: DecodedImage) -> DecodedImage {
        var result = image
        let plane = image.height * image.width
        guard plane > 0 else { return image }
        result.pixels.withUnsafeMutableBufferPointer { p in
            for c in 0..<image.channels {
                let channel = UnsafeMutableBufferPointer(rebasing: p[(c * plane)..<((c + 1) * plane)])
                var (low, high) = (Float(channel.min() ?? 0), Float(channel.max() ?? 0))
                var scale = 255 / (high - low)
                if !scale.isFinite { (low, high, scale) = (0, high, 1) }
                for i in channel.indices { channel[i] = UInt8(max(0, min(255, (Float(channel[i]) - low) * scale))) }
            }
        }
        return result
    }

    /// Each channel's histogram equalised with torchvision's `equalize` lookup table (PIL's ImageOps rule).
    public static func equalize(_ image: DecodedImage) -> DecodedImage {
        var result = image
        let plane = image.height * image.width
        result.pixels.withUnsafeMutableBufferPointer { p in
            for c in 0..<image.channels {
                let channel = UnsafeMutableBufferPointer(rebasing: p[(c * plane)..<((c + 1) * plane)])
                var histogram = [Int](repeating: 0, count: 256)
                for value in channel { histogram[Int(value)] += 1 }
                // The step leaves out the last occupied bin: an image of two levels maps them to 0 and ≥128.
                let occupied = histogram.filter { $0 != 0 }
                let step = occupied.dropLast().reduce(0, +) / 255
                guard step > 0 else { continue }
                var table = [UInt8](repeating: 0, count: 256), cumulative = 0
                for level in 1..<256 {
                    cumulative += histogram[level - 1]
                    table[level] = UInt8(min(255, (cumulative + step / 2) / step))
                }
                for i in channel.indices { channel[i] = table[Int(channel[i])] }
            }
        }
        return result
    }
}
