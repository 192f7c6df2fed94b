import Foundation
import MambaIO
import MambaTensor

/// torchvision's ImageFolder over `root/<split>/<class>/<image>` (JPEG or PNG; class index =
/// position of the folder name in sorted order). Training samples get RandomResizedCrop(size,
/// scale 0.08–1, ratio 3/4–4/3, PIL bicubic); evaluation samples the official eval transform
/// (shorter side to size/0.875, centre crop). Images are decoded when a batch is prepared, on
/// the loader's background queue.
public struct ImageFolderDataset: ImageDataset {
    public let root: String
    public let classNames: [String]
    public let files: [(path: String, label: Int)]
    public let size: Int
    public let train: Bool

    static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    public init(root: String, split: String, size: Int, train: Bool) throws {
        let dir = (root as NSString).appendingPathComponent(split)
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { throw DatasetError.missingFolder(path: dir) }
        func contents(_ folder: String) throws -> [String] {
            do { return try fm.contentsOfDirectory(atPath: folder) } catch { throw DatasetError.unreadable(path: folder) }
        }
        let classes = try contents(dir).filter { name in
            var d: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: (dir as NSString).appendingPathComponent(name), isDirectory: &d) && d.boolValue
        }.sorted()
        guard !classes.isEmpty else { throw DatasetError.noClassFolders(path: dir) }
        var files: [(String, Int)] = []
        for (label, name) in classes.enumerated() {
            let classDir = (dir as NSString).appendingPathComponent(name)
            for file in try contents(classDir).sorted()
            where Self.extensions.contains((file as NSString).pathExtension.lowercased()) {
                files.append(((classDir as NSString).appendingPathComponent(file), label))
            }
        }
        guard !files.isEmpty else { throw DatasetError.noImages(path: dir) }
        self.root = root
        classNames = classes
        self.files = files
        self.size = size
        self.train = train
    }

    public var count: Int { files.count }
    public var numClasses: Int { classNames.count }
    public var imageShape: [Int] { [3, size, size] }
    public var normalization: (mean: [Float], std: [Float]) { (EvalTransform.mean, EvalTransform.std) }

    /// Evaluation view (no randomness).
    public func sample(_ index: Int) throws -> (image: [Float], label: Int) {
        var rng = SeededGenerator(seed: 0)
        return try sample(index, rng: &rng)
    }

    public func sample(_ index: Int, rng: inout SeededGenerator) throws -> (image: [Float], label: Int) {
        let image = try ImageDecoder.decode(files[index].path)
        let out: RGBImage
        if train {
            out = randomResizedCrop(image, size: size, rng: &rng)
        } else {
            out = EvalTransform.resizedCenterCrop(image, resize: Int(Double(size) / 0.875), crop: size)
        }
        return (chw(out), files[index].label)
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

    func chw(_ image: RGBImage) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane { for c in 0..<3 { out[c * plane + i] = Float(image.pixels[3 * i + c]) / 255 } }
        return out
    }
}
