import FoveaDataKernels

/// Bilinear resizing with antialiasing when shrinking, computed as PIL's `Image.resize(size, BILINEAR)` computes it on
/// 8-bit images (and so as torchvision's resize of PIL images): a triangle filter whose support widens by the scale
/// factor, weights in fixed point with 22 fraction bits, one pass per axis rounded to bytes. The same integer
/// arithmetic in the same order gives the same bytes as PIL, not merely close ones.
///
/// The order of the passes matters (the first is rounded to bytes). Pillow 13 runs the vertical pass first when the
/// height loses more than twice as many pixels as the width (python-pillow/Pillow#9549; the rule was measured against
/// Pillow 13.0), and the horizontal pass first otherwise, as every earlier Pillow always did; Fovea follows Pillow 13.
/// Against an older Pillow, images resized in the first way differ by at most one level in some pixels.
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
                             rows: rows, columns: columns,
                             verticalFirst: verticalFirst(from: (image.height, image.width), to: (height, width)),
                             buffers: scratch) { y, row in
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

    /// Whether Pillow 13 resizes `input` to `output` (height, width) with the vertical pass first: when the height
    /// shrinks by more than twice as many pixels as the width does.
    static func verticalFirst(from input: (height: Int, width: Int), to output: (height: Int, width: Int)) -> Bool {
        output.height < input.height && input.height - output.height > 2 * (input.width - output.width)
    }

    /// Resamples interleaved 8-bit pixels (`bytesPerPixel` 1, or 4 for RGB plus one unused byte), `rowBytes` per row,
    /// whose window starts at row `top`, column `left` of `source`, with the `rows` and `columns` taps, either pass
    /// first; each output row (of `columns.starts.count` pixels) goes to `sink` with its index.
    static func resample(_ source: UnsafePointer<UInt8>, rowBytes: Int, bytesPerPixel: Int, top: Int, left: Int,
                         rows: Taps, columns: Taps, verticalFirst: Bool, buffers: ResampleBuffers,
                         sink: (_ row: Int, _ pixels: UnsafePointer<UInt8>) -> Void) {
        let outputWidth = columns.starts.count, outputBytes = outputWidth * bytesPerPixel
        let line = buffers.line.reserve(outputBytes)
        let window = source + top * rowBytes + left * bytesPerPixel
        /// One row of the horizontal pass from `row` (`available` pixels readable; `starts` relative to it) into `output`.
        func horizontal(_ row: UnsafePointer<UInt8>, available: Int, starts: UnsafePointer<Int>,
                        into output: UnsafeMutablePointer<UInt8>) {
            columns.counts.withUnsafeBufferPointer { counts in
                columns.weights.withUnsafeBufferPointer { weights in
                    if bytesPerPixel == 4 {
                        ResampleKernels.horizontal4(row, available: available, starts: starts, counts: counts.baseAddress!,
                                                    outputCount: outputWidth, weights: weights.baseAddress!,
                                                    stride: columns.stride, into: output)
                    } else {
                        ResampleKernels.horizontal1(row, starts: starts, counts: counts.baseAddress!, outputCount: outputWidth,
                                                    weights: weights.baseAddress!, stride: columns.stride, into: output)
                    }
                }
            }
        }
        if verticalFirst {
            // Each output row: the vertical pass over the columns the horizontal taps read, rounded, then the horizontal.
            let needed = columns.inputs
            let neededBytes = needed.count * bytesPerPixel
            let sums = buffers.sums.reserve(neededBytes)
            let vertical = buffers.intermediate.reserve(neededBytes)
            let starts = columns.starts.map { $0 - needed.lowerBound }
            starts.withUnsafeBufferPointer { starts in
                rows.weights.withUnsafeBufferPointer { weights in
                    for y in 0..<rows.starts.count {
                        ResampleKernels.vertical(window + rows.starts[y] * rowBytes + needed.lowerBound * bytesPerPixel,
                                                 lineBytes: neededBytes, lineStride: rowBytes, count: rows.counts[y],
                                                 weights: weights.baseAddress! + y * rows.stride, sums: sums, into: vertical)
                        horizontal(vertical, available: needed.count, starts: starts.baseAddress!,
                                   into: line)
                        sink(y, line)
                    }
                }
            }
            return
        }
        // The horizontal pass over the rows the vertical taps read, kept as intermediate lines, then the vertical pass.
        let needed = rows.inputs
        let intermediate = buffers.intermediate.reserve(max(needed.count, 1) * outputBytes)
        let available = rowBytes / bytesPerPixel - left
        columns.starts.withUnsafeBufferPointer { starts in
            for y in needed {
                horizontal(window + y * rowBytes, available: available, starts: starts.baseAddress!,
                           into: intermediate + (y - needed.lowerBound) * outputBytes)
            }
        }
        let sums = buffers.sums.reserve(outputBytes)
        rows.weights.withUnsafeBufferPointer { weights in
            for y in 0..<rows.starts.count {
                ResampleKernels.vertical(intermediate + (rows.starts[y] - needed.lowerBound) * outputBytes,
                                         lineBytes: outputBytes, lineStride: outputBytes, count: rows.counts[y],
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

    /// Gives the memory back (the next `reserve` allocates afresh).
    func release() {
        pointer.deallocate()
        pointer = UnsafeMutablePointer<Element>.allocate(capacity: 1)
        capacity = 0
    }

    deinit { pointer.deallocate() }
}

/// The intermediate lines, sums and output line a resize works in.
final class ResampleBuffers {
    let intermediate = ReusableBuffer<UInt8>()
    let sums = ReusableBuffer<Int32>()
    let line = ReusableBuffer<UInt8>()
}
