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
package struct CIFARDataset: ImageDataset {
    package let classes: Int
    let pixels: [UInt8]
    let labels: [Int]

    package init(path: String, classes: Int, train: Bool) throws {
        guard classes == 10 || classes == 100 else { throw DatasetError.unsupportedClassCount(path: path, classes: classes) }
        self.classes = classes
        let fm = FileManager.default
        let folders = [path] + DatasetError.cifarFolders(classes: classes).map { (path as NSString).appendingPathComponent($0) }
        let names = DatasetError.cifarNames(classes: classes, train: train)
        var px = [UInt8](), lab = [Int]()
        if let dir = folders.first(where: { d in names.binary.allSatisfy { fm.fileExists(atPath: (d as NSString).appendingPathComponent($0)) } }) {
            for name in names.binary {
                let file = (dir as NSString).appendingPathComponent(name)
                guard let data = fm.contents(atPath: file) else { throw DatasetError.unreadable(path: file) }
                let batch = try Self.binaryBatch([UInt8](data), path: file, classes: classes)
                px += batch.pixels
                lab += batch.labels
            }
        } else if let dir = folders.first(where: { d in names.python.allSatisfy { fm.fileExists(atPath: (d as NSString).appendingPathComponent($0)) } }) {
            for name in names.python {
                let file = (dir as NSString).appendingPathComponent(name)
                let batch = try Self.pythonBatch(try readNumpyPickle(file), path: file, classes: classes)
                px += batch.pixels
                lab += batch.labels
            }
        } else {
            throw DatasetError.missingCIFAR(path: path, classes: classes, train: train)
        }
        pixels = px
        labels = lab
    }

    package var count: Int { labels.count }
    package var numClasses: Int { classes }
    package var imageShape: [Int] { [3, 32, 32] }
    package var normalization: (mean: [Float], std: [Float]) { ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) }
    package var classNames: [String] { classes == 10 ? Self.cifar10Names : Self.cifar100Names }

    /// The label names of the datasets' own meta files (batches.meta, meta), in label order.
    static let cifar10Names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    static let cifar100Names = """
        apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle \
        caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish \
        forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle \
        mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine \
        possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar \
        sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale \
        willow_tree wolf woman worm
        """.split(separator: " ").map(String.init)

    package func sample(_ index: Int) throws -> (image: [Float], label: Int) {
        (pixels[(index * 3072)..<((index + 1) * 3072)].map { Float($0) / 255 }, labels[index])
    }
}

extension CIFARDataset {
    /// One binary batch: per record the label byte (CIFAR-100: coarse then fine) and 3,072 pixels.
    static func binaryBatch(_ bytes: [UInt8], path: String, classes: Int) throws -> (pixels: [UInt8], labels: [Int]) {
        let labelBytes = classes == 10 ? 1 : 2, record = labelBytes + 3072
        guard !bytes.isEmpty, bytes.count % record == 0 else {
            throw DatasetError.recordSizeMismatch(path: path, recordBytes: record, fileSize: bytes.count)
        }
        var pixels = [UInt8](), labels = [Int]()
        pixels.reserveCapacity(bytes.count / record * 3072)
        for r in 0..<(bytes.count / record) {
            let label = Int(bytes[r * record + labelBytes - 1])   // CIFAR-100: the fine label
            guard label < classes else { throw DatasetError.labelOutOfRange(path: path, record: r, label: label, classes: classes) }
            labels.append(label)
            pixels += bytes[(r * record + labelBytes)..<((r + 1) * record)]
        }
        return (pixels, labels)
    }

    /// One unpickled python batch: a dict whose 'data' is a uint8 array [N, 3072] and whose
    /// 'labels' (CIFAR-100: 'fine_labels') are N ints; keys may be str or (Python 2) bytes.
    static func pythonBatch(_ root: PickleValue, path: String, classes: Int) throws -> (pixels: [UInt8], labels: [Int]) {
        guard case .dict(let d) = root else { throw DatasetError.malformedBatch(path: path, classes: classes) }
        let labelKey = classes == 10 ? "labels" : "fine_labels"
        // uint8Array checks that the shape's product (overflow-checked) is the byte count.
        guard case .object(let array)? = d.value(forText: "data"), let (shape, bytes) = array.uint8Array(),
              shape.count == 2, shape[1] == 3072, case .list(let list)? = d.value(forText: labelKey), list.items.count == shape[0] else {
            throw DatasetError.malformedBatch(path: path, classes: classes)
        }
        var labels = [Int]()
        for (r, item) in list.items.enumerated() {
            guard case .int(let l) = item else { throw DatasetError.malformedBatch(path: path, classes: classes) }
            guard l >= 0, l < classes else { throw DatasetError.labelOutOfRange(path: path, record: r, label: l, classes: classes) }
            labels.append(l)
        }
        return (bytes, labels)
    }
}
