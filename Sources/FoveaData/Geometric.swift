import Foundation

/// How a geometric transform reads the source image between pixel centres.
public enum Interpolation: String, Codable, Sendable, CaseIterable {
    /// The pixel whose centre is nearest (ties to even), as grid_sample's "nearest".
    case nearest
    /// The distance-weighted mean of the four surrounding pixels.
    case bilinear
}

/// Pure geometric functions of planar byte images (crop, flip, nearest resize, affine warps) with torchvision's
/// tensor-backend conventions; the random transforms in `ImageTransform` call them with drawn parameters.
public enum Geometric {
    /// The window of `image` at (top, left) of the given size; parts outside the image are zero (as padding).
    public static func crop(_ image: DecodedImage, top: Int, left: Int, height: Int, width: Int) -> DecodedImage {
        let (height, width) = (max(0, height), max(0, width))
        var pixels = [UInt8](repeating: 0, count: image.channels * height * width)
        let rows = max(0, -top)..<max(max(0, -top), min(height, image.height - top))
        let columns = max(0, -left)..<max(max(0, -left), min(width, image.width - left))
        guard !rows.isEmpty, !columns.isEmpty else { return DecodedImage(channels: image.channels, height: height, width: width, pixels: pixels) }
        image.pixels.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                for c in 0..<image.channels {
                    for y in rows {
                        let from = (c * image.height + y + top) * image.width + left, to = (c * height + y) * width
                        for x in columns { target[to + x] = source[from + x] }
                    }
                }
            }
        }
        return DecodedImage(channels: image.channels, height: height, width: width, pixels: pixels)
    }

    /// The offset of a centred window of `size` in a side of `side`: torchvision CenterCrop's rounding (ties to
    /// even) when the window fits, its zero padding (⌊(size − side)/2⌋ before) when it does not.
    public static func centeredOffset(side: Int, size: Int) -> Int {
        size <= side ? Int((Double(side - size) / 2).rounded(.toNearestOrEven)) : -((size - side) / 2)
    }

    /// The image mirrored left–right (`horizontal`) or top–bottom.
    public static func flip(_ image: DecodedImage, horizontal: Bool) -> DecodedImage {
        var result = image
        let (height, width) = (image.height, image.width)
        image.pixels.withUnsafeBufferPointer { source in
            result.pixels.withUnsafeMutableBufferPointer { target in
                for c in 0..<image.channels {
                    for y in 0..<height {
                        let row = (c * height + y) * width
                        let sourceRow = horizontal ? row : (c * height + height - 1 - y) * width
                        for x in 0..<width { target[row + x] = source[sourceRow + (horizontal ? width - 1 - x : x)] }
                    }
                }
            }
        }
        return result
    }

    /// `image` resized to height × width by nearest neighbour with torch's "nearest" rule: source ⌊i · in/out⌋.
    public static func resizeNearest(_ image: DecodedImage, height: Int, width: Int) -> DecodedImage {
        let (height, width) = (max(1, height), max(1, width))
        let rowScale = Float(image.height) / Float(height), columnScale = Float(image.width) / Float(width)
        let rows = (0..<height).map { min(Int((Float($0) * rowScale).rounded(.down)), image.height - 1) }
        let columns = (0..<width).map { min(Int((Float($0) * columnScale).rounded(.down)), image.width - 1) }
        var pixels = [UInt8](repeating: 0, count: image.channels * height * width)
        image.pixels.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                for c in 0..<image.channels {
                    for (y, sourceY) in rows.enumerated() {
                        let from = (c * image.height + sourceY) * image.width, to = (c * height + y) * width
                        for (x, sourceX) in columns.enumerated() { target[to + x] = source[from + sourceX] }
                    }
                }
            }
        }
        return DecodedImage(channels: image.channels, height: height, width: width, pixels: pixels)
    }

    /// The 2×3 matrix that maps an output point to the input point it reads, both relative to the image centre,
    /// for a rotation by `angle` degrees clockwise, then shear (degrees, x then y), scale and translation (pixels),
    /// all about `center` (relative to the image centre) — torchvision's `_get_inverse_affine_matrix` convention.
    public static func inverseAffineMatrix(angle: Double, translate: (Double, Double) = (0, 0), scale: Double = 1,
                                           shear: (Double, Double) = (0, 0), center: (Double, Double) = (0, 0)) -> [Double] {
        let radians = Double.pi / 180
        let (r, sx, sy) = (angle * radians, shear.0 * radians, shear.1 * radians)
        // Forward linear part R(r)·Shear(sx, sy) has unit determinant, so its inverse is its adjugate.
        let a = cos(r - sy) / cos(sy)
        let b = -cos(r - sy) * tan(sx) / cos(sy) - sin(r)
        let c = sin(r - sy) / cos(sy)
        let d = -sin(r - sy) * tan(sx) / cos(sy) + cos(r)
        var m = [d, -b, 0, -c, a, 0].map { $0 / scale }
        let (px, py) = (-center.0 - translate.0, -center.1 - translate.1)
        m[2] = m[0] * px + m[1] * py + center.0
        m[5] = m[3] * px + m[4] * py + center.1
        return m
    }

    /// `image` warped by the inverse affine `matrix` (from `inverseAffineMatrix`): each output pixel reads the input
    /// where the matrix sends its centre. Points outside read `fill`; bilinear blends the in-image taps and `fill`
    /// by the weight that falls outside, rounding to nearest — torchvision's tensor `affine`/`rotate` with a fill.
    public static func affine(_ image: DecodedImage, matrix m: [Double], interpolation: Interpolation, fill: UInt8) -> DecodedImage {
        let (channels, height, width) = (image.channels, image.height, image.width)
        var pixels = [UInt8](repeating: fill, count: image.pixels.count)
        guard m.count == 6, height > 0, width > 0 else { return image }
        // Float steps in torchvision's order (matrix rows over half sizes, grid_sample's unnormalisation), so that
        // nearest sampling rounds the same way at the points that fall almost halfway between pixels.
        let halfWidth = Float(width) * 0.5, halfHeight = Float(height) * 0.5, fillValue = Float(fill)
        let row0 = (0..<3).map { Float(m[$0]) / halfWidth }, row1 = (3..<6).map { Float(m[$0]) / halfHeight }
        image.pixels.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                for y in 0..<height {
                    let yb = -halfHeight + 0.5 + Float(y)
                    for x in 0..<width {
                        let xb = -halfWidth + 0.5 + Float(x)
                        let gx = xb * row0[0] + yb * row0[1] + row0[2], gy = xb * row1[0] + yb * row1[1] + row1[2]
                        let sx = ((gx + 1) * Float(width) - 1) / 2, sy = ((gy + 1) * Float(height) - 1) / 2
                        guard sx.isFinite, sy.isFinite, abs(sx) < 1e9, abs(sy) < 1e9 else { continue }
                        switch interpolation {
                        case .nearest:
                            let ix = Int(sx.rounded(.toNearestOrEven)), iy = Int(sy.rounded(.toNearestOrEven))
                            guard ix >= 0, ix < width, iy >= 0, iy < height else { continue }
                            for c in 0..<channels { target[(c * height + y) * width + x] = source[(c * height + iy) * width + ix] }
                        case .bilinear:
                            let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                            let fx = sx - Float(x0), fy = sy - Float(y0)
                            // Weights of the four taps; a tap outside the image weighs zero (grid_sample's zero padding).
                            let inX0 = x0 >= 0 && x0 < width, inX1 = x0 + 1 >= 0 && x0 + 1 < width
                            let inY0 = y0 >= 0 && y0 < height, inY1 = y0 + 1 >= 0 && y0 + 1 < height
                            let w00: Float = inX0 && inY0 ? (1 - fx) * (1 - fy) : 0, w01: Float = inX1 && inY0 ? fx * (1 - fy) : 0
                            let w10: Float = inX0 && inY1 ? (1 - fx) * fy : 0, w11: Float = inX1 && inY1 ? fx * fy : 0
                            let inside = w00 + w01 + w10 + w11
                            guard inside > 0 else { continue }
                            let cx0 = min(max(x0, 0), width - 1), cx1 = min(max(x0 + 1, 0), width - 1)
                            let cy0 = min(max(y0, 0), height - 1), cy1 = min(max(y0 + 1, 0), height - 1)
                            for c in 0..<channels {
                                let plane = c * height * width
                                let sum = w00 * Float(source[plane + cy0 * width + cx0]) + w01 * Float(source[plane + cy0 * width + cx1])
                                    + w10 * Float(source[plane + cy1 * width + cx0]) + w11 * Float(source[plane + cy1 * width + cx1])
                                // torchvision multiplies the zero-padded sample by the in-image weight once more.
                                let value = sum * inside + (1 - inside) * fillValue
                                target[plane + y * width + x] = UInt8(max(0, min(255, value.rounded(.toNearestOrEven))))
                            }
                        }
                    }
                }
            }
        }
        return DecodedImage(channels: channels, height: height, width: width, pixels: pixels)
    }

    /// `image` rotated by `angle` degrees counter-clockwise about its centre, same size (torchvision `rotate`).
    public static func rotate(_ image: DecodedImage, angle: Double, interpolation: Interpolation, fill: UInt8) -> DecodedImage {
        affine(image, matrix: inverseAffineMatrix(angle: -angle), interpolation: interpolation, fill: fill)
    }

    /// `image` under torchvision `affine(angle, translate, scale, shear)` about its centre (`center` nil) or about
    /// `center` in pixel coordinates from the top-left corner.
    public static func affine(_ image: DecodedImage, angle: Double, translate: (Int, Int), scale: Double, shear: (Double, Double),
                              center: (Double, Double)? = nil, interpolation: Interpolation, fill: UInt8) -> DecodedImage {
        let relative = center.map { ($0.0 - Double(image.width) / 2, $0.1 - Double(image.height) / 2) } ?? (0, 0)
        let matrix = inverseAffineMatrix(angle: angle, translate: (Double(translate.0), Double(translate.1)), scale: scale,
                                         shear: shear, center: relative)
        return affine(image, matrix: matrix, interpolation: interpolation, fill: fill)
    }
}
