import MambaNN
import VisionMambaModels
import VisionMambaTraining

// The value types of the layers below that the public API takes and returns, named here so
// that `import VisionMamba` is the only import a program needs.

/// A Vim model's shape and settings under the official names (depth, embed_dim, the bimamba
/// flags, DyVM and Famba-V settings).
public typealias VimConfig = VisionMambaModels.VimConfig
/// A segmentation model: a backbone (Vim, DyVM or DeiT), its pyramid, UPerHead and FCN head.
public typealias SegmentationConfig = VisionMambaModels.SegmentationConfig
/// Where a Vim's class token sits in its sequence.
public typealias ClassTokenPosition = VisionMambaModels.ClassTokenPosition
/// The models under their official names and short aliases.
public typealias ModelZoo = VisionMambaModels.ModelZoo
/// Famba-V cross-layer token fusion: the fusing blocks and the tokens each removes.
public typealias TokenFusion = VisionMambaModels.TokenFusion
/// DyVM's token pruning and direction selection settings.
public typealias DyVMConfig = VisionMambaModels.DyVMConfig
/// A classification run's settings: model, dataset, the DeiT/Vim recipe.
public typealias TrainOptions = VisionMambaTraining.TrainOptions
/// A segmentation run's settings: model, dataset, mmseg's iteration-based recipe.
public typealias SegmentationTrainOptions = VisionMambaTraining.SegmentationTrainOptions
/// How layer-wise learning-rate decay assigns a segmentor's parameters to layers.
public typealias LayerDecay = MambaNN.LayerDecay
/// The datasets a run can train on.
public typealias DatasetKind = VisionMambaTraining.DatasetKind
/// What a training run reports as it goes.
public typealias TrainingEvent = VisionMambaTraining.TrainingEvent
/// A classification epoch's metrics.
public typealias EpochMetrics = VisionMambaTraining.EpochMetrics
/// A segmentation evaluation's metrics.
public typealias SegmentationEvalMetrics = VisionMambaTraining.SegmentationEvalMetrics
