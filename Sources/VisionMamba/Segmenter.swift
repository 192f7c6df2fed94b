import Foundation
import MambaIO
import VisionMambaData
import VisionMambaModels
import VisionMambaTraining

/// The class of every pixel of an image.
public struct SegmentationMap: Sendable, Equatable {
    /// The image's width in pixels.
    public let width: Int
    /// The image's height in pixels.
    public let height: Int
    /// Each pixel's class index, row by row (`labels[y * width + x]`).
    public let labels: [Int]
    /// Class i's name.
    public let classNames: [String]

    /// The class index at pixel (`x`, `y`).
    public subscript(x: Int, y: Int) -> Int { labels[y * width + x] }

    /// The classes present, each with its share of the pixels, largest first.
    public var classShares: [(classIndex: Int, label: String, share: Double)] {
        var counts = [Int](repeating: 0, count: classNames.count)
        for l in labels { counts[l] += 1 }
        return counts.enumerated().filter { $0.element > 0 }
            .sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
            .map { ($0.offset, classNames[$0.offset], Double($0.element) / Double(labels.count)) }
    }
}

/// Semantic segmentation with a UperNet on a Vim, DyVM or DeiT backbone.
///
/// ```swift
/// let segmenter = try Segmenter(checkpoint: URL(fileURLWithPath: "runs/scenes/checkpoint.safetensors"))
/// let map = try segmenter.segment(.file(URL(fileURLWithPath: "street.jpg")))
/// for (_, label, share) in map.classShares.prefix(3) { print(label, share) }
/// ```
///
/// Images of any size are resized keeping their ratio and run by sliding window, as mmseg's
/// evaluation does; the map comes back at the image's own size. A segmenter is immutable after
/// loading and `Sendable`.
public final class Segmenter: @unchecked Sendable {
    // @unchecked: see ImageClassifier; the segmentor's batch norms run in eval mode and only
    // read their statistics.
    private let loaded: LoadedSegmentor

    /// The model's name.
    public var modelName: String { loaded.config.name }
    /// Class i's name: the checkpoint's, ADE20K's for 150 classes, else `class <index>`.
    public var classNames: [String] { loaded.classNames }

    /// A segmentation zoo model (`upernet-vim-tiny`, `upernet-dyvm-tiny`, `upernet-deit-tiny`,
    /// …) with `weights`: an mmseg checkpoint, a safetensors file, or a checkpoint of ours of it.
    public init(model: String, weights: URL, options: InferenceOptions = InferenceOptions()) throws {
        loaded = try LoadedSegmentor(model: model, weights: weights, options: options)
    }

    /// The model a segmentation checkpoint of this package describes.
    public init(checkpoint: URL, options: InferenceOptions = InferenceOptions()) throws {
        loaded = try LoadedSegmentor(model: nil, weights: checkpoint, options: options)
    }

    /// The label map of one image, at its own size.
    public func segment(_ image: ImageInput) throws -> SegmentationMap {
        let picture = try image.decoded(maxPixels: loaded.maxImagePixels)
        let labels = try segmentImage(picture, model: loaded.model, transform: loaded.transform, stride: loaded.stride)
        return SegmentationMap(width: picture.width, height: picture.height, labels: labels, classNames: loaded.classNames)
    }

    /// The label map of a JPEG or PNG file.
    public func segment(_ file: URL) throws -> SegmentationMap { try segment(.file(file)) }
}
