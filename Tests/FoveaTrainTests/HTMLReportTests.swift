import CImageCodecs
import Foundation
@testable import FoveaTrain
import Testing

@Suite("HTML report")
struct HTMLReportTests {
    func sampleReport() -> ClassificationReport {
        var confusion = ConfusionMatrix(classCount: 3)
        for (actual, predicted) in [(0, 0), (0, 1), (1, 1), (2, 2), (2, 0), (1, 1)] { confusion.add(actual: actual, predicted: predicted) }
        return ClassificationReport(dataset: "toy", split: "test", loss: 0.5, confusion: confusion, top5: nil,
                                    classNames: ["cat", "dog <big>", "bird"])
    }

    @Test("the page is self-contained and shows every part")
    func page() {
        var history: [EpochMetrics] = []
        for epoch in 1...4 {
            let e = Double(epoch)
            history.append(EpochMetrics(epoch: epoch, trainLoss: 1 / e, trainAccuracy: 0.5 + 0.1 * e, testLoss: 1.2 / e,
                                        testAccuracy: 0.45 + 0.1 * e, learningRate: 0.1 / e, seconds: 1, imagesPerSecond: 100))
        }
        let mistake = Mistake(index: 7, actual: 0, predicted: 1, confidence: 0.8, loss: 2)
        let html = HTMLReport(title: "toy run", history: history, report: sampleReport(),
                              mistakes: [(mistake, [UInt8](repeating: 128, count: 16), [1, 4, 4])]).render()
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("http://") && !html.contains("https://"), "the report must not load anything")
        #expect(html.components(separatedBy: "<svg").count - 1 == 5, "loss, accuracy, lr, confusion, class bars")
        #expect(html.contains("dog &lt;big&gt;") && !html.contains("dog <big>"))
        #expect(html.contains("data:image/png;base64,"))
        #expect(html.contains("true: <b>cat</b>"))
    }

    @Test("thumbnails are valid PNG: signature, chunk CRCs, and pixels that inflate back", arguments: [1, 3])
    func png(channels: Int) throws {
        let (height, width) = (5, 7)
        let pixels = (0..<(channels * height * width)).map { UInt8(($0 * 37) % 256) }
        let png = PNGEncoder.encode(pixels: pixels, channels: channels, height: height, width: width)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var offset = 8
        var idat: [UInt8] = []
        while offset < png.count {
            let length = png[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            let body = Array(png[(offset + 4)..<(offset + 8 + length)])
            let crc = png[(offset + 8 + length)..<(offset + 12 + length)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            #expect(UInt32(CImageCodecs.crc32(0, body, UInt32(body.count))) == crc, "chunk CRC")
            if String(decoding: body.prefix(4), as: UTF8.self) == "IDAT" { idat += body.dropFirst(4) }
            offset += 12 + length
        }
        var inflated = [UInt8](repeating: 0, count: height * (width * channels + 1))
        var size = uLongf(inflated.count)
        #expect(uncompress(&inflated, &size, idat, uLong(idat.count)) == Z_OK)
        for y in 0..<height {
            #expect(inflated[y * (width * channels + 1)] == 0)
            for x in 0..<width {
                for c in 0..<channels {
                    #expect(inflated[y * (width * channels + 1) + 1 + x * channels + c] == pixels[(c * height + y) * width + x])
                }
            }
        }
    }
}
