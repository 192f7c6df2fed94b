import Dispatch
import Foundation
import MambaTensor

/// One batch: images [B, C, H, W] (normalised) and their labels.
package struct Batch: @unchecked Sendable {
    package let images: Tensor
    package let labels: [Int]
    /// Dataset indices of the samples, in batch order.
    package let indices: [Int]
    /// Positions of the samples in the epoch's order (the same on every rank): what their
    /// random draws are keyed by.
    package let positions: [Int]
}

/// Batches of a dataset in an order fixed by (seed, epoch): shuffled for training, in order for
/// evaluation. Augmentation draws from `sampleGenerator(seed:epoch:index:)`, so an epoch's
/// batches are the same whatever the thread count and whether or not the run was resumed.
/// The next batch is decoded and augmented on a background queue while the current one trains.
package struct DataLoader: Sendable {
    package let dataset: any ImageDataset
    package let batchSize: Int
    package let shuffle: Bool
    package let dropLast: Bool
    package let transforms: [any SampleTransform]
    /// Transforms applied after normalisation (random erasing).
    package let postTransforms: [any SampleTransform]
    package let seed: UInt64
    /// Repeated augmentation (the official RASampler): each sample `repeats` times per epoch.
    package let repeats: Int
    /// Data parallelism: global batch b is positions [b·B·W, (b+1)·B·W) of the epoch's order
    /// (W = worldSize), and this rank takes its B-sized slice, so W ranks with batch B see what
    /// one process with batch W·B sees, whatever W.
    package let rank: Int
    package let worldSize: Int

    package init(dataset: any ImageDataset, batchSize: Int, shuffle: Bool, dropLast: Bool,
                transforms: [any SampleTransform] = [], postTransforms: [any SampleTransform] = [],
                seed: UInt64 = 0, repeats: Int = 1, rank: Int = 0, worldSize: Int = 1) {
        self.rank = rank
        self.worldSize = max(1, worldSize)
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.transforms = transforms
        self.postTransforms = postTransforms
        self.seed = seed
        self.repeats = max(1, repeats)
    }

    /// The sample order of an epoch: a Fisher-Yates permutation seeded by seed and epoch. With
    /// repeated augmentation, as RASampler: every index repeated consecutively, then the epoch cut to
    /// the dataset size rounded down to a multiple of 256 (the whole size when that is 0), so an
    /// epoch shows about a third of the distinct images, three times each, differently augmented.
    package func order(epoch: Int) -> [Int] {
        var order = Array(0..<dataset.count)
        guard shuffle else { return order }
        var rng = SeededGenerator(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(epoch) &+ 1)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        guard repeats > 1 else { return order }
        let repeated = order.flatMap { [Int](repeating: $0, count: repeats) }
        let kept = dataset.count / 256 * 256
        return Array(repeated.prefix(kept > 0 ? kept : dataset.count))
    }

    /// Global batches per epoch.
    package func batchCount(epoch: Int = 0) -> Int {
        let n = order(epoch: epoch).count, global = batchSize * worldSize
        return dropLast ? n / global : (n + global - 1) / global
    }

    /// Batch `b` of `epoch`. A sample's augmentation draws depend on (seed, epoch, its position
    /// in the epoch's order), so repeated copies of an image are augmented differently.
    package func batch(_ b: Int, epoch: Int, order: [Int]) throws -> Batch {
        let first = min(order.count, (b * worldSize + rank) * batchSize)
        let indices = Array(order[first..<min(order.count, first + batchSize)])
        let shape = dataset.imageShape, per = shape.reduce(1, *)
        var pixels = [Float](repeating: 0, count: indices.count * per)
        var labels = [Int]()
        let (mean, std) = dataset.normalization
        for (i, index) in indices.enumerated() {
            var rng = sampleGenerator(seed: seed, epoch: epoch, index: first + i)
            var (image, label) = try dataset.sample(index, rng: &rng)
            for t in transforms { t.apply(&image, shape: shape, rng: &rng) }
            normalize(&image, shape: shape, mean: mean, std: std)
            for t in postTransforms { t.apply(&image, shape: shape, rng: &rng) }
            pixels.replaceSubrange((i * per)..<((i + 1) * per), with: image)
            labels.append(label)
        }
        let images = Tensor(ownValues: pixels, shape: [indices.count] + shape)
        images.requiresGrad = false
        return Batch(images: images, labels: labels, indices: indices, positions: Array(first..<(first + indices.count)))
    }

    /// Calls `body` with every batch of `epoch` from `start` on, preparing batch b+1 on a
    /// background queue while `body` works on batch b.
    package func forEachBatch(epoch: Int, from start: Int = 0, _ body: (Int, Batch) throws -> Void) throws {
        let order = order(epoch: epoch)
        let n = batchCount(epoch: epoch)
        guard start < n else { return }
        let queue = DispatchQueue(label: "vision-mamba.loader")
        var next: Result<Batch, Error> = Result { try batch(start, epoch: epoch, order: order) }
        for b in start..<n {
            let current = try next.get()
            let group = DispatchGroup()
            let prepared = PreparedBatch()
            if b + 1 < n {
                queue.async(group: group) { prepared.value = Result { try self.batch(b + 1, epoch: epoch, order: order) } }
            }
            // The last global batch of an evaluation may leave this rank nothing.
            if !current.labels.isEmpty { try body(b, current) }
            group.wait()
            if let value = prepared.value { next = value }
        }
    }
}

/// The next batch, written on the loader's queue and read only after its group has been waited
/// for, so the two never touch it at once.
private final class PreparedBatch: @unchecked Sendable {
    var value: Result<Batch, Error>?
}
