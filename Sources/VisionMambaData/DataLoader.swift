import Dispatch
import Foundation
import MambaTensor

/// One batch: images [B, C, H, W] (normalised) and their labels.
public struct Batch: @unchecked Sendable {
    public let images: Tensor
    public let labels: [Int]
    /// Dataset indices of the samples, in batch order.
    public let indices: [Int]
}

/// Batches of a dataset in an order fixed by (seed, epoch): shuffled for training, in order for
/// evaluation. Augmentation draws from `sampleGenerator(seed:epoch:index:)`, so an epoch's
/// batches are the same whatever the thread count and whether or not the run was resumed.
/// The next batch is decoded and augmented on a background queue while the current one trains.
public struct DataLoader: Sendable {
    public let dataset: any ImageDataset
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    public let transforms: [any SampleTransform]
    public let seed: UInt64

    public init(dataset: any ImageDataset, batchSize: Int, shuffle: Bool, dropLast: Bool,
                transforms: [any SampleTransform] = [], seed: UInt64 = 0) {
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.transforms = transforms
        self.seed = seed
    }

    /// The sample order of an epoch (a Fisher-Yates permutation seeded by seed and epoch).
    public func order(epoch: Int) -> [Int] {
        var order = Array(0..<dataset.count)
        guard shuffle else { return order }
        var rng = SeededGenerator(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(epoch) &+ 1)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return order
    }

    public func batchCount(epoch: Int = 0) -> Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// Batch `b` of `epoch`.
    public func batch(_ b: Int, epoch: Int, order: [Int]) throws -> Batch {
        let indices = Array(order[(b * batchSize)..<min(order.count, (b + 1) * batchSize)])
        let shape = dataset.imageShape, per = shape.reduce(1, *)
        let images = Tensor(uninitializedShape: [indices.count] + shape)
        images.requiresGrad = false
        var labels = [Int]()
        let (mean, std) = dataset.normalization
        for (i, index) in indices.enumerated() {
            var (image, label) = try dataset.sample(index)
            var rng = sampleGenerator(seed: seed, epoch: epoch, index: index)
            for t in transforms { t.apply(&image, shape: shape, rng: &rng) }
            normalize(&image, shape: shape, mean: mean, std: std)
            image.withUnsafeBufferPointer { (images.data + i * per).update(from: $0.baseAddress!, count: per) }
            labels.append(label)
        }
        return Batch(images: images, labels: labels, indices: indices)
    }

    /// Calls `body` with every batch of `epoch` from `start` on, preparing batch b+1 on a
    /// background queue while `body` works on batch b.
    public func forEachBatch(epoch: Int, from start: Int = 0, _ body: (Int, Batch) throws -> Void) throws {
        let order = order(epoch: epoch), n = batchCount(epoch: epoch)
        guard start < n else { return }
        let queue = DispatchQueue(label: "vision-mamba.loader")
        var next: Result<Batch, Error> = Result { try batch(start, epoch: epoch, order: order) }
        for b in start..<n {
            let current = try next.get()
            let group = DispatchGroup()
            var prepared: Result<Batch, Error>? = nil
            if b + 1 < n {
                queue.async(group: group) { prepared = Result { try self.batch(b + 1, epoch: epoch, order: order) } }
            }
            try body(b, current)
            group.wait()
            if let prepared { next = prepared }
        }
    }
}
