import ArgumentParser
import MambaNN
import VisionMambaModels
import VisionMambaTraining

extension LayerDecay: ExpressibleByArgument {}

/// The flags of mmseg's iteration-based recipe, for `train` with a segmentation model.
struct SegmentationOptions: ParsableArguments {
    @Option(help: "Segmentation models: optimizer steps in all (default 60000, the official schedule); with --resume, a larger number extends the run.")
    var iterations: Int?
    @Option(name: .customLong("eval-interval"), help: "Segmentation models: evaluate (mIoU) and checkpoint every N iterations (default 1000).")
    var evalInterval: Int?
    @Option(name: .customLong("eval-images"), help: "Segmentation models: evaluate on the first N validation images only (default: all).")
    var evalImages: Int?
    @Option(name: .customLong("layer-decay"), help: "Segmentation models: official (the official constructor on Vim's names, quirks kept: blocks at the full lr) or per-block (lr × rate per block from the heads down).")
    var layerDecay: LayerDecay?
    @Option(name: .customLong("layer-decay-rate"), help: "Segmentation models: the layer-wise lr decay rate (default 0.92).")
    var layerDecayRate: Double?
    @Option(name: .customLong("warmup-iters"), help: "Segmentation models: linear warm-up iterations of the poly schedule (default 1500).")
    var warmupIters: Int?
    @Option(name: .customLong("slide-stride"), help: "Segmentation models: sliding-window stride of the evaluation (default 341 for a 512 crop, 2/3 of the crop); 0 evaluates whole images.")
    var slideStride: Int?

    var isSet: Bool {
        iterations != nil || evalInterval != nil || evalImages != nil || layerDecay != nil || layerDecayRate != nil
            || warmupIters != nil || slideStride != nil
    }

    func validate() throws {
        for (flag, value) in [("--iterations", iterations), ("--eval-interval", evalInterval), ("--eval-images", evalImages)] {
            if let value, value < 1 { throw ValidationError("\(flag) must be at least 1") }
        }
        if let warmupIters, warmupIters < 0 { throw ValidationError("--warmup-iters must not be negative") }
        if let slideStride, slideStride < 0 { throw ValidationError("--slide-stride must not be negative") }
        if let layerDecayRate, !(layerDecayRate > 0 && layerDecayRate <= 1) { throw ValidationError("--layer-decay-rate must be in (0, 1]") }
    }

    /// A new segmentation run's options from these flags and the shared recipe flags.
    func makeOptions(recipe: RecipeOptions, finetune: String?) throws -> SegmentationTrainOptions {
        var config = try ModelZoo.segmentationEntry(named: recipe.model ?? ModelZoo.digitScenes.name).config
        let dataset = recipe.dataSet ?? (recipe.dataPath == nil ? .digitScenes : .ade20k)
        if dataset == .segfolder {
            guard let classes = recipe.numClasses else { throw ValidationError("--data-set segfolder needs --num-classes") }
            config.numClasses = classes
        } else {
            let classes = try datasetClassCount(dataset, path: recipe.dataPath)
            if let n = recipe.numClasses, n != classes { throw ValidationError("--num-classes \(n): \(dataset.rawValue) has \(classes) classes") }
            config.numClasses = classes
        }
        config.backbone.numClasses = config.numClasses
        if let dropPath = recipe.dropPath { config.dropPathRate = dropPath }
        var o = SegmentationTrainOptions(model: config, dataset: dataset, dataPath: recipe.dataPath)
        if let v = iterations { o.iterations = v }
        if let v = recipe.batchSize { o.batchSize = v }
        if let v = recipe.lr { o.lr = v }
        if let v = recipe.weightDecay { o.weightDecay = v }
        if let v = recipe.seed { o.seed = v }
        if let v = evalInterval { o.evalInterval = v }
        if let v = evalImages { o.evalImages = v }
        if let v = layerDecay { o.layerDecay = v }
        if let v = layerDecayRate { o.layerDecayRate = v }
        if let v = warmupIters { o.warmupIterations = v }
        if let v = slideStride { o.slideStride = v == 0 ? nil : v }
        else if dataset == .digitScenes { o.slideStride = nil }     // the scenes are the crop's size
        else { o.slideStride = config.backbone.imgSize * 2 / 3 }
        o.finetune = finetune
        return o
    }
}
