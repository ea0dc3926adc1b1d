/// The inner loops of image resampling and normalisation, on raw pointers, in their own target so that they alone are
/// built for AVX2 (`-target-cpu haswell`, see Package.swift): 32-bit multiplies and byte widening are single
/// instructions there, and emulated with several in the baseline x86-64 instruction set.
///
/// Arithmetic follows PIL's 8-bit resampler: fixed-point weights with `precisionBits` fraction bits, sums started at
/// one half, shifted and clamped to 0…255; normalisation is (byte / 255 − mean) / std in Float, as torchvision's
/// ToTensor and Normalize compute it.
public enum ResampleKernels {
    /// Fraction bits of the fixed-point weights (PIL's 32 − 8 − 2: room for 8-bit values and overshoot).
    public static let precisionBits: Int32 = 22

    /// One row of the horizontal pass, one byte per pixel: output x = Σₜ row[starts[x] + t] · weights[x·stride + t]
    /// over t < counts[x], for x < outputCount.
    public static func horizontal1(_ row: UnsafePointer<UInt8>, starts: UnsafePointer<Int>, counts: UnsafePointer<Int>,
                                   outputCount: Int, weights: UnsafePointer<Int32>, stride: Int,
                                   into output: UnsafeMutablePointer<UInt8>) {
        for x in 0..<outputCount {
            let k = weights + x * stride, p = row + starts[x]
            var sum: Int32 = 1 << (precisionBits - 1)
            for t in 0..<counts[x] { sum &+= Int32(p[t]) &* k[t] }
            output[x] = UInt8(truncatingIfNeeded: min(max(sum >> precisionBits, 0), 255))
        }
    }

    /// One row of the horizontal pass, four bytes per pixel (all four channels at once), two output pixels per step;
    /// `available` pixels from `row` on may be read.
    ///
    /// Both pixels of a pair run for the larger of their tap counts (the weights past a pixel's own count are zero),
    /// so a pair whose longer run would read past `available` pixels is done one pixel at a time.
    public static func horizontal4(_ row: UnsafePointer<UInt8>, available: Int, starts: UnsafePointer<Int>,
                                   counts: UnsafePointer<Int>, outputCount: Int, weights: UnsafePointer<Int32>, stride: Int,
                                   into output: UnsafeMutablePointer<UInt8>) {
        let source = UnsafeRawPointer(row), destination = UnsafeMutableRawPointer(output)
        let half = Int32(1) << (precisionBits - 1)
        var x = 0
        while x + 1 < outputCount {
            let taps = max(counts[x], counts[x + 1])
            guard starts[x + 1] + taps <= available, taps <= stride else {
                single(x)
                single(x + 1)
                x += 2
                continue
            }
            let k0 = weights + x * stride, k1 = k0 + stride
            let p0 = source + starts[x] * 4, p1 = source + starts[x + 1] * 4
            var sum = SIMD8<Int32>(repeating: half)
            for t in 0..<taps {
                let pixels = SIMD8<UInt8>(lowHalf: p0.loadUnaligned(fromByteOffset: t * 4, as: SIMD4<UInt8>.self),
                                          highHalf: p1.loadUnaligned(fromByteOffset: t * 4, as: SIMD4<UInt8>.self))
                let weight = SIMD8<Int32>(lowHalf: SIMD4(repeating: k0[t]), highHalf: SIMD4(repeating: k1[t]))
                sum &+= SIMD8<Int32>(truncatingIfNeeded: pixels) &* weight
            }
            let clamped = (sum &>> precisionBits).clamped(lowerBound: .zero, upperBound: SIMD8(repeating: 255))
            destination.storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: clamped), toByteOffset: x * 4, as: SIMD8<UInt8>.self)
            x += 2
        }
        if x < outputCount { single(x) }

        func single(_ x: Int) {
            let k = weights + x * stride, p = source + starts[x] * 4
            var sum = SIMD4<Int32>(repeating: half)
            for t in 0..<counts[x] {
                sum &+= SIMD4<Int32>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: t * 4, as: SIMD4<UInt8>.self)) &* k[t]
            }
            let clamped = (sum &>> precisionBits).clamped(lowerBound: .zero, upperBound: SIMD4(repeating: 255))
            destination.storeBytes(of: SIMD4<UInt8>(truncatingIfNeeded: clamped), toByteOffset: x * 4, as: SIMD4<UInt8>.self)
        }
    }

    /// One output row of the vertical pass: `count` lines of `lineBytes` bytes, `lineStride` bytes apart from `first`,
    /// weighted by `weights`, summed in `sums` (`lineBytes` Int32s of scratch), rounded to bytes in `output`.
    public static func vertical(_ first: UnsafePointer<UInt8>, lineBytes: Int, lineStride: Int, count: Int,
                                weights: UnsafePointer<Int32>, sums: UnsafeMutablePointer<Int32>,
                                into output: UnsafeMutablePointer<UInt8>) {
        let half = Int32(1) << (precisionBits - 1)
        for i in 0..<lineBytes { sums[i] = half }
        for t in 0..<count {
            let line = first + t * lineStride, weight = weights[t]
            for i in 0..<lineBytes { sums[i] &+= Int32(line[i]) &* weight }
        }
        for i in 0..<lineBytes { output[i] = UInt8(truncatingIfNeeded: min(max(sums[i] >> precisionBits, 0), 255)) }
    }

    /// Normalises a line of `width` four-byte pixels (R, G, B, unused) into three planes `plane` floats apart:
    /// channel c of pixel x goes to `destination[c·plane + x]` (or `width − 1 − x` when `mirrored`).
    public static func normaliseRGB(_ line: UnsafePointer<UInt8>, width: Int, mean: SIMD4<Float>, std: SIMD4<Float>,
                                    mirrored: Bool, plane: Int, into destination: UnsafeMutablePointer<Float>) {
        let source = UnsafeRawPointer(line), target = UnsafeMutableRawPointer(destination)
        var x = 0
        while x + 8 <= width {
            let pixels = source.loadUnaligned(fromByteOffset: x * 4, as: SIMD8<UInt32>.self)
            for c in 0..<3 {
                let bytes = SIMD8<Int32>(truncatingIfNeeded: (pixels &>> UInt32(8 * c)) & 255)
                var values = (SIMD8<Float>(bytes) / 255 - mean[c]) / std[c]
                var offset = c * plane + x
                if mirrored {
                    values = SIMD8(values[7], values[6], values[5], values[4], values[3], values[2], values[1], values[0])
                    offset = c * plane + width - 8 - x
                }
                target.storeBytes(of: values, toByteOffset: offset * 4, as: SIMD8<Float>.self)
            }
            x += 8
        }
        while x < width {
            let column = mirrored ? width - 1 - x : x
            for c in 0..<3 { destination[c * plane + column] = (Float(line[x * 4 + c]) / 255 - mean[c]) / std[c] }
            x += 1
        }
    }

    /// Normalises a line of `width` grey bytes into `destination` (mirrored when `mirrored`).
    public static func normaliseGrey(_ line: UnsafePointer<UInt8>, width: Int, mean: Float, std: Float, mirrored: Bool,
                                     into destination: UnsafeMutablePointer<Float>) {
        for x in 0..<width { destination[mirrored ? width - 1 - x : x] = (Float(line[x]) / 255 - mean) / std }
    }
}
