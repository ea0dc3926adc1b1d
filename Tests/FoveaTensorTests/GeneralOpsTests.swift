import Foundation
import FoveaTensor
import Testing

/// The general N-D operations (for imported graphs) against plain Double references written here index by index:
/// forward values and gradients (central finite differences), with 4-D inputs also handed over in the blocked layout.
@Suite("General N-D operations")
struct GeneralOpsTests {
    /// The multi-index of flat position `flat` in `shape`.
    static func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
        var index = [Int](repeating: 0, count: shape.count), rest = flat
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }

    static func ravel(_ index: [Int], _ shape: [Int]) -> Int { zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 } }

    /// NumPy broadcasting, element by element.
    static func referenceBroadcast(_ a: ReferenceArray, _ b: ReferenceArray, _ f: (Double, Double) -> Double) -> ReferenceArray {
        let rank = max(a.shape.count, b.shape.count)
        let pa = [Int](repeating: 1, count: rank - a.shape.count) + a.shape, pb = [Int](repeating: 1, count: rank - b.shape.count) + b.shape
        let shape = zip(pa, pb).map { max($0, $1) }
        let values = (0..<shape.reduce(1, *)).map { flat -> Double in
            let index = unravel(flat, shape)
            let ia = ravel(zip(index, pa).map { $1 == 1 ? 0 : $0 }, pa), ib = ravel(zip(index, pb).map { $1 == 1 ? 0 : $0 }, pb)
            return f(a.values[ia], b.values[ib])
        }
        return ReferenceArray(shape: shape, values: values)
    }

    static let pairs: [([Int], [Int])] = [([2, 3, 4, 5], [2, 3, 4, 5]), ([2, 3, 4, 5], [3, 1, 1]), ([2, 3, 1, 5], [1, 1, 4, 1]),
                                          ([4, 5], [5]), ([3], [2, 1])]

    @Test(arguments: BroadcastOperation.allCases)
    func broadcasting(_ operation: BroadcastOperation) throws {
        for (shapeA, shapeB) in Self.pairs {
            var generator = SeededGenerator(seed: 3)
            var a = randomArray(shapeA, &generator), b = randomArray(shapeB, &generator)
            if operation == .power { a.values = a.values.map { abs($0) + 0.5 } }
            if operation == .divide { b.values = b.values.map { $0 >= 0 ? $0 + 0.5 : $0 - 0.5 } }
            let f: (Double, Double) -> Double = switch operation {
            case .add: { $0 + $1 }
            case .subtract: { $0 - $1 }
            case .multiply: { $0 * $1 }
            case .divide: { $0 / $1 }
            case .power: { pow($0, $1) }
            case .maximum: { max($0, $1) }
            case .minimum: { min($0, $1) }
            }
            for layout in shapeA.count == 4 ? bothLayouts : [.plain] {
                try checkOp("\(operation) \(shapeA) \(shapeB) \(layout)", [OpInput(array: a, layout: layout), OpInput(array: b)],
                            forward: { try broadcast($0[0], $0[1], operation) },
                            reference: { Self.referenceBroadcast($0[0], $0[1], f) })
            }
        }
    }

    @Test func transposeAndPadAreRemaps() throws {
        var generator = SeededGenerator(seed: 4)
        let x = randomArray([2, 3, 4, 5], &generator)
        for layout in bothLayouts {
            try checkOp("transpose \(layout)", [OpInput(array: x, layout: layout)], forward: { try $0[0].transposed([2, 0, 3, 1]) }) { a in
                let input = a[0], shape = [4, 2, 5, 3]
                return ReferenceArray(shape: shape, values: (0..<120).map { flat in
                    let i = Self.unravel(flat, shape)
                    return input.values[Self.ravel([i[1], i[3], i[0], i[2]], input.shape)]
                })
            }
        }
        // Padding 1 before and 2 after the last axis, with −1 as the fill: a remap with negative sources.
        try checkOp("pad", [OpInput(array: x)], forward: { x in
            let shape = [2, 3, 4, 8]
            let sources = (0..<192).map { flat -> Int in
                let i = Self.unravel(flat, shape)
                return (1...5).contains(i[3]) ? Self.ravel([i[0], i[1], i[2], i[3] - 1], [2, 3, 4, 5]) : -1
            }
            return try remap(x[0], to: shape, sources: sources, fill: -1)
        }) { a in
            let shape = [2, 3, 4, 8]
            return ReferenceArray(shape: shape, values: (0..<192).map { flat in
                let i = Self.unravel(flat, shape)
                return (1...5).contains(i[3]) ? a[0].values[Self.ravel([i[0], i[1], i[2], i[3] - 1], [2, 3, 4, 5])] : -1
            })
        }
    }

    @Test(arguments: [Reduction.sum, .mean, .maximum, .minimum, .product, .sumSquare, .l1, .l2, .logSum, .logSumExp])
    func reductions(_ reduction: Reduction) throws {
        var generator = SeededGenerator(seed: 5)
        var x = randomArray([2, 3, 4], &generator)
        if reduction == .logSum || reduction == .product { x.values = x.values.map { abs($0) + 0.5 } }
        for (axes, keep) in [([1], true), ([0, 2], false), ([], false), ([-1], true)] {
            try checkOp("\(reduction) axes \(axes)", [OpInput(array: x)],
                        forward: { try reduce($0[0], reduction, axes: axes, keepingDimensions: keep) }) { a in
                let shape = a[0].shape
                let reduced = Set(axes.isEmpty ? [0, 1, 2] : axes.map { $0 < 0 ? $0 + 3 : $0 })
                let kept = (0..<3).map { reduced.contains($0) ? 1 : shape[$0] }
                var groups = [[Double]](repeating: [], count: kept.reduce(1, *))
                for flat in 0..<a[0].values.count {
                    let i = Self.unravel(flat, shape)
                    groups[Self.ravel((0..<3).map { reduced.contains($0) ? 0 : i[$0] }, kept)].append(a[0].values[flat])
                }
                let values = groups.map { g -> Double in
                    switch reduction {
                    case .sum: g.reduce(0, +)
                    case .mean: g.reduce(0, +) / Double(g.count)
                    case .maximum: g.max()!
                    case .minimum: g.min()!
                    case .product: g.reduce(1, *)
                    case .sumSquare: g.reduce(0) { $0 + $1 * $1 }
                    case .l1: g.reduce(0) { $0 + abs($1) }
                    case .l2: g.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    case .logSum: log(g.reduce(0, +))
                    case .logSumExp: log(g.reduce(0) { $0 + exp($1) })
                    }
                }
                let outputShape = keep ? kept : (0..<3).filter { !reduced.contains($0) }.map { shape[$0] }
                return ReferenceArray(shape: outputShape, values: values)
            }
        }
    }

    @Test func batchedMatrixProducts() throws {
        for (shapeA, shapeB) in [([3, 4], [4, 5]), ([2, 3, 4], [4, 2]), ([2, 1, 3, 4], [3, 4, 5]), ([4], [4, 3]), ([2, 3], [3])] {
            var generator = SeededGenerator(seed: 6)
            let a = randomArray(shapeA, &generator), b = randomArray(shapeB, &generator)
            try checkOp("matmul \(shapeA) \(shapeB)", [OpInput(array: a), OpInput(array: b)], forward: { try matmul($0[0], $0[1]) }) { x in
                // Promote 1-D operands as NumPy does, multiply with broadcast batch axes, drop the promoted axes.
                let left = shapeA.count == 1 ? [1] + shapeA : shapeA, right = shapeB.count == 1 ? shapeB + [1] : shapeB
                let (m, k, n) = (left[left.count - 2], left[left.count - 1], right[right.count - 1])
                let batchA = Array(left.dropLast(2)), batchB = Array(right.dropLast(2))
                let rank = max(batchA.count, batchB.count)
                let pa = [Int](repeating: 1, count: rank - batchA.count) + batchA, pb = [Int](repeating: 1, count: rank - batchB.count) + batchB
                let batch = zip(pa, pb).map { max($0, $1) }
                var values: [Double] = []
                for p in 0..<batch.reduce(1, *) {
                    let index = Self.unravel(p, batch)
                    let ia = Self.ravel(zip(index, pa).map { $1 == 1 ? 0 : $0 }, pa), ib = Self.ravel(zip(index, pb).map { $1 == 1 ? 0 : $0 }, pb)
                    for i in 0..<m {
                        for j in 0..<n {
                            values.append((0..<k).reduce(0) { $0 + x[0].values[ia * m * k + i * k + $1] * x[1].values[ib * k * n + $1 * n + j] })
                        }
                    }
                }
                var shape = batch + [m, n]
                if shapeA.count == 1 { shape.remove(at: shape.count - 2) }
                if shapeB.count == 1 { shape.removeLast() }
                return ReferenceArray(shape: shape, values: values)
            }
        }
    }

    @Test func elementwiseFunctions() throws {
        var generator = SeededGenerator(seed: 8)
        let x = randomArray([2, 3, 4, 5], &generator)
        let cubic = ElementwiseFunction("cubic", value: { $0 * $0 * $0 - $0 }, derivative: { x, _ in 3 * x * x - 1 })
        for layout in bothLayouts {
            try checkOp("cubic \(layout)", [OpInput(array: x, layout: layout)], forward: { try elementwise($0[0], cubic) }) { a in
                ReferenceArray(shape: a[0].shape, values: a[0].values.map { $0 * $0 * $0 - $0 })
            }
        }
    }

    @Test func broadcastShapes() {
        #expect(broadcastShape([2, 1, 4], [3, 1]) == [2, 3, 4])
        #expect(broadcastShape([2, 3], [4, 3]) == nil)
        #expect(broadcastShape([], [5]) == [5])
    }
}
