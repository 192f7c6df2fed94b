import Foundation
import MambaIO
import MambaTensor

/// The UCI optical handwritten digits (the copy scikit-learn ships as `load_digits`; CC BY 4.0,
/// E. Alpaydin and C. Kaynak): 1,797 images of 8×8 pixels with values 0…16, 10 classes,
/// bundled so a first run needs no download. The split is fixed: a permutation drawn once from
/// seed 0, its first 1,437 images for training and the last 360 for validation.
package struct DigitsDataset: ImageDataset {
    package enum Split: String, Sendable { case train, val }

    package static let trainCount = 1437
    let pixels: [UInt8]      // [count, 64]
    let labels: [Int]
    package let split: Split

    package init(split: Split) throws {
        guard let url = Bundle.module.url(forResource: "digits", withExtension: "bin"),
              let data = FileManager.default.contents(atPath: url.path) else {
            throw DatasetError.missingBundledData(name: "digits.bin")
        }
        let bytes = [UInt8](data), header = Array("DIGITS1\n".utf8)
        guard bytes.starts(with: header), (bytes.count - header.count) % 65 == 0 else {
            throw DatasetError.recordSizeMismatch(path: url.path, recordBytes: 65, fileSize: bytes.count)
        }
        let total = (bytes.count - header.count) / 65
        var order = Array(0..<total)
        var rng = SeededGenerator(seed: 0)
        for i in stride(from: total - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let chosen = split == .train ? order[..<Self.trainCount] : order[Self.trainCount...]
        var px = [UInt8](), lab = [Int]()
        for i in chosen {
            let r = header.count + i * 65
            lab.append(Int(bytes[r]))
            px += bytes[(r + 1)..<(r + 65)]
        }
        pixels = px
        labels = lab
        self.split = split
        // Mean and std of pixel / 16 over all 1,797 images: one constant for both splits and the
        // three replicated channels, as ImageNet's statistics are for its splits.
        var sum = 0.0, sumSq = 0.0
        for i in 0..<total { for p in bytes[(header.count + i * 65 + 1)..<(header.count + i * 65 + 65)] {
            let v = Double(p) / 16; sum += v; sumSq += v * v
        } }
        let n = Double(total * 64), mean = sum / n, std = (sumSq / n - mean * mean).squareRoot()
        normalization = ([Float](repeating: Float(mean), count: 3), [Float](repeating: Float(std), count: 3))
    }

    package var count: Int { labels.count }
    package var numClasses: Int { 10 }
    package var imageShape: [Int] { [3, 8, 8] }
    package let normalization: (mean: [Float], std: [Float])

    /// The digits are grey, ink bright on a dark ground; an image file is taken as grey too.
    package func inputTransform(size: Int) -> InputTransform {
        InputTransform(size: size, cropPct: 1, mean: normalization.mean, std: normalization.std, grayscale: true)
    }

    /// The grey image replicated to three channels, scaled to [0, 1].
    package func sample(_ index: Int) throws -> (image: [Float], label: Int) {
        let grey = pixels[(index * 64)..<((index + 1) * 64)].map { Float($0) / 16 }
        return (grey + grey + grey, labels[index])
    }
}
