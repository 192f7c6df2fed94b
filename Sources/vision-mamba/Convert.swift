import ArgumentParser
import MambaIO

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a PyTorch .pth checkpoint's state dict to .safetensors (dtypes kept).")

    @Argument(help: "A .pth file (torch.save zip archive) or a .safetensors file.") var input: String
    @Argument(help: "The .safetensors file to write.") var output: String

    func run() throws {
        let stateDict = try CheckpointFile.readStateDict(input)
        try SafeTensors.write(stateDict, to: output)
        let elements = stateDict.tensors.values.reduce(0) { $0 + $1.elementCount }
        print("wrote \(stateDict.names.count) tensors (\(elements) values) to \(output)")
    }
}
