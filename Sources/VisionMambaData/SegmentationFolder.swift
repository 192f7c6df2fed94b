import Foundation
import MambaIO
import MambaTensor

/// mmseg's folder layout for semantic segmentation: `images/<split>/NAME.jpg|png` with its label
/// map `annotations/<split>/NAME.png` (the same relative path, `.png`), split `training` or
/// `validation`. ADE20K (`ADEChallengeData2016`) is this layout with 150 classes and
/// `reduceZeroLabel`: its 0 means "other" and is ignored, and class k is stored as k + 1.
package struct SegmentationFolderDataset: SegmentationDataset {
    package enum Split: String, Sendable { case training, validation }

    package let root: String
    package let split: Split
    package let numClasses: Int
    /// mmseg's reduce_zero_label: 0 becomes the ignore label, every other label v becomes v − 1.
    package let reduceZeroLabel: Bool
    package let classNames: [String]
    /// (image, label map) paths, sorted by image path.
    package let pairs: [(image: String, labels: String)]

    package init(root: String, split: Split, numClasses: Int, reduceZeroLabel: Bool = false, classNames: [String]? = nil) throws {
        guard (1...255).contains(numClasses) else {
            throw DatasetError.invalidSegmentationClasses(path: root, classes: numClasses)
        }
        let images = (root as NSString).appendingPathComponent("images/\(split.rawValue)")
        let annotations = (root as NSString).appendingPathComponent("annotations/\(split.rawValue)")
        for folder in [images, annotations] where FolderWalk.folderID(folder)?.isFolder != true {
            throw DatasetError.missingSegmentationFolder(path: folder)
        }
        pairs = try ImageFiles.expand([images]).map { image in
            let relative = String(image.dropFirst(images.count))
            let labels = ((annotations + relative) as NSString).deletingPathExtension + ".png"
            guard FileManager.default.fileExists(atPath: labels) else { throw DatasetError.missingLabelMap(image: image, expected: labels) }
            return (image, labels)
        }
        self.root = root
        self.split = split
        self.numClasses = numClasses
        self.reduceZeroLabel = reduceZeroLabel
        self.classNames = classNames ?? (0..<numClasses).map { "class \($0)" }
    }

    /// ADE20K's SceneParsing release as the official configs read it.
    package static func ade20k(root: String, split: Split) throws -> SegmentationFolderDataset {
        try SegmentationFolderDataset(root: root, split: split, numClasses: 150, reduceZeroLabel: true)
    }

    package var count: Int { pairs.count }
    package var normalization: (mean: [Float], std: [Float]) { (EvalTransform.mean, EvalTransform.std) }

    package func sample(_ index: Int) throws -> SegmentationSample {
        let (imagePath, labelPath) = pairs[index]
        let image = try ImageDecoder.decode(imagePath), map = try LabelMap.decode(labelPath)
        guard map.width == image.width, map.height == image.height else {
            throw DatasetError.labelMapSizeMismatch(path: labelPath, found: [map.height, map.width], image: [image.height, image.width])
        }
        var labels = map.labels
        if reduceZeroLabel {
            // mmseg: 0 → 255, then v − 1, and the 254 that 255 became back to 255.
            for i in labels.indices { labels[i] = labels[i] == 0 || labels[i] == 255 ? 255 : labels[i] - 1 }
        }
        if let bad = labels.firstIndex(where: { Int($0) >= numClasses && $0 != 255 }) {
            throw DatasetError.labelOutOfRange(path: labelPath, record: bad, label: Int(labels[bad]), classes: numClasses)
        }
        return SegmentationSample(image: image.planarFloats, labels: labels, height: image.height, width: image.width)
    }
}
