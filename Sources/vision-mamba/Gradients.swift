import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMamba

struct Gradients: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean cross-entropy of a model on `input` against `labels`, and its gradient for every parameter.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A safetensors file holding `input` [B, 3, H, W] and `labels` [B] (int64).")
    var input: String

    @Option(help: "Where to write `loss` and `grad.<parameter name>` (safetensors).")
    var output: String

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        threadOptions.apply()
        let model = try modelOptions.makeModel()
        let file = try SafeTensors.read(input)
        guard let stored = file["input"] else { throw IOFailure(input, "no tensor named 'input'") }
        guard let storedLabels = file["labels"] else { throw IOFailure(input, "no tensor named 'labels'") }
        let images = Tensor(shape: stored.shape, values: stored.floats())
        images.requiresGrad = false
        try model.checkInput(shape: images.shape)
        let labels = storedLabels.int64s().map(Int.init)
        guard labels.count == images.shape[0], labels.allSatisfy({ $0 >= 0 && $0 < model.config.numClasses }) else {
            throw IOFailure(input, "labels must be \(images.shape[0]) class indices in 0..<\(model.config.numClasses)")
        }
        let tape = Tape()
        let loss = crossEntropy(model(images, tape: tape), labels: labels, tape: tape)
        tape.backward(from: loss)
        var out = TensorFile()
        out.append("loss", StoredTensor(shape: [1], floats: loss.array))
        for (name, p) in model.namedParameters() {
            out.append("grad.\(name)", StoredTensor(shape: p.shape, floats: (p.grad ?? Tensor(zeros: p.shape)).array))
        }
        try SafeTensors.write(out, to: output)
    }
}
