/// Reads a state dict from a PyTorch `.pth` checkpoint or a `.safetensors` file, by content.
public enum CheckpointFile {
    public static func readStateDict(_ path: String) throws -> TensorFile {
        try SafeTensors.read(path)
    }
}
