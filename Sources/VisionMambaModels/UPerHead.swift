import MambaNN
import MambaTensor

/// mmseg 0.29's `UPerHead` (UPerNet's decoder) on four feature levels: a pyramid pooling module
/// on the coarsest (`psp_modules`, `bottleneck`), 1×1 laterals on the others, a top-down path of
/// bilinear upsampling and additions, a 3×3 conv per level (`fpn_convs`), every level upsampled
/// to the finest and concatenated, a 3×3 `fpn_bottleneck`, dropout and the 1×1 classifier.
package final class UPerHead: Module {
    package let psp: [ConvModule]            // psp_modules.<i>.1 after AdaptiveAvgPool2d(scale_i)
    package let poolScales: [Int]
    package let bottleneck: ConvModule
    package let lateralConvs: [ConvModule], fpnConvs: [ConvModule]
    package let fpnBottleneck: ConvModule
    package let convSeg: Conv2d
    package let dropoutRatio: Double

    package init(inChannels: Int, channels: Int, numClasses: Int, poolScales: [Int], dropoutRatio: Double, levels: Int = 4) throws {
        self.poolScales = poolScales
        psp = try poolScales.map { _ in try ConvModule(inChannels: inChannels, outChannels: channels, kernel: 1) }
        bottleneck = try ConvModule(inChannels: inChannels + poolScales.count * channels, outChannels: channels, kernel: 3, padding: 1)
        lateralConvs = try (1..<levels).map { _ in try ConvModule(inChannels: inChannels, outChannels: channels, kernel: 1) }
        fpnConvs = try (1..<levels).map { _ in try ConvModule(inChannels: channels, outChannels: channels, kernel: 3, padding: 1) }
        fpnBottleneck = try ConvModule(inChannels: levels * channels, outChannels: channels, kernel: 3, padding: 1)
        convSeg = try Conv2d(inChannels: channels, outChannels: numClasses, kernel: 1)
        self.dropoutRatio = dropoutRatio
    }

    // mmseg registers conv_seg (in BaseDecodeHead) before the UPerHead modules.
    package var children: [(String, Module)] {
        [("conv_seg", convSeg as Module)]
            + psp.enumerated().map { ("psp_modules.\($0.offset).1", $0.element as Module) }
            + [("bottleneck", bottleneck)]
            + lateralConvs.enumerated().map { ("lateral_convs.\($0.offset)", $0.element as Module) }
            + fpnConvs.enumerated().map { ("fpn_convs.\($0.offset)", $0.element as Module) }
            + [("fpn_bottleneck", fpnBottleneck)]
    }

    package func resetParameters(using rng: inout SeededGenerator) {
        for m in psp + [bottleneck] + lateralConvs + fpnConvs + [fpnBottleneck] { m.resetParameters(using: &rng) }
        resetClassifier(convSeg, using: &rng)
    }

    /// Class logits at the finest level's resolution [B, K, H₀, W₀] for features [B, C, H_i, W_i].
    /// `dropoutSeeds` (training, one per image) draw the Dropout2d before the classifier.
    package func callAsFunction(_ features: [Tensor], training: Bool, dropoutSeeds: [UInt64]? = nil, tape: Tape?) throws -> Tensor {
        guard features.count == lateralConvs.count + 1 else {
            throw TensorError.valueCountMismatch(tensor: "features", expected: lateralConvs.count + 1, found: features.count)
        }
        func size(_ t: Tensor) -> (Int, Int) { (t.shape[2], t.shape[3]) }
        // psp_forward: the coarsest level with its pooled-and-upsampled copies, concatenated.
        let top = features[features.count - 1]
        var pooled = [top]
        for (scale, conv) in zip(poolScales, psp) {
            let p = try conv(adaptiveAveragePool2d(top, height: scale, width: scale, tape: tape), training: training, tape: tape)
            pooled.append(try resizeBilinear(p, height: size(top).0, width: size(top).1, tape: tape))
        }
        var laterals = try zip(features, lateralConvs).map { try $1($0, training: training, tape: tape) }
        laterals.append(try bottleneck(concatenateChannels(pooled, tape: tape), training: training, tape: tape))
        // Top-down: each level plus the coarser one upsampled to it.
        for i in stride(from: laterals.count - 1, to: 0, by: -1) {
            let (h, w) = size(laterals[i - 1])
            laterals[i - 1] = try add(laterals[i - 1], resizeBilinear(laterals[i], height: h, width: w, tape: tape), tape: tape)
        }
        var outs = try zip(laterals, fpnConvs).map { try $1($0, training: training, tape: tape) }
        outs.append(laterals[laterals.count - 1])
        let (h, w) = size(outs[0])
        for i in 1..<outs.count { outs[i] = try resizeBilinear(outs[i], height: h, width: w, tape: tape) }
        let fused = try fpnBottleneck(concatenateChannels(outs, tape: tape), training: training, tape: tape)
        return try classifyPixels(fused, convSeg: convSeg, dropoutRatio: dropoutRatio, dropoutSeeds: dropoutSeeds, tape: tape)
    }
}

/// mmseg's `BaseDecodeHead.cls_seg`: Dropout2d (training only) and the 1×1 classifier.
func classifyPixels(_ x: Tensor, convSeg: Conv2d, dropoutRatio: Double, dropoutSeeds: [UInt64]?, tape: Tape?) throws -> Tensor {
    var x = x
    if let dropoutSeeds, dropoutRatio > 0 {
        x = try dropout2d(x, probability: dropoutRatio, sampleSeeds: dropoutSeeds, tape: tape)
    }
    return try convSeg(x, tape: tape)
}

/// mmseg's init of `conv_seg`: N(0, 0.01²) weights, zero bias.
func resetClassifier(_ convSeg: Conv2d, using rng: inout SeededGenerator) {
    convSeg.weight.fillNormal(std: 0.01, using: &rng)
    convSeg.bias?.fill(0)
}
