import Foundation

/// The self-contained `report.html`: SVG plots of the training curves and learning rate, the confusion
/// matrix as a heat map, per-class precision/recall/F1 bars and the hardest mistakes as thumbnails.
/// Needs no network: styles, plots and images are inline.
public struct HTMLReport {
    public var title: String
    public var history: [EpochMetrics]
    public var report: ClassificationReport
    /// Misclassified samples with their grayscale or RGB pixels (C×H×W bytes).
    public var mistakes: [(mistake: Mistake, pixels: [UInt8], shape: [Int])]
    /// For each mistake (same order), the PNG of its Grad-CAM overlay for the predicted class, where there is one.
    public var explanations: [[UInt8]?]

    /// Creates the report.
    public init(title: String, history: [EpochMetrics], report: ClassificationReport,
                mistakes: [(mistake: Mistake, pixels: [UInt8], shape: [Int])], explanations: [[UInt8]?] = []) {
        (self.title, self.history, self.report, self.mistakes) = (title, history, report, mistakes)
        self.explanations = explanations
    }

    /// The whole HTML document.
    public func render() -> String {
        let epochs = history.map { Double($0.epoch) }
        var body = "<h1>\(escape(title))</h1>\n"
        body += String(format: "<p class=summary>%@ · %@ split · %d samples · accuracy <b>%.2f %%</b> · top-5 %.2f %% · loss %.4f</p>\n",
                       escape(report.dataset), escape(report.split), report.samples, report.accuracy * 100,
                       (report.top5Accuracy ?? .nan) * 100, report.loss ?? .nan)
        if !history.isEmpty {
            body += "<div class=row>"
            body += section("Loss per epoch", lineChart(x: epochs, series: [
                ("train", history.map(\.trainLoss), "#1f77b4"), ("test", history.map(\.testLoss), "#d62728"),
            ] + emaSeries(\.emaTestLoss)))
            body += section("Accuracy per epoch", lineChart(x: epochs, series: [
                ("train", history.map(\.trainAccuracy), "#1f77b4"), ("test", history.map(\.testAccuracy), "#d62728"),
            ] + emaSeries(\.emaTestAccuracy)))
            body += section("Learning rate (end of epoch)", lineChart(x: epochs, series: [("lr", history.map(\.learningRate), "#2ca02c")]))
            body += "</div>\n"
        }
        body += "<div class=row>"
        body += section("Confusion matrix (rows: true class)", heatMap())
        body += section("Per-class precision, recall, F1", classBars())
        body += "</div>\n"
        if !mistakes.isEmpty {
            let heading = explanations.contains { $0 != nil }
                ? "Hardest misclassified test images, each with its Grad-CAM map of the predicted class" : "Hardest misclassified test images"
            body += section(heading, thumbnails())
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
            h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 0 0 8px; }
            .summary { color: #555; } .row { display: flex; flex-wrap: wrap; gap: 24px; }
            section { margin: 16px 0; } svg text { font-size: 11px; fill: #333; }
            .thumbs { display: flex; flex-wrap: wrap; gap: 10px; } .thumb { text-align: center; font-size: 11px; width: 96px; }
            .thumb img { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid #ccc; }
            .thumb img.cam { image-rendering: auto; margin-top: 2px; }
            </style></head><body>
            \(body)</body></html>
            """
    }

    private func emaSeries(_ path: KeyPath<EpochMetrics, Double?>) -> [(String, [Double], String)] {
        let values = history.compactMap { $0[keyPath: path] }
        return values.count == history.count ? [("test (EMA)", values, "#ff7f0e")] : []
    }

    private func section(_ heading: String, _ content: String) -> String {
        "<section><h2>\(escape(heading))</h2>\(content)</section>\n"
    }

    /// A line chart with axes, ticks and a legend.
    func lineChart(x: [Double], series: [(String, [Double], String)], width: Double = 400, height: Double = 240) -> String {
        // The legend sits in the right margin, outside the plot, so it never hides a curve.
        let (left, right, top, bottom) = (52.0, 84.0, 12.0, 36.0)
        let finite = series.flatMap(\.1).filter(\.isFinite)
        var low = finite.min() ?? 0, high = finite.max() ?? 1
        if high - low < 1e-12 { low -= 0.5; high += 0.5 }
        let (xLow, xHigh) = (x.first ?? 0, max(x.last ?? 1, (x.first ?? 0) + 1))
        func px(_ v: Double) -> Double { left + (v - xLow) / (xHigh - xLow) * (width - left - right) }
        func py(_ v: Double) -> Double { top + (high - v) / (high - low) * (height - top - bottom) }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"#fafafa\" stroke=\"#bbb\"/>"
        for i in 0...4 {
            let v = low + (high - low) * Double(i) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(py(v))\" y2=\"\(py(v))\" stroke=\"#e4e4e4\"/>"
            svg += "<text x=\"\(left - 4)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(format(v))</text>"
        }
        let step = max(1, x.count / 8)
        for (i, v) in x.enumerated() where i % step == 0 || i == x.count - 1 {
            svg += "<text x=\"\(px(v))\" y=\"\(height - bottom + 14)\" text-anchor=\"middle\">\(Int(v))</text>"
        }
        svg += "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\">epoch</text>"
        for (index, (name, values, colour)) in series.enumerated() {
            let points = zip(x, values).filter { $0.1.isFinite }.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points)\"/>"
            for (v, y) in zip(x, values) where y.isFinite {
                svg += "<circle cx=\"\(px(v))\" cy=\"\(py(y))\" r=\"2.5\" fill=\"\(colour)\"/>"
            }
            let legendY = top + 14 + Double(index) * 14
            svg += "<rect x=\"\(width - right + 8)\" y=\"\(legendY - 8)\" width=\"10\" height=\"10\" fill=\"\(colour)\"/>"
            svg += "<text x=\"\(width - right + 22)\" y=\"\(legendY + 1)\">\(escape(name))</text>"
        }
        return svg + "</svg>"
    }

    /// The confusion matrix as a heat map, each cell shaded by its share of the true class's row.
    func heatMap() -> String {
        let n = report.classes.count
        let cell = max(14.0, min(40.0, 420.0 / Double(max(n, 1))))
        let label = 110.0
        let size = label + cell * Double(n) + 10
        var svg = "<svg width=\"\(Int(size + 60))\" height=\"\(Int(size))\">"
        for (row, counts) in report.confusionMatrix.enumerated() {
            let total = max(counts.reduce(0, +), 1)
            svg += "<text x=\"\(label - 6)\" y=\"\(label + cell * (Double(row) + 0.65))\" text-anchor=\"end\">\(escape(report.classes[row]))</text>"
            for (column, count) in counts.enumerated() {
                let share = Double(count) / Double(total)
                let shade = Int(255 - share * 200)
                let colour = row == column ? "rgb(\(shade),\(shade + (255 - shade) / 3),\(shade))"
                    : "rgb(255,\(shade),\(shade))"
                let (x, y) = (label + cell * Double(column), label + cell * Double(row))
                svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"\(colour)\" stroke=\"#fff\"><title>\(escape(report.classes[row])) → \(escape(report.classes[column])): \(count)</title></rect>"
                if cell >= 24 && count > 0 {
                    svg += "<text x=\"\(x + cell / 2)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"middle\" style=\"font-size:9px\">\(count)</text>"
                }
            }
        }
        for (column, name) in report.classes.enumerated() {
            let x = label + cell * (Double(column) + 0.6)
            svg += "<text transform=\"translate(\(x),\(label - 6)) rotate(-50)\">\(escape(name))</text>"
        }
        return svg + "</svg>"
    }

    /// Grouped horizontal bars of precision, recall and F1 per class.
    func classBars() -> String {
        let rowHeight = 30.0, label = 110.0, barWidth = 260.0
        let height = Double(report.perClass.count) * rowHeight + 30
        var svg = "<svg width=\"\(Int(label + barWidth + 60))\" height=\"\(Int(height))\">"
        let colours = [("precision", "#1f77b4"), ("recall", "#ff7f0e"), ("F1", "#2ca02c")]
        for (index, (name, colour)) in colours.enumerated() {
            svg += "<rect x=\"\(label + Double(index) * 90)\" y=\"2\" width=\"10\" height=\"10\" fill=\"\(colour)\"/>"
            svg += "<text x=\"\(label + 14 + Double(index) * 90)\" y=\"11\">\(name)</text>"
        }
        for (row, scores) in report.perClass.enumerated() {
            let y = 24 + Double(row) * rowHeight
            svg += "<text x=\"\(label - 6)\" y=\"\(y + 15)\" text-anchor=\"end\">\(escape(scores.className))</text>"
            for (index, value) in [scores.precision, scores.recall, scores.f1].enumerated() {
                let width = max(0, min(1, value.isFinite ? value : 0)) * barWidth
                svg += "<rect x=\"\(label)\" y=\"\(y + Double(index) * 8)\" width=\"\(width)\" height=\"7\" fill=\"\(colours[index].1)\"><title>\(colours[index].0) \(format(value))</title></rect>"
            }
            svg += "<text x=\"\(label + barWidth + 6)\" y=\"\(y + 15)\">\(format(scores.f1))</text>"
        }
        return svg + "</svg>"
    }

    /// The hardest mistakes as inline PNG thumbnails with true and predicted labels.
    func thumbnails() -> String {
        var html = "<div class=thumbs>"
        for (position, (mistake, pixels, shape)) in mistakes.enumerated() {
            let png = PNGEncoder.encode(pixels: pixels, channels: shape[0], height: shape[1], width: shape[2])
            let name = { (i: Int) in i < report.classes.count ? report.classes[i] : String(i) }
            html += "<div class=thumb><img alt=\"sample \(mistake.index)\" src=\"data:image/png;base64,\(Data(png).base64EncodedString())\">"
            if position < explanations.count, let overlay = explanations[position] {
                html += "<img class=cam alt=\"Grad-CAM of sample \(mistake.index)\" src=\"data:image/png;base64,\(Data(overlay).base64EncodedString())\">"
            }
            html += "<br>#\(mistake.index)<br>true: <b>\(escape(name(mistake.actual)))</b><br>said: \(escape(name(mistake.predicted)))"
            html += String(format: " (%.0f %%)", mistake.confidence * 100) + "</div>"
        }
        return html + "</div>"
    }

    private func format(_ value: Double) -> String {
        guard value.isFinite else { return "–" }
        if abs(value) >= 100 { return String(format: "%.0f", value) }
        if abs(value) >= 0.01 || value == 0 { return String(format: "%.3g", value) }
        return String(format: "%.1e", value)
    }
}

/// Escapes text for HTML and SVG.
func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

/// A minimal PNG writer (8-bit grayscale or RGB, zlib stored blocks): enough for report thumbnails.
enum PNGEncoder {
    /// Encodes planar C×H×W bytes (C = 1 or 3) as a PNG file.
    static func encode(pixels: [UInt8], channels: Int, height: Int, width: Int) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (width * channels + 1))
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width {
                for c in 0..<channels { raw.append(pixels[(c * height + y) * width + x]) }
            }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, raw.count - offset)
            let final: UInt8 = offset + length == raw.count ? 1 : 0
            zlib += [final, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            zlib += raw[offset..<(offset + length)]
            offset += length
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65_521; b = (b + a) % 65_521 }
        zlib += bigEndian((b << 16) | a)
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, channels == 3 ? 2 : 0, 0, 0, 0])
        png += chunk("IDAT", zlib)
        png += chunk("IEND", [])
        return png
    }

    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }
}
