import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMamba
import VisionMambaData
import VisionMambaTraining

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the features a model computes for images (its class-token feature after norm_f, or every token) to a safetensors file.",
        discussion: """
        The file holds `features` [N, D] (the head's input), or with --all-tokens `tokens` [N, T, D] \
        (every token after norm_f) and `cls_index` [N]; its metadata `images` lists the N images in order \
        (a JSON array). Images go through the model's own eval transform.
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
}
