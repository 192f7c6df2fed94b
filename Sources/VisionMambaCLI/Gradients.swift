import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMambaModels
import VisionMambaTraining

struct Gradients: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean cross-entropy of a model on `input` against `labels`, and its gradient for every parameter.",
        discussion: """
        For a DyVM model this is the training path: the Gumbel noise comes from `noise.token.<s>` and         `noise.block.<i>` in the input file (drawn from --seed when absent), soft targets from `targets`         (else one-hot `labels`); it writes the five weighted loss parts, `loss`, the decisions, orders,         masks and gates, the student's and the teacher's outputs, and `grad.<name>`.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A safetensors file holding `input` [B, 3, H, W] and `labels` [B] (int64).")
    var input: String

    @Option(help: "Where to write `loss` and `grad.<parameter name>`: .safetensors, or .pth.")
    var output: String

    @Option(help: "DyVM: seed of the noise when the input file holds none.") var seed: UInt64 = 0

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        _ = try CheckpointFile.format(forWriting: output)   // before any computing
        threadOptions.apply()
        let file = try SafeTensors.read(input)
        guard let stored = file["input"] else { throw FileError.missingTensor(path: input, name: "input") }
        guard let storedLabels = file["labels"] else { throw FileError.missingTensor(path: input, name: "labels") }
        // DyVM's case also writes every block's output.
        let model = try modelOptions.makeModel(try modelOptions.describe(), batch: max(1, stored.shape.first ?? 1), training: true,
                                               keepsBlockOutputs: true)
        let images = try Tensor(shape: stored.shape, values: stored.floats())
        images.requiresGrad = false
        try model.checkInput(shape: images.shape)
        if model.config.dyvm != nil { return try runDyVM(model, images: images, file: file) }
        let labels = storedLabels.int64s().map(Int.init)
        guard labels.count == images.shape[0], labels.allSatisfy({ $0 >= 0 && $0 < model.config.numClasses }) else {
            throw FileError.labelsOutOfRange(path: input, tensor: "labels", count: images.shape[0], classes: model.config.numClasses)
        }
        let tape = Tape()
        let loss = try crossEntropy(model(images, tape: tape), labels: labels, tape: tape)
        try tape.backward(from: loss)
        var out = TensorFile()
        out.append("loss", StoredTensor(shape: [1], floats: loss.array))
        for (name, p) in model.namedParameters() {
            out.append("grad.\(name)", StoredTensor(shape: p.shape, floats: (p.grad ?? Tensor(zeroed: p.shape)).array))
        }
        try CheckpointFile.write(out, to: output)
    }

    /// The DyVM training step with the file's noise and targets.
    func runDyVM(_ model: VimModel, images: Tensor, file: TensorFile) throws {
        let c = model.config, dyvm = c.dyvm!, B = images.shape[0], M = c.numPatches
        var noise = try DyVMNoise.draw(sampleSeeds: (0..<B).map { seed &+ UInt64($0) }, numPatches: M,
                                   stages: dyvm.pruningLoc.count, depth: c.depth)
        for s in 0..<dyvm.pruningLoc.count {
            if let t = file["noise.token.\(s)"] {
                guard t.elementCount == B * M * 2 else { throw FileError.shapeMismatch(path: input, tensor: "noise.token.\(s)", expected: [B, M, 2], found: t.shape) }
                noise.token[s] = t.floats()
            }
        }
        for i in 0..<c.depth {
            if let t = file["noise.block.\(i)"] {
                guard t.elementCount == B * 2 else { throw FileError.shapeMismatch(path: input, tensor: "noise.block.\(i)", expected: [B, 2], found: t.shape) }
                noise.block[i] = t.floats()
            }
        }
        let targets: [Float]
        if let t = file["targets"] {
            guard t.shape == [B, c.numClasses] else { throw FileError.shapeMismatch(path: input, tensor: "targets", expected: [B, c.numClasses], found: t.shape) }
            targets = t.floats()
        } else if let l = file["labels"] {
            let labels = l.int64s().map(Int.init)
            guard labels.count == B, labels.allSatisfy({ $0 >= 0 && $0 < c.numClasses }) else {
                throw FileError.labelsOutOfRange(path: input, tensor: "labels", count: B, classes: c.numClasses)
            }
            targets = try smoothedTargets(labels, classes: c.numClasses, smoothing: 0)
        } else {
            throw FileError.missingTensor(path: input, name: "targets")
        }
        let teacher = try model.denseCopy()
        let trace = ForwardTrace(), tape = Tape()
        var blocks: [(Int, Tensor)] = []
        let (loss, parts) = try model.dyvmTrainingStep(images, targets: targets, teacher: teacher, noise: noise, tape: tape,
                                                   trace: trace) { i, r in blocks.append((i, r)) }
        try tape.backward(from: loss)
        var out = TensorFile()
        out.append("loss", StoredTensor(shape: [1], floats: loss.array))
        for (name, v) in parts.named { out.append(name, StoredTensor(shape: [1], floats: [Float(v)])) }
        for (i, r) in blocks { out.append("block.\(i).out", StoredTensor(shape: r.shape, floats: r.array)) }
        out.append(trace)
        for (name, p) in model.namedParameters() {
            out.append("grad.\(name)", StoredTensor(shape: p.shape, floats: (p.grad ?? Tensor(zeroed: p.shape)).array))
        }
        try CheckpointFile.write(out, to: output)
    }
}
