import MambaIO
import MambaTensor

/// One image of a segmentation dataset and its label map.
package struct SegmentationSample: Sendable {
    /// CHW float32 in [0, 1], before augmentation or normalisation.
    package var image: [Float]
    /// One class index per pixel, row-major [height, width]; `ignoreIndex` where unlabelled.
    package var labels: [UInt8]
    package var height: Int, width: Int

    package init(image: [Float], labels: [UInt8], height: Int, width: Int) {
        self.image = image
        self.labels = labels
        self.height = height
        self.width = width
    }
}

/// A dataset that labels every pixel of its images with a class.
package protocol SegmentationDataset: Sendable {
    var count: Int { get }
    var numClasses: Int { get }
    /// Class i's name.
    var classNames: [String] { get }
    /// Per-channel mean and std used to normalise this data.
    var normalization: (mean: [Float], std: [Float]) { get }
    func sample(_ index: Int) throws -> SegmentationSample
}

extension SegmentationDataset {
    /// Pixels with this label take no part in the loss or the metrics (mmseg's 255).
    package var ignoreIndex: Int { 255 }
}
