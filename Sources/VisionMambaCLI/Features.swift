import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMambaModels
import VisionMambaData
import VisionMambaTraining

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the features a model computes for images (its class-token feature after norm_f, or every token) to a safetensors file.",
        discussion: """
        The file holds `features` [N, D] (the head's input), or with --all-tokens `tokens` [N, T, D] \
        (every token after norm_f) and `cls_index` [N]; its metadata `images` lists the N images in order \
        (a JSON array). Images go through the model's own eval transform. For a segmentation model the file holds \
        the four pyramid levels `level.0` … `level.3` [N, D, side, side] (strides 4 to 32) of each image resized to \
        the model's crop.
        """)

    @Argument(help: "Images, or folders searched at any depth for .jpg, .jpeg and .png files.") var images: [String]
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Where to write the features (.safetensors).") var output: String
    @Flag(name: .customLong("all-tokens"), help: "Every token after norm_f instead of the class-token feature.") var allTokens = false
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.") var batchSize: Int = 16
    @Flag(help: "Let --output replace an existing file.") var overwrite = false
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image or folder") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        guard (output as NSString).pathExtension.lowercased() == "safetensors" else {
            throw FileError.unsupportedExtension(path: output, supported: [".safetensors"])
        }
        if !overwrite, FileManager.default.fileExists(atPath: output) {
            throw ValidationError("\(output) exists; choose another --output or pass --overwrite")
        }
        threadOptions.apply()
        let files = try ImageFiles.expand(images)
        let stored = try SegmentationTrainer.storedState(modelOptions.weights)
        if stored != nil || modelOptions.model.map(ModelZoo.isSegmentation) == true { return try writePyramid(files, stored: stored) }
        let description = try modelOptions.describe()
        let batch = min(batchSize, files.count)
        let model = try modelOptions.makeModel(description, batch: batch)
        var values: [Float] = [], shape: [Int] = [], cls: [Int64] = []
        for start in stride(from: 0, to: files.count, by: batch) {
            let pixels = try loadImageBatch(Array(files[start..<min(start + batch, files.count)]), transform: description.transform)
            let features: Tensor
            if allTokens {
                let pass = try model.forwardTokens(pixels)
                features = pass.tokens
                cls += pass.cls.map(Int64.init)
            } else {
                features = try model.forwardFeatures(pixels)
            }
            values += features.array
            shape = features.shape
        }
        shape[0] = files.count
        var out = TensorFile()
        out.append(allTokens ? "tokens" : "features", StoredTensor(shape: shape, floats: values))
        if allTokens { out.append("cls_index", StoredTensor(shape: [files.count], int64s: cls)) }
        let names = try JSONSerialization.data(withJSONObject: files)
        out.metadata["images"] = String(decoding: names, as: UTF8.self)
        out.metadata["model"] = description.config.name
        try SafeTensors.write(out, to: output)
        print("\(files.count) image\(files.count == 1 ? "" : "s") → \(output): \(allTokens ? "tokens" : "features") \(shape)")
    }

    /// A segmentation model's four pyramid levels per image, each image resized to the crop.
    func writePyramid(_ files: [String], stored: SegmentationTrainingState?) throws {
        if allTokens { throw ValidationError("--all-tokens is for classification models; a segmentation model writes its pyramid") }
        var config = try stored?.options.model ?? ModelZoo.segmentationEntry(named: modelOptions.model!).config
        config.dropPathRate = 0
        let model = try Segmentor(config: config)
        try model.load(stateDict: try VimModel.modelTensors(modelOptions.weights), strict: !modelOptions.nonStrict, source: modelOptions.weights)
        let transform = stored?.options.transform ?? SegmentationTransform.ade20k(crop: config.backbone.imgSize)
        var levels = [[Float]](repeating: [], count: 4), shapes = [[Int]](repeating: [], count: 4)
        for path in files {
            let features = try pyramidFeatures(try ImageDecoder.decode(path), model: model, transform: transform)
            for (i, f) in features.enumerated() { levels[i] += f.array; shapes[i] = [files.count] + f.shape.dropFirst() }
        }
        var out = TensorFile()
        for i in 0..<4 { out.append("level.\(i)", StoredTensor(shape: shapes[i], floats: levels[i])) }
        out.metadata["images"] = String(decoding: try JSONSerialization.data(withJSONObject: files), as: UTF8.self)
        out.metadata["model"] = config.name
        try SafeTensors.write(out, to: output)
        print("\(files.count) image\(files.count == 1 ? "" : "s") → \(output): " + (0..<4).map { "level.\($0) \(shapes[$0])" }.joined(separator: ", "))
    }
}
