import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on an input tensor or image; write logits and every block's output.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A safetensors file holding `input` [B, 3, H, W] (already normalised).")
    var input: String?

    @Option(help: "An image (JPEG/PNG) to run through the model's eval transform (a training checkpoint's own, else the official ImageNet one) instead of --input.")
    var image: String?

    @Option(help: "Where to write logits and block.<i>.out: .safetensors, or .pth.")
    var output: String

    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if (input == nil) == (image == nil) { throw ValidationError("give exactly one of --input or --image") }
    }

    func run() throws {
        _ = try CheckpointFile.format(forWriting: output)   // before any computing
        threadOptions.apply()
        if let name = modelOptions.model, ModelZoo.isDeiT(name) { return try runDeiT(name) }
        // The input is read first: its batch decides whether the pass fits in memory.
        var stored: StoredTensor?
        if let input {
            let file = try SafeTensors.read(input)
            guard let tensor = file["input"] else { throw FileError.missingTensor(path: input, name: "input") }
            stored = tensor
        }
        let description = try modelOptions.describe()
        let model = try modelOptions.makeModel(description, batch: max(1, stored?.shape.first ?? 1), keepsBlockOutputs: true)
        var out = TensorFile()
        let images: Tensor
        if let stored {
            images = try Tensor(shape: stored.shape, values: stored.floats())
        } else {
            images = try loadImageBatch([image!], transform: description.transform)
            out.append("input", StoredTensor(shape: images.shape, floats: images.array))
        }
        try model.checkInput(shape: images.shape)
        var blocks: [(Int, Tensor)] = []
        let trace = ForwardTrace()
        let logits = try model(images, trace: trace) { i, r in blocks.append((i, r)) }
        out.append("logits", StoredTensor(shape: logits.shape, floats: logits.array))
        for (i, r) in blocks { out.append("block.\(i).out", StoredTensor(shape: r.shape, floats: r.array)) }
        out.append(trace)
        try CheckpointFile.write(out, to: output)
    }
}

/// Decodes images and applies a model's input transform: [N, 3, S, S].
func loadImageBatch(_ paths: [String], transform: InputTransform) throws -> Tensor {
    var pixels: [Float] = []
    for path in paths { pixels += transform.apply(try ImageDecoder.decode(path)) }
    return try Tensor(shape: [paths.count, 3, transform.size, transform.size], values: pixels)
}

extension TensorFile {
    /// Every tensor a forward pass traced: floats as float32, indices and decisions as int64.
    mutating func append(_ trace: ForwardTrace) {
        for entry in trace.entries {
            switch entry.values {
            case .floats(let v): append(entry.name, StoredTensor(shape: entry.shape, floats: v))
            case .ints(let v): append(entry.name, StoredTensor(shape: entry.shape, int64s: v.map(Int64.init)))
            }
        }
    }
}
