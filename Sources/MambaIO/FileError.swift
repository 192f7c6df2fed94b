/// A file that cannot be read or written, or whose contents are not what they claim to be.
/// Every case names the file first; tensor names, keys, dtypes and library messages come from
/// the file, so `description` clips them (and shapes and key lists) to a bounded length.
public enum FileError: Error, Sendable, Equatable, CustomStringConvertible {
    // The file itself.
    case notFound(path: String)
    case isDirectory(path: String)
    case empty(path: String)
    /// The operating system refused to open, stat or map the file.
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    /// A file to write whose extension names no format this library writes.
    case unsupportedExtension(path: String, supported: [String])
    /// A structure needs bytes up to `needed`; the file (or entry) has `available`.
    case truncated(path: String, needed: Int, available: Int)

    // Containers: safetensors header, zip archive, pickle.
    case headerTooLarge(path: String, length: UInt64, limit: Int)
    case malformedHeader(path: String, detail: String)
    case damagedArchive(path: String, detail: String)
    case missingEntry(path: String, entry: String)
    case compressedEntry(path: String, entry: String, method: Int)
    /// torch.save's pre-1.6 format (a bare pickle stream, no zip).
    case legacyTorchFormat(path: String)
    case malformedPickle(path: String, offset: Int, detail: String)
    case unsupportedOpcode(path: String, opcode: UInt8, offset: Int)
    /// Containers nested deeper than `limit` (PickleLimits.maxDepth).
    case pickleTooDeep(path: String, limit: Int)
    /// A container that contains itself.
    case pickleCycle(path: String)
    /// More work than `limit` steps (PickleLimits.stepsPerByte per byte of the pickle).
    case pickleTooComplex(path: String, offset: Int, limit: Int)
    /// More values copied by constructors than `limit` (PickleLimits.copiesPerByte per byte).
    case pickleTooLarge(path: String, offset: Int, limit: Int)
    /// A pickle global outside the allow-list; nothing was called.
    case refusedGlobal(path: String, name: String)
    /// A .pth whose pickle holds no dict of tensors; `keys` are its top-level keys.
    case noStateDict(path: String, keys: [String])
    case missingMetadata(path: String, key: String)
    case malformedMetadata(path: String, key: String)
    /// A stored setting (metadata) outside what any writer of this package produces.
    /// A file given as a segmentation label map whose pixels are not class indices.
    case unsupportedLabelMap(path: String, reason: String)
    case invalidValue(path: String, field: String, value: String, allowed: String)

    // Tensors.
    /// A safetensors header entry without a string dtype, an integer shape or two data offsets.
    case malformedEntry(path: String, tensor: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// A negative dimension or stride.
    case invalidShape(path: String, tensor: String, shape: [Int])
    /// Element or byte counts from the file do not fit in an Int.
    case sizeOverflow(path: String, tensor: String)
    /// Data offsets [begin, end) outside the `available` bytes of the data section.
    case dataOutOfBounds(path: String, tensor: String, begin: Int, end: Int, available: Int)
    /// Shape × dtype size (`expected` bytes) disagrees with the declared data offsets.
    case byteCountMismatch(path: String, tensor: String, expected: Int, found: Int)
    /// A .pth storage entry holds fewer bytes than its declared element count needs.
    case storageTooSmall(path: String, tensor: String, needed: Int, available: Int)
    /// A strided view reaches element `lastElement` of a storage of `storageElements`.
    case viewOutOfStorage(path: String, tensor: String, lastElement: Int, storageElements: Int)
    /// A view (stride 0) that would expand a small storage into a huge copy.
    case expansionTooLarge(path: String, tensor: String, elements: Int, storageElements: Int)
    /// Copying this strided view would bring a checkpoint's copies to `bytes`, over `limit`.
    case copiesTooLarge(path: String, tensor: String, bytes: Int, limit: Int)
    case missingTensor(path: String, name: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    /// A labels tensor that is not `count` class indices in 0..<classes.
    case labelsOutOfRange(path: String, tensor: String, count: Int, classes: Int)
    /// A file holding `found` items of `what` where `expected` are needed.
    case countMismatch(path: String, what: String, expected: Int, found: Int)

    // Images.
    /// Neither JPEG nor PNG.
    case unsupportedImage(path: String)
    case imageTooLarge(path: String, width: Int, height: Int)
    /// The decoder (libjpeg-turbo or libpng) refused the file; `reason` is its message.
    case decodeFailed(path: String, format: String, reason: String)

    /// One line naming the file and what is wrong with it.
    public var description: String {
        switch self {
        case .notFound(let path): "\(oneLine(path)): no such file"
        case .isDirectory(let path): "\(oneLine(path)): is a directory, not a file"
        case .empty(let path): "\(oneLine(path)): empty file"
        case .unreadable(let path, let reason): "\(oneLine(path)): cannot read: \(clipped(reason))"
        case .unwritable(let path, let reason): "\(oneLine(path)): cannot write: \(clipped(reason))"
        case .unsupportedExtension(let path, let supported):
            "\(oneLine(path)): unknown file type; the extension must be one of \(supported.joined(separator: ", "))"
        case .truncated(let path, let needed, let available):
            "\(oneLine(path)): truncated: needs \(needed) bytes, has \(available)"
        case .headerTooLarge(let path, let length, let limit):
            "\(oneLine(path)): header claims \(length) bytes (limit \(limit)); not a safetensors file, or damaged"
        case .malformedHeader(let path, let detail): "\(oneLine(path)): malformed header: \(clipped(detail))"
        case .damagedArchive(let path, let detail): "\(oneLine(path)): damaged zip archive: \(clipped(detail))"
        case .missingEntry(let path, let entry): "\(oneLine(path)): archive has no entry '\(clipped(entry))'"
        case .compressedEntry(let path, let entry, let method):
            "\(oneLine(path)): entry '\(clipped(entry))' is compressed (method \(method)); torch.save stores entries uncompressed"
        case .legacyTorchFormat(let path):
            "\(oneLine(path)): legacy (non-zip) torch.save format is not supported; re-save it with torch >= 1.6"
        case .malformedPickle(let path, let offset, let detail):
            "\(oneLine(path)): malformed pickle at byte \(offset): \(clipped(detail))"
        case .unsupportedOpcode(let path, let opcode, let offset):
            "\(oneLine(path)): unsupported pickle opcode 0x\(String(opcode, radix: 16)) at byte \(offset)"
        case .pickleTooDeep(let path, let limit):
            "\(oneLine(path)): pickle nests containers more than \(limit) deep (damaged or hostile file)"
        case .pickleCycle(let path):
            "\(oneLine(path)): pickle holds a container that contains itself; only acyclic data is read"
        case .pickleTooComplex(let path, let offset, let limit):
            "\(oneLine(path)): pickle needs more than \(limit) steps by byte \(offset), out of proportion to its size (damaged or hostile file)"
        case .pickleTooLarge(let path, let offset, let limit):
            "\(oneLine(path)): pickle copies more than \(limit) values by byte \(offset), out of proportion to its size (damaged or hostile file)"
        case .refusedGlobal(let path, let name):
            "\(oneLine(path)): refusing pickle global '\(clipped(name))': only the globals torch.save writes for tensors and checkpoints are allowed"
        case .noStateDict(let path, let keys):
            "\(oneLine(path)): no state dict found (top-level keys: \(shortList(keys.map { clipped($0) })))"
        case .missingMetadata(let path, let key): "\(oneLine(path)): no '\(clipped(key))' in its metadata"
        case .malformedMetadata(let path, let key): "\(oneLine(path)): metadata '\(clipped(key))' cannot be parsed"
        case .unsupportedLabelMap(let path, let reason): "\(oneLine(path)): not a label map: \(reason)"
        case .invalidValue(let path, let field, let value, let allowed):
            "\(oneLine(path)): \(field) is \(clipped(value)); it must be \(allowed)"
        case .malformedEntry(let path, let tensor):
            "\(oneLine(path)): tensor '\(clipped(tensor))': header entry needs a dtype, an integer shape and two data_offsets"
        case .unsupportedDType(let path, let tensor, let dtype):
            "\(oneLine(path)): tensor '\(clipped(tensor))': unsupported dtype '\(clipped(dtype))'"
        case .invalidShape(let path, let tensor, let shape):
            "\(oneLine(path)): tensor '\(clipped(tensor))': invalid shape or strides \(shortList(shape))"
        case .sizeOverflow(let path, let tensor):
            "\(oneLine(path)): tensor '\(clipped(tensor))': its size overflows (damaged or hostile file)"
        case .dataOutOfBounds(let path, let tensor, let begin, let end, let available):
            "\(oneLine(path)): tensor '\(clipped(tensor))': data_offsets [\(begin), \(end)) lie outside the \(available)-byte data section"
        case .byteCountMismatch(let path, let tensor, let expected, let found):
            "\(oneLine(path)): tensor '\(clipped(tensor))': shape and dtype need \(expected) bytes, data_offsets give \(found)"
        case .storageTooSmall(let path, let tensor, let needed, let available):
            "\(oneLine(path)): tensor '\(clipped(tensor))': storage needs \(needed) bytes, the archive holds \(available)"
        case .viewOutOfStorage(let path, let tensor, let last, let count):
            "\(oneLine(path)): tensor '\(clipped(tensor))': view reaches element \(last) of a \(count)-element storage"
        case .expansionTooLarge(let path, let tensor, let elements, let count):
            "\(oneLine(path)): tensor '\(clipped(tensor))': view of \(elements) elements expands a \(count)-element storage too far"
        case .copiesTooLarge(let path, let tensor, let bytes, let limit):
            "\(oneLine(path)): tensor '\(clipped(tensor))': copying strided views would take \(bytes) bytes, over the \(limit) this checkpoint's size allows (damaged or hostile file)"
        case .missingTensor(let path, let name): "\(oneLine(path)): no tensor named '\(clipped(name))'"
        case .shapeMismatch(let path, let tensor, let expected, let found):
            "\(oneLine(path)): \(clipped(tensor)): expected \(shortList(expected)), found \(shortList(found))"
        case .labelsOutOfRange(let path, let tensor, let count, let classes):
            "\(oneLine(path)): \(clipped(tensor)) must be \(count) class indices in 0..<\(classes)"
        case .countMismatch(let path, let what, let expected, let found):
            "\(oneLine(path)): expected \(expected) \(clipped(what)), found \(found)"
        case .unsupportedImage(let path): "\(oneLine(path)): not a JPEG or PNG image"
        case .imageTooLarge(let path, let width, let height):
            "\(oneLine(path)): image of \(width)x\(height) pixels is too large"
        case .decodeFailed(let path, let format, let reason): "\(oneLine(path)): cannot decode \(format): \(clipped(reason))"
        }
    }
}

/// `text` on one line (control characters become spaces), so a message stays one line.
func oneLine(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
}

/// A value from a file, on one line and at most `limit` characters.
func clipped(_ text: String, _ limit: Int = 80) -> String {
    let short = text.count <= limit ? text : String(text.prefix(limit)) + "…"
    return oneLine(short)
}

/// At most `limit` elements of a list, then how many there were: "[1, 2, 3, … (1000 in all)]".
func shortList<T>(_ items: [T], _ limit: Int = 6) -> String {
    let shown = items.prefix(limit).map { "\($0)" }.joined(separator: ", ")
    return items.count <= limit ? "[\(shown)]" : "[\(shown), … (\(items.count) in all)]"
}
