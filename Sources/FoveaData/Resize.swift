/// Bilinear resizing with antialiasing when shrinking, as PIL's (and torchvision's antialiased) bilinear filter:
/// a triangle kernel whose support widens by the scale factor, applied separably, rounded back to bytes.
public enum Resize {
    /// `image` resized to `height` × `width`.
    public static func bilinear(_ image: DecodedImage, height: Int, width: Int) -> DecodedImage {
        if image.height == height && image.width == width { return image }
        let rows = weights(from: image.height, to: height), columns = weights(from: image.width, to: width)
        let plane = image.height * image.width
        var output = [UInt8](repeating: 0, count: image.channels * height * width)
        var horizontal = [Float](repeating: 0, count: image.height * width)
        for c in 0..<image.channels {
            for y in 0..<image.height {
                for (x, (start, taps)) in columns.enumerated() {
                    var sum: Float = 0
                    for (k, weight) in taps.enumerated() { sum += weight * Float(image.pixels[c * plane + y * image.width + start + k]) }
                    horizontal[y * width + x] = sum
                }
            }
            for (y, (start, taps)) in rows.enumerated() {
                for x in 0..<width {
                    var sum: Float = 0
                    for (k, weight) in taps.enumerated() { sum += weight * horizontal[(start + k) * width + x] }
                    output[(c * height + y) * width + x] = UInt8(max(0, min(255, sum.rounded())))
                }
            }
        }
        return DecodedImage(channels: image.channels, height: height, width: width, pixels: output)
    }

    /// For each output index: the first input index and the normalised weights of the inputs it reads.
    static func weights(from input: Int, to output: Int) -> [(Int, [Float])] {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filterScale
        return (0..<output).map { i in
            let center = (Double(i) + 0.5) * scale
            let first = max(0, Int((center - support + 0.5).rounded(.down)))
            let last = min(input, Int((center + support + 0.5).rounded(.down)))
            var taps = (first..<max(last, first + 1)).map { j -> Double in
                let distance = abs((Double(j) + 0.5 - center) / filterScale)
                return max(0, 1 - distance)
            }
            let total = taps.reduce(0, +)
            if total > 0 { taps = taps.map { $0 / total } } else { taps = [1] + Array(repeating: 0, count: taps.count - 1) }
            return (min(first, input - 1), taps.map(Float.init))
        }
    }
}
