import Foundation

/// Reads a state dict from a PyTorch `.pth` checkpoint or a `.safetensors` file, told apart by
/// their first bytes rather than the file name.
public enum CheckpointFile {
    public static func readStateDict(_ path: String) throws -> TensorFile {
        let head = try firstBytes(path, 8)
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try TorchCheckpoint.read(path).stateDict() }
        if head.first == 0x80 && head.count > 1 && head[1] <= 5 {
            throw FileError.legacyTorchFormat(path: path)
        }
        return try SafeTensors.read(path)
    }

    static func firstBytes(_ path: String, _ n: Int) throws -> [UInt8] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FileError.notFound(path: path) }
        if isDir.boolValue { throw FileError.isDirectory(path: path) }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw FileError.unreadable(path: path, reason: "cannot open for reading") }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: n)) ?? nil
        guard let data, !data.isEmpty else { throw FileError.empty(path: path) }
        return [UInt8](data)
    }
}
