import MambaIO
import MambaTensor

/// A labelled image dataset. `sample(i)` gives the image as CHW float32 in [0, 1] (before any
/// augmentation or normalisation) and its class index.
package protocol ImageDataset: Sendable {
    var count: Int { get }
    var numClasses: Int { get }
    /// [channels, height, width] of every image.
    var imageShape: [Int] { get }
    /// Per-channel mean and std used to normalise this data.
    var normalization: (mean: [Float], std: [Float]) { get }
    /// Class i's name (default: "0", "1", ...).
    var classNames: [String] { get }
    /// How an image file becomes an input like this dataset's validation images, for a model of
    /// `size` px: what a checkpoint stores for `predict`.
    func inputTransform(size: Int) -> InputTransform
    func sample(_ index: Int) throws -> (image: [Float], label: Int)
    /// The same with random draws for datasets that crop while decoding (ImageFolder).
    func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int)
}

extension ImageDataset {
    package var classNames: [String] { (0..<numClasses).map(String.init) }

    /// Fixed-size datasets: the whole image resized (no crop margin), with their normalisation.
    package func inputTransform(size: Int) -> InputTransform {
        InputTransform(size: size, cropPct: 1, mean: normalization.mean, std: normalization.std)
    }

    package func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int) { try sample(index) }
}

