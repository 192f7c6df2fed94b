import Foundation
import MambaIO
import MambaTensor

/// CIFAR-10 and CIFAR-100 in either distributed format, found under `path` (the extracted folder
/// or the folder holding it):
/// - binary: `data_batch_{1…5}.bin` / `test_batch.bin` (CIFAR-10: a label byte + 3,072 pixel
///   bytes per image) or `train.bin` / `test.bin` (CIFAR-100: coarse and fine label bytes + pixels);
/// - python: the pickled batches `data_batch_{1…5}` / `test_batch` (CIFAR-10, key `labels`) or
///   `train` / `test` (CIFAR-100, key `fine_labels`), read by the restricted unpickler.
/// Pixels are stored as R, G and B planes of 32×32, i.e. already CHW.
public struct CIFARDataset: ImageDataset {
    public let classes: Int
    let pixels: [UInt8]
    let labels: [Int]

    public init(path: String, classes: Int, train: Bool) throws {
        precondition(classes == 10 || classes == 100)
        self.classes = classes
        let fm = FileManager.default
        let folders = [path] + (classes == 10 ? ["cifar-10-batches-bin", "cifar-10-batches-py"] : ["cifar-100-binary", "cifar-100-python"])
            .map { (path as NSString).appendingPathComponent($0) }
        let names: (binary: [String], python: [String]) = classes == 10
            ? (train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"], train ? (1...5).map { "data_batch_\($0)" } : ["test_batch"])
            : (train ? ["train.bin"] : ["test.bin"], train ? ["train"] : ["test"])
        var px = [UInt8](), lab = [Int]()
        if let dir = folders.first(where: { d in names.binary.allSatisfy { fm.fileExists(atPath: (d as NSString).appendingPathComponent($0)) } }) {
            let labelBytes = classes == 10 ? 1 : 2, record = labelBytes + 3072
            for name in names.binary {
                let file = (dir as NSString).appendingPathComponent(name)
                guard let data = fm.contents(atPath: file), !data.isEmpty, data.count % record == 0 else {
                    throw DatasetError(file, "not a CIFAR-\(classes) binary batch (expected records of \(record) bytes)")
                }
                let bytes = [UInt8](data)
                for r in 0..<(bytes.count / record) {
                    let label = Int(bytes[r * record + labelBytes - 1])   // CIFAR-100: the fine label
                    guard label < classes else { throw DatasetError(file, "label \(label) out of range in record \(r)") }
                    lab.append(label)
                    px += bytes[(r * record + labelBytes)..<((r + 1) * record)]
                }
            }
        } else if let dir = folders.first(where: { d in names.python.allSatisfy { fm.fileExists(atPath: (d as NSString).appendingPathComponent($0)) } }) {
            for name in names.python {
                let file = (dir as NSString).appendingPathComponent(name)
                let root = try readNumpyPickle(file)
                guard case .dict(let d) = root else { throw DatasetError(file, "not a CIFAR python batch (no dict)") }
                func entry(_ key: String) -> PickleValue? {
                    for (k, v) in zip(d.keys, d.values) {
                        if k.stringValue == key { return v }
                        if case .bytes(let b) = k, b == Array(key.utf8) { return v }
                    }
                    return nil
                }
                let labelKey = classes == 10 ? "labels" : "fine_labels"
                guard case .object(let array)? = entry("data"), let (shape, bytes) = array.uint8Array(),
                      shape.count == 2, shape[1] == 3072, case .list(let labels)? = entry(labelKey), labels.items.count == shape[0] else {
                    throw DatasetError(file, "not a CIFAR-\(classes) python batch (expected 'data' [N, 3072] uint8 and '\(labelKey)')")
                }
                for item in labels.items {
                    guard case .int(let l) = item, l >= 0, l < classes else { throw DatasetError(file, "label out of range") }
                    lab.append(l)
                }
                px += bytes
            }
        } else {
            let expected = (names.binary + names.python).joined(separator: ", ")
            throw DatasetError(path, "no CIFAR-\(classes) \(train ? "training" : "test") data found (looked for \(expected) here and in the standard subfolders)")
        }
        pixels = px
        labels = lab
    }

    public var count: Int { labels.count }
    public var numClasses: Int { classes }
    public var imageShape: [Int] { [3, 32, 32] }
    public var normalization: (mean: [Float], std: [Float]) { ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) }

    public func sample(_ index: Int) throws -> (image: [Float], label: Int) {
        (pixels[(index * 3072)..<((index + 1) * 3072)].map { Float($0) / 255 }, labels[index])
    }
}
