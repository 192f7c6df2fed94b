import Foundation

/// Layer-wise learning-rate decay for a segmentor's parameters, as hustvl/Vim's
/// `seg/mmcv_custom/layer_decay_optimizer_constructor.py` (BEiT's) builds its AdamW groups:
/// parameter group `layer_<id>_<decay|no_decay>` trains at lr · rate^(L + 1 − id), L = num_layers,
/// with `weight_decay` unless the tensor is 1-D or a `.bias`.
public enum LayerDecay: String, CaseIterable, Codable, Sendable {
    /// Exactly what the official constructor does to Vim's names. It was written for ViT's
    /// `backbone.blocks.<i>`; Vim's blocks are `backbone.layers.<i>`, so:
    /// - every block, `norm_f` and both heads fall to the last id, L + 1, and train at the full lr;
    /// - only `backbone.pos_embed`, `backbone.cls_token` and `backbone.patch_embed.*` get id 0,
    ///   and train at rate^(L + 1) (0.124 for L = 24, rate 0.92);
    /// - its no-decay test compares the bare names `pos_embed` and `cls_token` with prefixed ones,
    ///   so the 3-D `backbone.pos_embed` is weight-decayed.
    case official
    /// What the constructor means to do: block i (`backbone.layers.<i>`) gets id i + 1, so the lr
    /// decays by `rate` per block from the heads down to the embeddings, and the position
    /// embedding and class token are not decayed.
    case perBlock = "per-block"

    /// The layer id of a parameter name (`backbone.…`, `decode_head.…`).
    public func layerID(_ name: String, numLayers: Int) -> Int {
        let last = numLayers + 1
        if ["backbone.cls_token", "backbone.mask_token", "backbone.pos_embed"].contains(name) { return 0 }
        if name.hasPrefix("backbone.patch_embed") { return 0 }
        let blockPrefix = self == .official ? "backbone.blocks." : "backbone.layers."
        if name.hasPrefix(blockPrefix), let i = Int(name.dropFirst(blockPrefix.count).prefix(while: { $0 != "." })) {
            return min(i + 1, last)
        }
        return last
    }

    /// Whether a parameter trains without weight decay.
    public func skipsWeightDecay(_ name: String, shape: [Int]) -> Bool {
        if shape.count == 1 || name.hasSuffix(".bias") { return true }
        // The official test names the unprefixed tensors, which never occur in a segmentor.
        let bare = self == .official ? name : String(name.split(separator: ".").last ?? "")
        return ["pos_embed", "cls_token"].contains(bare)
    }

    /// The AdamW groups, in order of first appearance as the official constructor makes them.
    package func groups(_ parameters: [(String, [Int])], numLayers: Int, rate: Double, weightDecay: Float) -> [AdamW.Group] {
        var groups: [AdamW.Group] = [], index: [String: Int] = [:]
        for (name, shape) in parameters {
            let id = layerID(name, numLayers: numLayers)
            let noDecay = skipsWeightDecay(name, shape: shape)
            let key = "layer_\(id)_\(noDecay ? "no_decay" : "decay")"
            if index[key] == nil {
                index[key] = groups.count
                let scale = Float(pow(rate, Double(numLayers + 1 - id)))
                groups.append(AdamW.Group(names: [], weightDecay: noDecay ? 0 : weightDecay, lrScale: scale))
            }
            groups[index[key]!].names.append(name)
        }
        return groups
    }
}