/// A dataset that cannot be read, or a dataset setting that cannot be used: one line naming the
/// path (or the setting) first and what was expected. Values from files or users are clipped.
public enum DatasetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// CIFAR comes with 10 or 100 classes only.
    case unsupportedClassCount(path: String, classes: Int)
    /// Neither format of CIFAR's batches for this split under `path` or its standard subfolders.
    case missingCIFAR(path: String, classes: Int, train: Bool)
    /// A CIFAR binary batch whose size is not a whole number of records (truncated, or a
    /// batch of the other CIFAR, whose records are one byte longer or shorter).
    case recordSizeMismatch(path: String, recordBytes: Int, fileSize: Int)
    case labelOutOfRange(path: String, record: Int, label: Int, classes: Int)
    /// A CIFAR python batch without the expected dict, array or label list.
    case malformedBatch(path: String, classes: Int)
    /// An ImageFolder split folder that does not exist.
    case missingFolder(path: String)
    case noClassFolders(path: String)
    /// A folder given as images that holds no .jpg, .jpeg or .png file.
    case noImages(path: String)
    /// Class folders of an ImageFolder split that hold no readable .jpg, .jpeg or .png file.
    case emptyClasses(path: String, classes: [String])
    /// A link inside an ImageFolder class folder that leads back to a folder containing it.
    case linkCycle(path: String)
    /// Image files of an ImageFolder split whose headers cannot be read, each with its reason,
    /// in file order.
    case unreadableImages(path: String, images: [FileError])
    case unreadable(path: String)
    case missingBundledData(name: String)
    case invalidRandAugment(config: String, setting: String)
    /// A digit-scenes canvas size outside what the scenes are drawn for.
    case invalidSceneSize(size: Int, allowed: ClosedRange<Int>)
    /// A segmentation folder's `images/<split>` or `annotations/<split>` that does not exist.
    case missingSegmentationFolder(path: String)
    /// An image of a segmentation folder without its label map.
    case missingLabelMap(image: String, expected: String)
    /// A label map whose [height, width] differs from its image's.
    case labelMapSizeMismatch(path: String, found: [Int], image: [Int])
    /// Label maps are 8-bit, with 255 for "ignore": 1 to 255 classes.
    case invalidSegmentationClasses(path: String, classes: Int)

    /// One line naming the dataset file or folder and what is wrong.
    public var description: String {
        switch self {
        case .unsupportedClassCount(let path, let classes):
            "\(path): CIFAR has 10 or 100 classes, not \(classes)"
        case .missingCIFAR(let path, let classes, let train):
            "\(path): no CIFAR-\(classes) \(train ? "training" : "test") data found (looked for "
                + "\(Self.cifarFiles(classes: classes, train: train)) here and in \(Self.cifarFolders(classes: classes).joined(separator: ", "))/)"
        case .recordSizeMismatch(let path, let recordBytes, let fileSize):
            "\(path): \(fileSize) bytes is not a whole number of \(recordBytes)-byte records (truncated, or another format)"
        case .labelOutOfRange(let path, let record, let label, let classes):
            "\(path): record \(record) has label \(label), outside 0..<\(classes)"
        case .malformedBatch(let path, let classes):
            "\(path): not a CIFAR-\(classes) python batch (expected 'data' [N, 3072] uint8 and N '\(classes == 10 ? "labels" : "fine_labels")')"
        case .missingFolder(let path): "\(path): no such folder; an ImageFolder dataset needs <split>/<class>/<image>"
        case .noClassFolders(let path): "\(path): no class folders found"
        case .noImages(let path): "\(path): no .jpg, .jpeg or .png images in this folder or below"
        case .emptyClasses(let path, let classes):
            "\(path): no .jpg, .jpeg or .png images in class folder\(classes.count == 1 ? "" : "s") \(Self.firstFew(classes.map { clipped($0) }))"
        case .linkCycle(let path): "\(path): a link to a folder that contains it; the images under it would be listed forever"
        case .unreadableImages(let path, let images):
            "\(path): \(images.count) image file\(images.count == 1 ? "" : "s") cannot be read: \(Self.firstFew(images.map { "\($0)" }, separator: "; "))"
        case .unreadable(let path): "\(path): cannot read"
        case .missingBundledData(let name): "\(name): the bundled data is missing from the build"
        case .missingSegmentationFolder(let path):
            "\(path): no such folder; a segmentation folder needs images/<split>/ and annotations/<split>/ (split training or validation)"
        case .missingLabelMap(let image, let expected): "\(image): no label map; expected \(expected)"
        case .labelMapSizeMismatch(let path, let found, let image):
            "\(path): label map of \(found[0])×\(found[1]) px for an image of \(image[0])×\(image[1]) px"
        case .invalidSegmentationClasses(let path, let classes):
            "\(path): \(classes) classes; 8-bit label maps hold 1 to 255 (255 is ignored)"
        case .invalidSceneSize(let size, let allowed):
            "digit-scenes canvas of \(size) px; allowed: \(allowed.lowerBound)...\(allowed.upperBound)"
        case .invalidRandAugment(let config, let setting):
            "\(clipped(config)): unknown or invalid RandAugment setting '\(clipped(setting))' (expected rand-m9-mstd0.5-inc1 style: m 0...30, n a whole 0...100, mstd 0...100, inc 0 or 1, p 0...1)"
        }
    }

    /// The first three items, then how many there were in all.
    static func firstFew(_ items: [String], separator: String = ", ") -> String {
        let shown = items.prefix(3).joined(separator: separator)
        return items.count <= 3 ? shown : shown + "\(separator)… (\(items.count) in all)"
    }

    static func cifarFolders(classes: Int) -> [String] {
        classes == 10 ? ["cifar-10-batches-bin", "cifar-10-batches-py"] : ["cifar-100-binary", "cifar-100-python"]
    }

    /// The batch files of one split: (binary, python).
    static func cifarNames(classes: Int, train: Bool) -> (binary: [String], python: [String]) {
        classes == 10
            ? (train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"], train ? (1...5).map { "data_batch_\($0)" } : ["test_batch"])
            : (train ? ["train.bin"] : ["test.bin"], train ? ["train"] : ["test"])
    }

    static func cifarFiles(classes: Int, train: Bool) -> String {
        let (binary, python) = cifarNames(classes: classes, train: train)
        func span(_ names: [String]) -> String { names.count == 1 ? names[0] : "\(names[0]) … \(names[names.count - 1])" }
        return "\(span(binary)) or \(span(python))"
    }
}

/// A value from a user or a file, on one line and at most `limit` characters.
func clipped(_ text: String, _ limit: Int = 80) -> String {
    let short = text.count <= limit ? text : String(text.prefix(limit)) + "…"
    return String(String.UnicodeScalarView(short.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
}

/// The random generator for one sample's augmentation: a function of the run's seed, the epoch
/// and the sample's position in the epoch only, so results do not depend on threads or resumes.
package func sampleGenerator(seed: UInt64, epoch: Int, index: Int) -> SeededGenerator {
    var g = SeededGenerator(seed: seed ^ 0x5DEE_CE66_D1CE_4E5B)
    let a = g.next() &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15
    var h = SeededGenerator(seed: a ^ (UInt64(index) &* 0xC2B2_AE3D_27D4_EB4F))
    _ = h.next()
    return h
}
