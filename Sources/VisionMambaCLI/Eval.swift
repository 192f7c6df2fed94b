import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMambaModels
import VisionMambaData
import VisionMambaTraining

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Top-1, top-5 and loss of a model on a dataset's validation split.")

    @Option(help: "Weights: a training checkpoint of this package, a .pth or a .safetensors file.") var weights: String
    @Option(help: "Model name or alias (default: the one stored in a training checkpoint).") var model: String?
    @Option(help: "A fixture-format JSON model description (instead of --model).") var config: String?
    @Option(name: .customLong("data-set"), help: "Dataset: digits (bundled), cifar10, cifar100, imagefolder (default: the one a training checkpoint was trained on, else recognised from --data, else digits).")
    var dataSet: DatasetKind?
    @Option(name: [.customLong("data"), .customLong("data-path")], help: "Folder of the dataset (CIFAR batches, or an ImageFolder with val/<class>/).")
    var data: String?
    @Flag(name: .customLong("skip-bad-images"), help: "Leave out image files that cannot be read (counted) instead of stopping.")
    var skipBadImages = false
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.") var batchSize: Int = 64
    @Flag(help: "Evaluate the EMA weights of a training checkpoint.") var ema = false
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if model != nil && config != nil { throw ValidationError("give --model or --config, not both") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let dataSet, dataSet != .digits, dataSet != .digitScenes, data == nil { throw ValidationError("--data-set \(dataSet.rawValue) needs --data") }
    }

    func run() throws {
        threadOptions.apply()
        if let stored = try SegmentationTrainer.storedState(weights) { return try runSegmentation(stored) }
        let given: VimConfig? = try config.map(VimConfig.load(json:)) ?? model.map(ModelZoo.resolve)
        let description: ModelDescription
        do {
            description = try ModelDescription(weights: weights, config: given)
        } catch TrainingError.notATrainingCheckpoint {
            throw ValidationError("give --model or --config: \(weights) holds weights only, not a training checkpoint that names its model")
        }
        let cfg = description.config
        // A training checkpoint's own dataset unless told otherwise; else digits, or what --data holds.
        let stored = dataSet == nil && data == nil ? description.dataset : nil
        let dataSet = self.dataSet ?? stored ?? (data == nil ? .digits : .auto)
        let data = self.data ?? (stored != nil ? description.dataPath : nil)
        let dataset = try makeDataset(dataSet, path: data, train: false, imageSize: cfg.imgSize, skipBadImages: skipBadImages)
        if let folder = dataset as? ImageFolderDataset, !folder.skipped.isEmpty {
            print(ProgressPrinter.skippedLine(path: folder.folder, count: folder.skipped.count))
        }
        let name = data ?? dataSet.rawValue
        let imageShape = [cfg.inChannels, cfg.imgSize, cfg.imgSize]
        guard dataset.imageShape == imageShape else {
            throw TrainingError.imageShapeMismatch(dataset: name, found: dataset.imageShape, expected: imageShape)
        }
        // A batch is never larger than the dataset.
        try cfg.checkFitsInMemory(batch: max(1, min(batchSize, dataset.count)), training: false)
        let net = try VimModel(config: cfg)
        try net.load(stateDict: try VimModel.modelTensors(weights, ema: ema), source: weights)
        let result = try evaluate(net, loader: DataLoader(dataset: dataset, batchSize: batchSize, shuffle: false, dropLast: false),
                                  datasetName: name)
        print(String(format: "%@ on %@ (%d images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f",
                     cfg.name, name, result.count, result.top1, result.top5, result.loss)
              + (result.directionRate.map { String(format: "  directions on %.1f%%", 100 * $0) } ?? ""))
    }

    /// A segmentation checkpoint: mIoU, aAcc and mAcc on its dataset's validation split (or the
    /// one given), as mmseg evaluates, with the per-class table.
    func runSegmentation(_ stored: SegmentationTrainingState) throws {
        var options = stored.options
        options.model.dropPathRate = 0
        if let dataSet { options.dataset = dataSet }
        if let data { options.dataPath = data }
        let model = try Segmentor(config: options.model)
        try model.load(stateDict: try VimModel.modelTensors(weights), source: weights)
        let dataset = try makeSegmentationDataset(options.dataset, path: options.dataPath, train: false, numClasses: options.model.numClasses,
                                                  sceneSize: options.model.backbone.imgSize)
        let name = options.dataPath ?? options.dataset.rawValue
        let m = try evaluateSegmentation(model, on: dataset, name: name, transform: options.transform, stride: options.slideStride)
        print(String(format: "%@ on %@ (%d images): mIoU %.2f%%  aAcc %.2f%%  mAcc %.2f%%", options.model.name, name, dataset.count,
                     100 * m.meanIoU, 100 * m.allAccuracy, 100 * m.meanAccuracy))
        print("class".padding(toLength: 24, withPad: " ", startingAt: 0) + "IoU".leftPadded(to: 8) + "Acc".leftPadded(to: 8))
        for (i, name) in dataset.classNames.enumerated() {
            func percent(_ v: Double) -> String { v.isNaN ? "-" : String(format: "%.2f", 100 * v) }
            print(name.padding(toLength: 24, withPad: " ", startingAt: 0) + percent(m.iou[i]).leftPadded(to: 8) + percent(m.accuracy[i]).leftPadded(to: 8))
        }
    }
}
