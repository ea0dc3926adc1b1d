import FoveaDataKernels

/// Bilinear resizing with antialiasing when shrinking, computed as PIL's `Image.resize(size, BILINEAR)` computes it on
/// 8-bit images (and so as torchvision's resize of PIL images): a triangle filter whose support widens by the scale
/// factor, weights in fixed point with 22 fraction bits, a horizontal pass rounded to bytes, then a vertical pass.
/// The same integer arithmetic in the same order gives the same bytes as PIL, not merely close ones.
public enum Resize {
    /// Fraction bits of the fixed-point weights.
    static let precisionBits = ResampleKernels.precisionBits

    /// `image` resized to `height` × `width`.
    public static func bilinear(_ image: DecodedImage, height: Int, width: Int) -> DecodedImage {
        if image.height == height && image.width == width { return image }
        let plane = image.height * image.width
        let scratch = ResampleBuffers()
        var output = [UInt8](repeating: 0, count: image.channels * height * width)
        let rows = taps(input: image.height, output: height, range: 0..<height)
        let columns = taps(input: image.width, output: width, range: 0..<width)
        image.pixels.withUnsafeBufferPointer { pixels in
            output.withUnsafeMutableBufferPointer { output in
                for c in 0..<image.channels {
                    let planeOutput = output.baseAddress! + c * height * width
                    resample(pixels.baseAddress! + c * plane, rowBytes: image.width, bytesPerPixel: 1, top: 0, left: 0,
                             rows: rows, columns: columns, buffers: scratch) { y, row in
                        (planeOutput + y * width).update(from: row, count: width)
                    }
                }
            }
        }
        return DecodedImage(channels: image.channels, height: height, width: width, pixels: output)
    }

    /// The filter taps along one axis for the output indices in `range` of a resize from `input` to `output` samples.
    struct Taps {
        /// Per output index in the range: the first input index read and the number of inputs read.
        var starts: [Int]
        var counts: [Int]
        /// `stride` fixed-point weights per output index (unused ones are zero).
        var weights: [Int32]
        var stride: Int
        /// The input indices read by any output in the range.
        var inputs: Range<Int> {
            guard let first = starts.first else { return 0..<0 }
            var end = first
            for (start, count) in zip(starts, counts) { end = max(end, start + count) }
            return first..<end
        }
    }

    /// PIL's coefficients: output i is centred on input coordinate (i + ½)·scale; the triangle's support is
    /// max(scale, 1); weights are normalised in Double, then rounded to fixed point.
    static func taps(input: Int, output: Int, range: Range<Int>) -> Taps {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filterScale
        let stride = Int(support.rounded(.up)) * 2 + 1
        var taps = Taps(starts: [], counts: [], weights: [Int32](repeating: 0, count: range.count * stride), stride: stride)
        taps.starts.reserveCapacity(range.count)
        taps.counts.reserveCapacity(range.count)
        var raw = [Double](repeating: 0, count: stride)
        let inverse = 1 / filterScale
        for (slot, i) in range.enumerated() {
            let center = (Double(i) + 0.5) * scale
            // Truncation toward zero, then clamping, as PIL's (int) casts.
            let first = max(0, Int(center - support + 0.5))
            let count = min(input, Int(center + support + 0.5)) - first
            var total = 0.0
            for k in 0..<count {
                let distance = abs((Double(first + k) - center + 0.5) * inverse)
                raw[k] = distance < 1 ? 1 - distance : 0
                total += raw[k]
            }
            for k in 0..<count {
                let weight = total != 0 ? raw[k] / total : raw[k]
                taps.weights[slot * stride + k] = Int32(0.5 + weight * Double(1 << precisionBits))
            }
            taps.starts.append(first)
            taps.counts.append(max(count, 0))
        }
        return taps
    }

    /// Resamples interleaved 8-bit pixels (`bytesPerPixel` 1, or 4 for RGB plus one unused byte), `rowBytes` per row,
    /// whose window starts at row `top`, column `left` of `source`: the horizontal pass over the rows `rows` reads,
    /// rounded to bytes, then the vertical pass; each output row (of `columns.starts.count` pixels) goes to `sink`.
    static func resample(_ source: UnsafePointer<UInt8>, rowBytes: Int, bytesPerPixel: Int, top: Int, left: Int,
                         rows: Taps, columns: Taps, buffers: ResampleBuffers,
                         sink: (_ row: Int, _ pixels: UnsafePointer<UInt8>) -> Void) {
        let needed = rows.inputs
        let outputWidth = columns.starts.count, lineBytes = outputWidth * bytesPerPixel
        let intermediate = buffers.intermediate.reserve(max(needed.count, 1) * lineBytes)
        let available = rowBytes / bytesPerPixel - left
        columns.starts.withUnsafeBufferPointer { starts in
            columns.counts.withUnsafeBufferPointer { counts in
                columns.weights.withUnsafeBufferPointer { weights in
                    for y in needed {
                        let row = source + (top + y) * rowBytes + left * bytesPerPixel
                        let line = intermediate + (y - needed.lowerBound) * lineBytes
                        if bytesPerPixel == 4 {
                            ResampleKernels.horizontal4(row, available: available, starts: starts.baseAddress!,
                                                        counts: counts.baseAddress!, outputCount: outputWidth,
                                                        weights: weights.baseAddress!, stride: columns.stride, into: line)
                        } else {
                            ResampleKernels.horizontal1(row, starts: starts.baseAddress!, counts: counts.baseAddress!,
                                                        outputCount: outputWidth, weights: weights.baseAddress!,
                                                        stride: columns.stride, into: line)
                        }
                    }
                }
            }
        }
        let sums = buffers.sums.reserve(lineBytes)
        let line = buffers.line.reserve(lineBytes)
        rows.weights.withUnsafeBufferPointer { weights in
            for y in 0..<rows.starts.count {
                let first = intermediate + (rows.starts[y] - needed.lowerBound) * lineBytes
                ResampleKernels.vertical(first, lineBytes: lineBytes, count: rows.counts[y],
                                         weights: weights.baseAddress! + y * rows.stride, sums: sums, into: line)
                sink(y, line)
            }
        }
    }
}

/// Growable scratch memory reused from one image to the next (it grows without zeroing and never shrinks).
final class ReusableBuffer<Element> {
    private(set) var pointer: UnsafeMutablePointer<Element>
    private(set) var capacity = 0

    init() { pointer = UnsafeMutablePointer<Element>.allocate(capacity: 1) }

    /// At least `count` elements of uninitialised (or stale) memory.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if count > capacity {
            pointer.deallocate()
            capacity = max(count, capacity + capacity / 2)
            pointer = UnsafeMutablePointer<Element>.allocate(capacity: capacity)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

/// The intermediate lines, sums and output line a resize works in.
final class ResampleBuffers {
    let intermediate = ReusableBuffer<UInt8>()
    let sums = ReusableBuffer<Int32>()
    let line = ReusableBuffer<UInt8>()
}
