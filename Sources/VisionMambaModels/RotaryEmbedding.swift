import Foundation
import MambaNN
import MambaTensor

/// EVA-02's `VisionRotaryEmbeddingFast` as Vim builds it (`dim` = embed_dim / 2): a 2-D rotary
/// position code over the patch grid, applied to every token as t·cos + rotate_half(t)·sin. The
/// first half of each row's channels turns with the token's grid row, the second half with its
/// column. The tables are buffers (`freqs_cos`, `freqs_sin` [G², D]) so that state dicts match.
package final class VisionRotaryEmbedding: Module {
    package let freqsCos: Tensor, freqsSin: Tensor

    /// `grid` is the fine-tuning grid side (ft_seq_len), `pretrainGrid` the pre-training one
    /// (pt_seq_len): positions are scaled to the pre-training range.
    package init(embedDim: Int, grid: Int, pretrainGrid: Int) throws {
        let (cos, sin) = Self.tables(embedDim: embedDim, grid: grid, pretrainGrid: pretrainGrid)
        freqsCos = try Tensor(shape: [grid * grid, embedDim], values: cos)
        freqsSin = try Tensor(shape: [grid * grid, embedDim], values: sin)
    }

    package var ownBuffers: [(String, Tensor)] { [("freqs_cos", freqsCos), ("freqs_sin", freqsSin)] }

    /// The official tables, in float32 as PyTorch builds them: frequencies 1 / 10000^(2k / dim)
    /// for k < dim / 2 with dim = D / 2, positions i / grid · pretrainGrid, each frequency repeated
    /// twice (the rotated pairs), the row's codes then the column's.
    static func tables(embedDim: Int, grid: Int, pretrainGrid: Int) -> (cos: [Float], sin: [Float]) {
        let dim = embedDim / 2
        let freqs: [Float] = (0..<(dim / 2)).map { k in 1 / powf(10_000, Float(2 * k) / Float(dim)) }
        let t: [Float] = (0..<grid).map { Float($0) / Float(grid) * Float(pretrainGrid) }
        var cos = [Float](), sin = [Float]()
        cos.reserveCapacity(grid * grid * embedDim)
        sin.reserveCapacity(grid * grid * embedDim)
        for row in 0..<grid {
            for column in 0..<grid {
                for position in [t[row], t[column]] {
                    for f in freqs {
                        let angle = position * f
                        cos += [cosf(angle), cosf(angle)]
                        sin += [sinf(angle), sinf(angle)]
                    }
                }
            }
        }
        return (cos, sin)
    }

    /// Tokens [B, G², D] with their positions rotated in.
    package func callAsFunction(_ x: Tensor, tape: Tape?) throws -> Tensor {
        try rotaryEmbedding(x, cos: freqsCos, sin: freqsSin, tape: tape)
    }
}
