import FoveaTensor

/// Index arithmetic shared by float tensors (through `remap`) and integer tensors: each function gives the output
/// shape and, per output element, the input element it copies (−1: a fill value).
enum Indexing {
    /// Normalises `axis` (negative counts from the end) for a tensor of `rank` axes.
    static func axis(_ axis: Int, rank: Int, what: String = "axis") throws -> Int {
        let normalized = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(normalized) else {
            throw TensorError.invalidArgument(operation: what, message: "\(what) \(axis) out of range for \(rank) dimensions")
        }
        return normalized
    }

    static func transpose(_ shape: [Int], _ permutation: [Int]) throws -> ([Int], [Int]) {
        guard permutation.count == shape.count, Set(permutation) == Set(0..<shape.count) else {
            throw TensorError.invalidArgument(operation: "Transpose", message: "perm \(permutation) for shape \(shape)")
        }
        return try transposeSources(shape, permutation)
    }

    /// Pads: `begin[i]` and `end[i]` elements before and after axis i (negative crops). Modes: constant, edge, reflect.
    static func pad(_ shape: [Int], begin: [Int], end: [Int], mode: String) throws -> ([Int], [Int]) {
        guard begin.count == shape.count, end.count == shape.count,
              (begin + end).allSatisfy({ abs($0) <= maximumElements }) else {
            throw TensorError.invalidArgument(operation: "Pad", message: "pads \(begin + end) for shape \(shape)")
        }
        let outputShape = (0..<shape.count).map { shape[$0] + begin[$0] + end[$0] }
        guard outputShape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(operation: "Pad", message: "pads \(begin + end) crop more than shape \(shape)")
        }
        _ = try checkedCount(outputShape, "Pad")
        if mode != "constant" {
            for axis in 0..<shape.count where (begin[axis] > 0 || end[axis] > 0) {
                guard shape[axis] > 0, mode != "reflect" || (shape[axis] > 1 && max(begin[axis], end[axis]) < shape[axis]) else {
                    throw TensorError.invalidArgument(operation: "Pad", message: "\(mode) padding of \(begin[axis]), \(end[axis]) on an axis of \(shape[axis])")
                }
            }
        }
        let strides = rowMajorStrides(shape)
        return (outputShape, walk(outputShape) { index in
            var offset = 0
            for axis in 0..<shape.count {
                var i = index[axis] - begin[axis]
                let n = shape[axis]
                if i < 0 || i >= n {
                    switch mode {
                    case "edge": i = i < 0 ? 0 : n - 1
                    case "reflect": i = i < 0 ? -i : 2 * (n - 1) - i
                    default: return -1
                    }
                }
                offset += i * strides[axis]
            }
            return offset
        })
    }

    /// ONNX Slice along `axes` with `starts`, `ends`, `steps` (clamped as the operator specifies).
    static func slice(_ shape: [Int], starts: [Int], ends: [Int], axes: [Int], steps: [Int]) throws -> ([Int], [Int]) {
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw TensorError.invalidArgument(operation: "Slice", message: "starts, ends, axes and steps differ in length")
        }
        var first = [Int](repeating: 0, count: shape.count), step = [Int](repeating: 1, count: shape.count)
        var outputShape = shape
        var seen = Set<Int>()
        for k in 0..<axes.count {
            let axis = try self.axis(axes[k], rank: shape.count)
            guard seen.insert(axis).inserted, steps[k] != 0, abs(steps[k]) <= 1 << 40 else {
                throw TensorError.invalidArgument(operation: "Slice", message: "axis \(axes[k]) repeated, or step \(steps[k])")
            }
            let n = shape[axis]
            // Clamped before any arithmetic: starts and ends may be ±2⁶³ ("to the end").
            let (rawStart, rawEnd) = (min(max(starts[k], -n - 1), n + 1), min(max(ends[k], -n - 1), n + 1))
            var start = rawStart < 0 ? rawStart + n : rawStart
            var end = rawEnd < 0 ? rawEnd + n : rawEnd
            if steps[k] > 0 {
                start = min(max(start, 0), n)
                end = min(max(end, 0), n)
                outputShape[axis] = max(0, (end - start + steps[k] - 1) / steps[k])
            } else {
                start = min(max(start, -1), n - 1)
                end = min(max(end, -1), n - 1)
                outputShape[axis] = max(0, (start - end - steps[k] - 1) / -steps[k])
            }
            (first[axis], step[axis]) = (start, steps[k])
        }
        let strides = rowMajorStrides(shape)
        return (outputShape, walk(outputShape) { index in
            (0..<shape.count).reduce(0) { $0 + (first[$1] + index[$1] * step[$1]) * strides[$1] }
        })
    }

    /// ONNX Gather: indices (any shape) pick slices along `axis`.
    static func gather(_ shape: [Int], axis: Int, indices: ONNXIntegers) throws -> ([Int], [Int]) {
        let axis = try self.axis(axis, rank: shape.count)
        let n = shape[axis]
        let picked = try indices.values.map { value -> Int in
            guard value >= -Int64(n), value < Int64(n) else {
                throw TensorError.invalidArgument(operation: "Gather", message: "index \(value) out of range for an axis of \(n)")
            }
            let i = value < 0 ? Int(value) + n : Int(value)
            guard (0..<n).contains(i) else {
                throw TensorError.invalidArgument(operation: "Gather", message: "index \(value) out of range for an axis of \(n)")
            }
            return i
        }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        let outputShape = Array(shape[..<axis]) + indices.shape + Array(shape[(axis + 1)...])
        _ = try checkedCount(outputShape, "Gather")
        var sources: [Int] = []
        sources.reserveCapacity(outer * picked.count * inner)
        for o in 0..<outer {
            for i in picked {
                for j in 0..<inner { sources.append((o * n + i) * inner + j) }
            }
        }
        return (outputShape, sources)
    }

    static func tile(_ shape: [Int], repeats: [Int]) throws -> ([Int], [Int]) {
        guard repeats.count == shape.count, repeats.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(operation: "Tile", message: "repeats \(repeats) for shape \(shape)")
        }
        guard repeats.allSatisfy({ $0 <= maximumElements }) else {
            throw TensorError.invalidArgument(operation: "Tile", message: "repeats \(repeats)")
        }
        let outputShape = zip(shape, repeats).map { $0 * $1 }
        _ = try checkedCount(outputShape, "Tile")
        let strides = rowMajorStrides(shape)
        return (outputShape, walk(outputShape) { index in (0..<shape.count).reduce(0) { $0 + index[$1] % shape[$1] * strides[$1] } })
    }

    static func expand(_ shape: [Int], to target: [Int]) throws -> ([Int], [Int]) {
        guard target.allSatisfy({ $0 >= 0 }), let outputShape = broadcastShape(shape, target) else {
            throw TensorError.incompatibleShapes(operation: "Expand", shape, target)
        }
        _ = try checkedCount(outputShape, "Expand")
        return (outputShape, broadcastSources(shape, to: outputShape))
    }

    /// Where part `shape` lands in a concatenation along `axis` at `offset`, seen from the output of `outputShape`.
    static func concatenationPart(_ shape: [Int], into outputShape: [Int], axis: Int, offset: Int) -> [Int] {
        let strides = rowMajorStrides(shape)
        return walk(outputShape) { index in
            let i = index[axis] - offset
            guard i >= 0 && i < shape[axis] else { return -1 }
            return (0..<shape.count).reduce(0) { $0 + ($1 == axis ? i : index[$1]) * strides[$1] }
        }
    }

    /// The most elements an operator that builds its output from shape values (Expand, Tile, Pad, ConstantOfShape)
    /// may make: the running graph's `ONNXLimits.elements` (2²⁷ by default, 512 MB of floats), so that a hostile shape
    /// is an error, not an allocation that kills the process.
    @TaskLocal static var maximumElements = ONNXLimits.standard.elements

    /// The element count of `shape`, refused past `maximumElements` (and for negative or overflowing dims).
    static func checkedCount(_ shape: [Int], _ operation: String) throws -> Int {
        var count = 1
        for dim in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard dim >= 0, !overflow, product <= maximumElements else {
                throw TensorError.invalidArgument(operation: operation, message: "output shape \(shape) exceeds \(maximumElements) elements")
            }
            count = product
        }
        return count
    }

    /// `body(index)` for every multi-index of `shape` in row-major order.
    static func walk(_ shape: [Int], _ body: ([Int]) -> Int) -> [Int] {
        let count = shape.reduce(1, *)
        var result = [Int]()
        result.reserveCapacity(count)
        guard count > 0 else { return result }
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            result.append(body(index))
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }
}

extension ONNXIntegers {
    /// The elements `sources` picks (−1 → `fill`), as a tensor of `shape`.
    func remapped(_ shape: [Int], _ sources: [Int], fill: Int64 = 0) -> ONNXIntegers {
        ONNXIntegers(shape: shape, values: sources.map { $0 >= 0 ? values[$0] : fill })
    }

    /// NumPy-broadcast elementwise operation.
    static func broadcast(_ a: ONNXIntegers, _ b: ONNXIntegers, _ body: (Int64, Int64) throws -> Int64) throws -> ONNXIntegers {
        guard let shape = broadcastShape(a.shape, b.shape) else {
            throw TensorError.incompatibleShapes(operation: "integer arithmetic", a.shape, b.shape)
        }
        let (expandedA, expandedB) = (try Indexing.expand(a.shape, to: shape).1, try Indexing.expand(b.shape, to: shape).1)
        return ONNXIntegers(shape: shape, values: try zip(expandedA, expandedB).map { try body(a.values[$0], b.values[$1]) })
    }
}
