import Foundation

/// An ImageNet-style folder: `root/<class>/<image>`, classes sorted by name (indices stable across runs),
/// images sorted within each class. Only paths are held: images are decoded on demand, so a folder of
/// 100,000 files is indexed without reading any image.
public struct ImageFolder: Sendable {
    /// Folder that was indexed.
    public let root: String
    /// Class names (sub-folder names), sorted; the label of a class is its index here.
    public let classNames: [String]
    /// Every image file with its label.
    public let samples: [(path: String, label: Int32)]

    /// File extensions considered images (the format itself is chosen by magic bytes when decoding).
    public static let extensions: Set<String> = ["jpg", "jpeg", "png", "jpe", "jfif"]

    /// The same folder restricted to its first `count` images (in index order).
    public func prefix(_ count: Int) -> ImageFolder {
        ImageFolder(root: root, classNames: classNames, samples: Array(samples.prefix(count)))
    }

    init(root: String, classNames: [String], samples: [(path: String, label: Int32)]) {
        (self.root, self.classNames, self.samples) = (root, classNames, samples)
    }

    /// Number of images.
    public var count: Int { samples.count }

    /// Indexes `root`. Throws `DatasetError` when it is missing, has no class folders, or a class folder is empty.
    public init(root: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError.missingDirectory(path: root)
        }
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: root) } catch {
            throw DatasetError.unreadableFile(path: root, reason: "\(error)")
        }
        let classes = entries.filter { name in
            var folder: ObjCBool = false
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: joinPath(root, name), isDirectory: &folder)
                && folder.boolValue
        }.sorted()
        guard !classes.isEmpty else { throw DatasetError.emptyFolder(path: root, what: "class sub-folders") }
        var samples: [(String, Int32)] = []
        for (label, name) in classes.enumerated() {
            let folder = joinPath(root, name)
            let files: [String]
            do { files = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
                throw DatasetError.unreadableFile(path: folder, reason: "\(error)")
            }
            let images = files.filter { !$0.hasPrefix(".") && Self.extensions.contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            guard !images.isEmpty else { throw DatasetError.emptyFolder(path: folder, what: "images") }
            samples += images.map { (joinPath(folder, $0), Int32(label)) }
        }
        self.root = root
        classNames = classes
        self.samples = samples
    }
}
