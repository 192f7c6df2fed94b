import MambaTensor

extension Segmentor {
    /// mmseg's `slide_inference` for one image of any size: crops of the model's size every
    /// `stride` px (the last crop of a row or column flush with the edge), each crop's logits
    /// (at the crop's resolution) summed into place and divided by how many crops cover each
    /// pixel. Returns logits [1, K, H, W] for image [1, C, H, W].
    ///
    /// An image smaller than the crop along a side is padded with zeros (the normalised mean) to
    /// the crop there and the padding's logits dropped: the official backbone's position
    /// embedding only fits the full crop, so mmseg 0.29 cannot run such a crop at all.
    package func slidingLogits(_ image: Tensor, stride: Int) throws -> Tensor {
        let crop = config.backbone.imgSize, K = config.numClasses
        let C = config.backbone.inChannels
        guard image.rank == 4, image.shape[0] == 1, image.shape[1] == C, image.shape[2] >= 1, image.shape[3] >= 1 else {
            throw ConfigError.inputShapeMismatch(model: config.name, channels: C, size: crop, found: image.shape)
        }
        guard (1...crop).contains(stride) else {
            throw ConfigError.invalidValue(model: config.name, field: "stride", value: "\(stride)", allowed: "1...\(crop) (the crop size)")
        }
        let (H, W) = (image.shape[2], image.shape[3])
        let pixels = image.array
        var sum = [Float](repeating: 0, count: K * H * W), count = [Float](repeating: 0, count: H * W)
        func starts(_ size: Int) -> [Int] {
            let grids = max(size - crop + stride - 1, 0) / stride + 1
            return (0..<grids).map { max(min($0 * stride + crop, size) - crop, 0) }
        }
        for y0 in starts(H) {
            for x0 in starts(W) {
                let h = min(crop, H - y0), w = min(crop, W - x0)
                var window = [Float](repeating: 0, count: C * crop * crop)
                for c in 0..<C {
                    for y in 0..<h {
                        let src = (c * H + y0 + y) * W + x0, dst = (c * crop + y) * crop
                        window.replaceSubrange(dst..<(dst + w), with: pixels[src..<(src + w)])
                    }
                }
                let logits = try self.logits(Tensor(shape: [1, C, crop, crop], values: window)).array
                for k in 0..<K {
                    for y in 0..<h {
                        let src = (k * crop + y) * crop, dst = (k * H + y0 + y) * W + x0
                        for x in 0..<w { sum[dst + x] += logits[src + x] }
                    }
                }
                for y in 0..<h { for x in 0..<w { count[(y0 + y) * W + x0 + x] += 1 } }
            }
        }
        for k in 0..<K { for i in 0..<(H * W) { sum[k * H * W + i] /= count[i] } }
        return try Tensor(shape: [1, K, H, W], values: sum)
    }

    /// Per-pixel classes of an image as mmseg's whole-image test gives them at the original size:
    /// logits by sliding window (`stride`) or, with nil, of the whole image (which must then be
    /// the model's size), resized bilinearly to height × width, then the best class.
    package func predictLabels(_ image: Tensor, stride: Int?, height: Int, width: Int) throws -> [Int] {
        let logits = try stride.map { try slidingLogits(image, stride: $0) } ?? self.logits(image)
        let resized = try resizeBilinear(logits, height: height, width: width, tape: nil)
        return try argmaxChannels(resized)
    }
}
