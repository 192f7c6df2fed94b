import ArgumentParser
import Foundation
import VisionMambaModels

struct Flops: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Analytic forward FLOPs per image and the token schedule of a model.")

    @Option(help: "Model name or alias, or a fixture-format JSON file.") var model: String = "vim-tiny"
    @Option(name: .customLong("img-size"), help: "Input image size in pixels (default: the model's).") var imgSize: Int?
    @Option(name: .customLong("patch-size"), help: "Override patch size and stride.") var patchSize: Int?
    @Option(name: .customLong("num-classes"), help: "Number of classes of the head (default: the model's).") var numClasses: Int?
    @OptionGroup var fusionOptions: FusionOptions
    @OptionGroup var dyvmOptions: DyVMOptions
    @Option(name: .customLong("gate-rate"), help: "DyVM: fraction of scan directions the gates leave on (the official counter's block_keep_ratio; default 1).")
    var gateRate: Double = 1
    @Flag(help: "One JSON line.") var json = false

    func validate() throws {
        try validateSizes(imgSize: imgSize, patchSize: patchSize)
        if let numClasses, numClasses < 1 { throw ValidationError("--num-classes must be at least 1") }
        if !(gateRate >= 0 && gateRate <= 1) { throw ValidationError("--gate-rate must be in [0, 1]") }
    }

    func run() throws {
        if ModelZoo.isDeiT(model) { return try runDeiT() }
        if ModelZoo.isSegmentation(model) { return try runSegmentation() }
        var config = try ModelZoo.resolve(model)
        if let patchSize { config.patchSize = patchSize; config.stride = patchSize }
        if let imgSize { config.imgSize = imgSize }
        if let numClasses { config.numClasses = numClasses }
        if let fusion = try fusionOptions.make(depth: config.depth) { config.fusion = fusion }
        config = try dyvmOptions.apply(to: config)
        try config.validate()
        let f = config.forwardFLOPs(directionRate: gateRate), schedule = config.tokenSchedule
        let official = config.officialMACs(blockKeepRatio: gateRate)
        if json {
            print("{\"model\":\"\(config.name)\",\"img_size\":\(config.imgSize),\"gflop\":\(String(format: "%.4f", f.total / 1e9)),\"matmul_gflop\":\(String(format: "%.4f", f.matmul / 1e9)),\"official_macs\":\(String(format: "%.0f", official)),\"tokens\":[\(schedule.map(String.init).joined(separator: ","))],\"token_layers\":\(config.tokenLayers),\"fused_blocks\":[\((config.fusion?.blocks ?? []).map(String.init).joined(separator: ","))]}")
        } else {
            print("\(config.name) at \(config.imgSize) px: \(String(format: "%.3f", f.total / 1e9)) GFLOP per image as computed here, both scan directions (matrix products \(String(format: "%.3f", f.matmul / 1e9)), scan \(String(format: "%.3f", f.scan / 1e9)), conv \(String(format: "%.3f", f.conv / 1e9)))")
            print("official counter (calc_flops.py: multiply-accumulates, one scan direction): \(String(format: "%.4f", official / 1e9))G (\(String(format: "%.0f", official)))")
            print("tokens per block: \(schedule.map(String.init).joined(separator: " ")); Σ token·layers \(config.tokenLayers) of \(config.tokens * config.depth)")
        }
    }

    /// A segmentor's crop: backbone, pyramid and heads.
    func runSegmentation() throws {
        if fusionOptions.isSet || dyvmOptions.isSet || patchSize != nil || numClasses != nil {
            throw ValidationError("flops of a segmentation model takes --img-size, --gate-rate and --json")
        }
        var config = try ModelZoo.segmentationEntry(named: model).config
        if let imgSize { config.cropSize = imgSize }
        try config.validate()
        let f = config.forwardFLOPs(directionRate: gateRate), schedule = config.tokenSchedule
        func g(_ x: Double) -> String { String(format: "%.3f", x / 1e9) }
        if json {
            print("{\"model\":\"\(config.name)\",\"img_size\":\(config.backbone.imgSize),\"gflop\":\(g(f.total)),\"backbone_gflop\":\(g(f.backbone.total)),\"pyramid_gflop\":\(g(f.pyramid)),\"decode_head_gflop\":\(g(f.decodeHead)),\"auxiliary_head_gflop\":\(g(f.auxiliaryHead)),\"tokens\":[\(schedule.map(String.init).joined(separator: ","))]}")
        } else {
            print("\(config.name) at \(config.backbone.imgSize)×\(config.backbone.imgSize) px: \(g(f.total)) GFLOP per crop at inference")
            print("  backbone \(g(f.backbone.total)) (matrix products \(g(f.backbone.matmul)), scan \(g(f.backbone.scan)), conv \(g(f.backbone.conv))), pyramid \(g(f.pyramid)), UPerHead \(g(f.decodeHead)); the FCN head adds \(g(f.auxiliaryHead)) in training")
            print("tokens per block: \(schedule.map(String.init).joined(separator: " "))")
        }
    }
}
