import ArgumentParser
import MambaIO

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights between PyTorch .pth and .safetensors (dtypes kept); the output's extension decides its format.")

    @Argument(help: "A .pth file (torch.save zip archive), a .safetensors file or a training checkpoint.") var input: String
    @Argument(help: "The file to write: .safetensors, or .pth (torch.save({\"model\": state_dict}) layout).") var output: String

    func run() throws {
        _ = try CheckpointFile.format(forWriting: output)   // before any reading
        var stateDict = try CheckpointFile.readStateDict(input)
        // A training checkpoint keeps only the model's tensors.
        if stateDict.metadata["training_state"] != nil {
            stateDict.names = stateDict.names.filter { !$0.hasPrefix("optimizer.") && !$0.hasPrefix("model_ema.") }
            stateDict.tensors = stateDict.tensors.filter { stateDict.names.contains($0.key) }
            stateDict.metadata = [:]
        }
        try CheckpointFile.write(stateDict, to: output)
        let elements = stateDict.tensors.values.reduce(0) { $0 + $1.elementCount }
        print("wrote \(stateDict.names.count) tensors (\(elements) values) to \(output)")
    }
}
