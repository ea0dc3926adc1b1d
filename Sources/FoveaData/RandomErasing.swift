import FoveaTensor
/// Random erasing (Zhong et al. 2017, torchvision RandomErasing) on a normalised C×H×W Float sample: with
/// probability p a rectangle of area fraction in `scale` and aspect ratio (height/width) in `ratio` is set to 0 —
/// the dataset mean after normalisation — or to standard normal noise. It acts after normalisation, as torchvision's
/// does on the normalised tensor, so `ImageClassificationSet` applies it last.
public enum RandomErasing {
    /// The rectangle (top, left, height, width) to erase, or nil when this sample is left alone: torchvision's
    /// ten tries at an area and log-uniform aspect ratio that fit strictly inside the image.
    public static func drawRegion(height: Int, width: Int, probability: Double, scale: ClosedRange<Double>,
                                  ratio: ClosedRange<Double>, generator: inout SeededGenerator) -> (Int, Int, Int, Int)? {
        guard generator.nextDouble() < probability, height > 0, width > 0, ratio.lowerBound > 0 else { return nil }
        let area = Double(height * width), logRatio = (log(ratio.lowerBound), log(ratio.upperBound))
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * generator.nextDouble())
            let aspect = exp(logRatio.0 + (logRatio.1 - logRatio.0) * generator.nextDouble())
            let h = Int((target * aspect).squareRoot().rounded()), w = Int((target / aspect).squareRoot().rounded())
            guard h < height, w < width, h > 0, w > 0 else { continue }
            let top = uniformIndex(below: UInt64(height - h + 1), using: &generator)
            let left = uniformIndex(below: UInt64(width - w + 1), using: &generator)
            return (top, left, h, w)
        }
        return nil
    }

    /// Sets the rectangle of every channel of the sample at `sample` (channels × height × width) to 0, or to
    /// normal noise from `generator` when `randomValue`.
    public static func erase(_ sample: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                             region: (top: Int, left: Int, height: Int, width: Int), randomValue: Bool,
                             generator: inout SeededGenerator) {
        for c in 0..<channels {
            for y in region.top..<min(height, region.top + region.height) {
                for x in region.left..<min(width, region.left + region.width) {
                    sample[(c * height + y) * width + x] = randomValue ? Float(generator.nextNormal()) : 0
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif
