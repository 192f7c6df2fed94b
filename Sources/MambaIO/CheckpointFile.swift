import Foundation

/// Reads a state dict from a PyTorch `.pth` checkpoint or a `.safetensors` file, told apart by
/// their first bytes rather than the file name, and writes one in the format its name asks for.
package enum CheckpointFile {
    package enum Format: Sendable {
        case safetensors
        /// torch.save({"model": state_dict}), the layout of the released checkpoints.
        case pth
    }

    /// The format a file name asks for: `.safetensors`, or `.pth`/`.pt` (any letter case).
    package static func format(forWriting path: String) throws -> Format {
        switch (path as NSString).pathExtension.lowercased() {
        case "safetensors": return .safetensors
        case "pth", "pt": return .pth
        default: throw FileError.unsupportedExtension(path: path, supported: [".safetensors", ".pth", ".pt"])
        }
    }

    /// Writes `file` in the format its path's extension names.
    package static func write(_ file: TensorFile, to path: String) throws {
        switch try format(forWriting: path) {
        case .safetensors: try SafeTensors.write(file, to: path)
        case .pth: try TorchCheckpointWriter.write(file, to: path)
        }
    }

    package static func readStateDict(_ path: String) throws -> TensorFile {
        let head = try firstBytes(path, 8)
        if isZip(head) { return try TorchCheckpoint.read(path).stateDict() }
        if isPickle(head) { throw FileError.legacyTorchFormat(path: path) }
        return try SafeTensors.read(path)
    }

    /// Whether the file is a PyTorch checkpoint (torch.save's zip, or its legacy pickle), by its
    /// first bytes: such a file holds weights only, never a training state of this package.
    package static func isTorchFile(_ path: String) throws -> Bool {
        let head = try firstBytes(path, 8)
        return isZip(head) || isPickle(head)
    }

    private static func isZip(_ head: [UInt8]) -> Bool { head.starts(with: [0x50, 0x4B, 0x03, 0x04]) }
    private static func isPickle(_ head: [UInt8]) -> Bool { head.first == 0x80 && head.count > 1 && head[1] <= 5 }

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
