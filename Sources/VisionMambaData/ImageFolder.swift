import Foundation
import MambaIO
import MambaTensor

/// torchvision's ImageFolder over `root/<split>/<class>/…/<image>` (JPEG or PNG, at any depth
/// under the class folder, following links to folders; class index = position of the folder name
/// in sorted order; files in the order of their sorted paths). Hidden files and folders are left
/// out. Training samples get RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3, PIL bicubic);
/// evaluation samples the official eval transform (shorter side to size/0.875, centre crop).
///
/// Every image's header is checked when the dataset is built (`ImageDecoder.verify`, in
/// parallel), so a file that is not an image or was cut short stops the run before training
/// rather than hours into it; the pixels are decoded when a batch is prepared, on the loader's
/// background queue.
package struct ImageFolderDataset: ImageDataset {
    package let root: String
    package let split: String
    package let classNames: [String]
    package let files: [(path: String, label: Int)]
    /// The image files left out because they cannot be read (with `skipBadImages`), in file order.
    package let skipped: [FileError]
    package let size: Int
    package let train: Bool

    static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// The class folders of a split, sorted as torchvision sorts them: class i is the i-th name.
    /// Reads only the folder listing, so a run can size its head before it reads any image.
    package static func classNames(root: String, split: String) throws -> [String] {
        let dir = (root as NSString).appendingPathComponent(split)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { throw DatasetError.missingFolder(path: dir) }
        let classes = try FolderWalk.visibleNames(dir).filter { name in
            FolderWalk.folderID((dir as NSString).appendingPathComponent(name))?.isFolder ?? false
        }.sorted(by: FolderWalk.precedes)
        guard !classes.isEmpty else { throw DatasetError.noClassFolders(path: dir) }
        return classes
    }

    /// `skipBadImages`: leave unreadable images out (listed in `skipped`) instead of throwing
    /// `DatasetError.unreadableImages` naming them all.
    package init(root: String, split: String, size: Int, train: Bool, skipBadImages: Bool = false) throws {
        let dir = (root as NSString).appendingPathComponent(split)
        let classes = try Self.classNames(root: root, split: split)
        var candidates: [(path: String, label: Int)] = []
        for (label, name) in classes.enumerated() {
            let found = try FolderWalk.files(under: (dir as NSString).appendingPathComponent(name)) {
                Self.extensions.contains(($0 as NSString).pathExtension.lowercased())
            }
            candidates += found.map { ($0.path, label) }
        }
        func emptyClasses(_ files: [(path: String, label: Int)]) -> [String] {
            var counts = [Int](repeating: 0, count: classes.count)
            for file in files { counts[file.label] += 1 }
            return classes.indices.filter { counts[$0] == 0 }.map { classes[$0] }
        }
        // As torchvision, a class without images is an error: its index would never be a label.
        var empty = emptyClasses(candidates)
        guard empty.isEmpty else { throw DatasetError.emptyClasses(path: dir, classes: empty) }

        let problems = Self.check(candidates.map(\.path))
        let bad = problems.compactMap { $0 }
        if !bad.isEmpty && !skipBadImages { throw DatasetError.unreadableImages(path: dir, images: bad) }
        let files = zip(candidates, problems).filter { $0.1 == nil }.map(\.0)
        empty = emptyClasses(files)
        guard empty.isEmpty else { throw DatasetError.emptyClasses(path: dir, classes: empty) }
        self.root = root
        self.split = split
        classNames = classes
        self.files = files
        skipped = bad
        self.size = size
        self.train = train
    }

    /// Each file's problem (nil when its header reads), in the order of `paths` whatever the
    /// thread count. Headers are read on all kernel threads: most of the time is waiting for
    /// the disk.
    static func check(_ paths: [String]) -> [FileError?] {
        var problems = [FileError?](repeating: nil, count: paths.count)
        problems.withUnsafeMutableBufferPointer { buffer in
            let out = buffer                                  // each thread writes only its own range
            parallelFor(paths.count) { range in
                for i in range {
                    do { _ = try ImageDecoder.verify(paths[i]) }
                    catch let error as FileError { out[i] = error }
                    catch { out[i] = .unreadable(path: paths[i], reason: "\(error)") }
                }
            }
        }
        return problems
    }

    /// The split folder the images were read from.
    package var folder: String { (root as NSString).appendingPathComponent(split) }

    package var count: Int { files.count }
    package var numClasses: Int { classNames.count }
    package var imageShape: [Int] { [3, size, size] }
    package var normalization: (mean: [Float], std: [Float]) { (EvalTransform.mean, EvalTransform.std) }
    /// The official eval transform: ImageNet statistics, crop 0.875 (as the validation split).
    package func inputTransform(size: Int) -> InputTransform { .imagenet(size: size) }

    /// Evaluation view (no randomness).
    package func sample(_ index: Int) throws -> (image: [Float], label: Int) {
        var rng = SeededGenerator(seed: 0)
        return try sample(index, rng: &rng)
    }

    package func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int) {
        let image = try ImageDecoder.decode(files[index].path)
        let out: RGBImage
        if train {
            out = randomResizedCrop(image, size: size, rng: &rng)
        } else {
            out = EvalTransform.resizedCenterCrop(image, resize: Int(Double(size) / 0.875), crop: size)
        }
        return (out.planarFloats, files[index].label)
    }

    /// torchvision RandomResizedCrop.get_params, then crop and PIL bicubic resize.
    func randomResizedCrop(_ image: RGBImage, size: Int, rng: inout SeededGenerator) -> RGBImage {
        let (W, H) = (image.width, image.height), area = Double(W * H)
        let logRatio = (log(3.0 / 4), log(4.0 / 3))
        var box: (x: Int, y: Int, w: Int, h: Int)? = nil
        for _ in 0..<10 {
            let target = area * (0.08 + rng.uniform() * 0.92)
            let aspect = exp(logRatio.0 + rng.uniform() * (logRatio.1 - logRatio.0))
            let w = Int((target * aspect).squareRoot().rounded()), h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && w <= W && h > 0 && h <= H {
                box = (rng.int(below: W - w + 1), rng.int(below: H - h + 1), w, h)
                break
            }
        }
        if box == nil {
            let ratio = Double(W) / Double(H)
            var (w, h) = (W, H)
            if ratio < 3.0 / 4 { h = Int((Double(w) / (3.0 / 4)).rounded()) } else if ratio > 4.0 / 3 { w = Int((Double(h) * 4 / 3).rounded()) }
            box = ((W - w) / 2, (H - h) / 2, w, h)
        }
        let b = box!
        var crop = [UInt8](repeating: 0, count: b.w * b.h * 3)
        for y in 0..<b.h {
            let src = ((b.y + y) * W + b.x) * 3
            for i in 0..<(b.w * 3) { crop[y * b.w * 3 + i] = image.pixels[src + i] }
        }
        return PILResample.bicubic(RGBImage(width: b.w, height: b.h, pixels: crop), width: size, height: size)
    }
}

extension RGBImage {
    /// CHW float32 in [0, 1], as torchvision's ToTensor gives.
    package var planarFloats: [Float] {
        let plane = width * height
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane { for c in 0..<3 { out[c * plane + i] = Float(pixels[3 * i + c]) / 255 } }
        return out
    }
}
