import MambaIO
import MambaNN
import MambaTensor

extension StoredTensor: StateDictValue {}

extension VimModel {
    /// Loads weights from a `.pth` or `.safetensors` file; strict unless told otherwise.
    @discardableResult
    public func load(weights path: String, strict: Bool = true) throws -> StateDictMismatch {
        let file = try CheckpointFile.readStateDict(path)
        return try load(stateDict: file.tensors, strict: strict, source: path)
    }

    /// The parameters as a tensor file under their official names, in state_dict order.
    public func stateDict() -> TensorFile {
        var file = TensorFile()
        for (name, t) in namedParameters() { file.append(name, StoredTensor(shape: t.shape, floats: t.array)) }
        return file
    }
}
