import MambaIO
import MambaTensor

/// A fixed-size dataset's images resized bicubically to `size` px, so a model of another
/// resolution can train on it (the Famba-V recipe trains on CIFAR-100 upsampled to 224 px; the
/// bundled 8 px digits can feed a CIFAR-shaped 32 px model). Resizing per channel plane with
/// torch's bicubic kernel (A = −0.75, align_corners=False); normalisation commutes with it.
package struct ResizedDataset: ImageDataset {
    package let base: any ImageDataset
    package let size: Int

    package init(_ base: any ImageDataset, size: Int) {
        self.base = base
        self.size = size
    }

    package var count: Int { base.count }
    package var numClasses: Int { base.numClasses }
    package var imageShape: [Int] { [base.imageShape[0], size, size] }
    package var normalization: (mean: [Float], std: [Float]) { base.normalization }
    package var classNames: [String] { base.classNames }
    package func inputTransform(size: Int) -> InputTransform { base.inputTransform(size: size) }

    package func sample(_ index: Int) throws -> (image: [Float], label: Int) { resize(try base.sample(index)) }

    package func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int) {
        resize(try base.sample(index, rng: &rng))
    }

    func resize(_ s: (image: [Float], label: Int)) -> (image: [Float], label: Int) {
        let (C, H, W) = (base.imageShape[0], base.imageShape[1], base.imageShape[2])
        var out: [Float] = []
        out.reserveCapacity(C * size * size)
        for c in 0..<C {
            out += bicubicResize(Array(s.image[(c * H * W)..<((c + 1) * H * W)]), inH: H, inW: W, channels: 1, outH: size, outW: size)
        }
        return (out, s.label)
    }
}
