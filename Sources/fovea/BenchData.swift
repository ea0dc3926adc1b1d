import Foundation
import FoveaData
import FoveaTensor
import FoveaTrain

/// The input-pipeline workload, the same as ../shared/bench/torch_dataload.py: an image folder read with
/// RandomResizedCrop(224), a horizontal flip and ImageNet normalisation into batches of 64 on worker threads.
enum ImageFolderWorkload {
    static let name = "imagefolder_224"
    static let size = 224
    static let batchSize = 64

    /// The training set `fovea train --dataset imagefolder` builds, over the class folders of `root`.
    static func trainingSet(root: String) throws -> ImageClassificationSet {
        let folder = try ImageFolder(root: root)
        let info = DatasetInfo.imageFolder(classNames: folder.classNames, size: size)
        return ImageClassificationSet(folder: folder, transforms: [
            .randomResizedCrop(size: size, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3)), .horizontalFlip(probability: 0.5),
        ], shape: [3, size, size], info: info, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
    }

    /// Loads `epochs` shuffled epochs of `root` and prints images/s per epoch and overall, with the peak RSS.
    static func measure(root: String, epochs: Int, workers: Int, json: Bool) throws {
        let set = try trainingSet(root: root)
        let loader = set.loader(batchSize: batchSize, workers: workers, train: true)
        var epochRates: [Double] = []
        var total = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for epoch in 1...epochs {
            let epochStart = DispatchTime.now().uptimeNanoseconds
            let stream = loader.batches(order: set.order(epoch: epoch, seed: 0, shuffle: true), epoch: epoch)
            var images = 0
            while let (_, labels) = try stream.next() { images += labels.count }
            epochRates.append(Double(images) / (Double(DispatchTime.now().uptimeNanoseconds - epochStart) / 1e9))
            total += images
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let stages = LoaderProfile.millisecondsPerSample()
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMB = Double(usage.ru_maxrss) / 1024
        let rate = Double(total) / seconds
        if json {
            var object: [String: Any] = [
                "workload": name, "framework": "fovea", "images": total, "epochs": epochs, "workers": workers,
                "batch": batchSize, "img_s": (rate * 10).rounded() / 10,
                "epoch_img_s": epochRates.map { ($0 * 10).rounded() / 10 }, "seconds": (seconds * 100).rounded() / 100,
                "peak_rss_mb": peakMB.rounded(),
            ]
            if !stages.isEmpty {
                object["stage_ms_per_image"] = Dictionary(uniqueKeysWithValues: stages.map { ($0.stage.rawValue, ($0.milliseconds * 1000).rounded() / 1000) })
            }
            printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        } else {
            print(String(format: "%-20@ %8.1f img/s over %d epochs of %d images (per epoch: %@), %d workers, batch %d, "
                         + "peak RSS %.0f MB", name as NSString, rate, epochs, set.count,
                         epochRates.map { String(format: "%.1f", $0) }.joined(separator: ", ") as NSString, workers,
                         batchSize, peakMB))
            for (stage, milliseconds, count) in stages {
                print(String(format: "  %-14@ %7.3f ms CPU per image (%d images)", stage.rawValue as NSString, milliseconds, count))
            }
        }
    }
}
