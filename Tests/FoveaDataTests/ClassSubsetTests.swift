import Foundation
@testable import FoveaData
import Testing

@Suite("Class subsets and per-class limits")
struct ClassSubsetTests {
    let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    @Test("classes by index, by name and by name in any case, in the order given")
    func selection() throws {
        let selection = try ClassSelection(["5", "shirt", "Ankle boot", " 7 "], classNames: names)
        #expect(selection.labels == [5, 6, 9, 7])
        #expect(selection.names == ["Sandal", "Shirt", "Ankle boot", "Sneaker"])
        #expect(selection.relabelling[9] == 2 && selection.relabelling[0] == -1)
    }

    @Test("an unknown class, a repeated class or an empty list is an error naming it",
          arguments: [(["10"], "'10'"), (["Sandals"], "'Sandals'"), (["5", "Sandal"], "twice"), ([], "no class")])
    func badSelection(_ tokens: [String], _ expected: String) {
        #expect(performing: { try ClassSelection(tokens, classNames: names) }, throws: { error in
            "\(error)".contains(expected)
        })
    }

    /// Labels 0…9, 30 of each (sample i has label i % 10).
    var labels: [Int32] { (0..<300).map { Int32($0 % 10) } }

    @Test("the per-class limit keeps N of each kept class, relabelled, the same N for a seed and others for another seed")
    func perClassLimit() throws {
        let selection = try ClassSelection(["8", "3"], classNames: names)
        let kept = try selectSamples(labels: labels, selection: selection, limitPerClass: 7, seed: 1)
        #expect(kept.count == 14)
        #expect(kept.filter { $0.label == 0 }.count == 7 && kept.filter { $0.label == 1 }.count == 7)
        for sample in kept { #expect(Int(labels[sample.index]) == selection.labels[Int(sample.label)]) }
        #expect(kept.map(\.index) == kept.map(\.index).sorted())
        let again = try selectSamples(labels: labels, selection: selection, limitPerClass: 7, seed: 1)
        #expect(again.map(\.index) == kept.map(\.index))
        let other = try selectSamples(labels: labels, selection: selection, limitPerClass: 7, seed: 2)
        #expect(other.map(\.index) != kept.map(\.index))
        // Not simply the first seven of each class in file order.
        #expect(kept.filter { $0.label == 0 }.map(\.index) != Array(stride(from: 8, to: 78, by: 10)))
        // More than a class has keeps all of it; without a selection every class is limited.
        #expect(try selectSamples(labels: labels, selection: selection, limitPerClass: 100, seed: 1).count == 60)
        #expect(try selectSamples(labels: labels, selection: nil, limitPerClass: 2, seed: 1).count == 20)
    }

    @Test("a limit of 0 is refused")
    func zeroLimit() {
        #expect(throws: ClassSelectionError.badLimit(0)) { try selectSamples(labels: labels, selection: nil, limitPerClass: 0, seed: 0) }
    }

    @Test("an in-memory subset holds the kept samples' bytes and new labels")
    func subsetBytes() throws {
        let count = 20
        let pixels = (0..<count * 4).map { UInt8($0 % 251) }
        let source = InMemoryImagesForTest(count: count, pixels: pixels, labels: (0..<count).map { Int32($0 % 4) })
        let samples = try selectSamples(labels: source.labels, selection: ClassSelection(["2"], classNames: ["a", "b", "c", "d"]),
                                        limitPerClass: nil, seed: 0)
        let subset = LabeledImageSubset(source, samples: samples, classCount: 1)
        #expect(subset.count == 5 && subset.labels == [0, 0, 0, 0, 0] && subset.sourceIndices == [2, 6, 10, 14, 18])
        for (row, index) in subset.sourceIndices.enumerated() {
            #expect(Array(subset.pixels[(row * 4)..<((row + 1) * 4)]) == Array(pixels[(index * 4)..<((index + 1) * 4)]))
        }
    }
}

/// A 1×2×2 labelled set held in arrays.
struct InMemoryImagesForTest: LabeledImages {
    let count: Int
    let channels = 1, height = 2, width = 2
    var classCount: Int { 4 }
    let pixels: [UInt8]
    let labels: [Int32]
}
