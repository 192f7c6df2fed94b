import MambaTensor

/// A labelled image dataset. `sample(i)` gives the image as CHW float32 in [0, 1] (before any
/// augmentation or normalisation) and its class index.
public protocol ImageDataset: Sendable {
    var count: Int { get }
    var numClasses: Int { get }
    /// [channels, height, width] of every image.
    var imageShape: [Int] { get }
    /// Per-channel mean and std used to normalise this data.
    var normalization: (mean: [Float], std: [Float]) { get }
    func sample(_ index: Int) throws -> (image: [Float], label: Int)
    /// The same with random draws for datasets that crop while decoding (ImageFolder).
    func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int)
}

extension ImageDataset {
    public func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int) { try sample(index) }
}

/// A dataset that cannot be read: one line naming the path and what was expected.
public struct DatasetError: Error, CustomStringConvertible {
    public let description: String
    public init(_ path: String, _ message: String) { description = "\(path): \(message)" }
}

/// The random generator for one sample's augmentation: a function of the run's seed, the epoch
/// and the sample's position in the epoch only, so results do not depend on threads or resumes.
public func sampleGenerator(seed: UInt64, epoch: Int, index: Int) -> SeededGenerator {
    var g = SeededGenerator(seed: seed ^ 0x5DEE_CE66_D1CE_4E5B)
    let a = g.next() &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15
    var h = SeededGenerator(seed: a ^ (UInt64(index) &* 0xC2B2_AE3D_27D4_EB4F))
    _ = h.next()
    return h
}
