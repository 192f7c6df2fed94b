import MambaNN
import MambaTensor

/// mmseg 0.29's `FCNHead` as the Vim configs use it for the auxiliary loss: `num_convs` 3×3
/// ConvModules (`convs.<i>`), no input concatenation, dropout and the 1×1 classifier.
package final class FCNHead: Module {
    package let convs: [ConvModule]
    package let convSeg: Conv2d
    package let dropoutRatio: Double

    package init(inChannels: Int, channels: Int, numClasses: Int, dropoutRatio: Double, numConvs: Int = 1) throws {
        convs = try (0..<numConvs).map { try ConvModule(inChannels: $0 == 0 ? inChannels : channels, outChannels: channels, kernel: 3, padding: 1) }
        convSeg = try Conv2d(inChannels: channels, outChannels: numClasses, kernel: 1)
        self.dropoutRatio = dropoutRatio
    }

    package var children: [(String, Module)] {
        [("conv_seg", convSeg as Module)] + convs.enumerated().map { ("convs.\($0.offset)", $0.element as Module) }
    }

    package func resetParameters(using rng: inout SeededGenerator) {
        for m in convs { m.resetParameters(using: &rng) }
        resetClassifier(convSeg, using: &rng)
    }

    /// Class logits [B, K, H, W] for a feature [B, C, H, W].
    package func callAsFunction(_ x: Tensor, training: Bool, dropoutSeeds: [UInt64]? = nil, tape: Tape?) throws -> Tensor {
        var y = x
        for conv in convs { y = try conv(y, training: training, tape: tape) }
        return try classifyPixels(y, convSeg: convSeg, dropoutRatio: dropoutRatio, dropoutSeeds: dropoutSeeds, tape: tape)
    }
}
