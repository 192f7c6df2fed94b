import Foundation
import XCTest
import MambaIO
import MambaTensor
@testable import VisionMambaData
@testable import VisionMambaTraining

final class DatasetTests: XCTestCase {
    static let cifar = Bundle.module.bundleURL.appendingPathComponent("Resources/cifar").path

    func testDigitsSplitIsFixedAndComplete() throws {
        let train = try DigitsDataset(split: .train), val = try DigitsDataset(split: .val)
        XCTAssertEqual(train.count, 1437); XCTAssertEqual(val.count, 360)
        XCTAssertEqual(Set((0..<val.count).map { try! val.sample($0).label }), Set(0..<10))
        let (image, _) = try train.sample(0)
        XCTAssertEqual(image.count, 192)
        XCTAssertTrue(image.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertEqual(try DigitsDataset(split: .train).sample(5).image, try train.sample(5).image)
    }

    /// Both distributed formats of CIFAR-10 and CIFAR-100 read to the same images and labels.
    func testCIFARBinaryAndPythonFormatsAgree() throws {
        for classes in [10, 100] {
            for train in [true, false] {
                let sub = classes == 10 ? ["cifar-10-batches-bin", "cifar-10-batches-py"] : ["cifar-100-binary", "cifar-100-python"]
                let bin = try CIFARDataset(path: Self.cifar + "/" + sub[0], classes: classes, train: train)
                let py = try CIFARDataset(path: Self.cifar + "/" + sub[1], classes: classes, train: train)
                XCTAssertEqual(bin.count, train ? (classes == 10 ? 20 : 4) : 4)
                XCTAssertEqual(bin.count, py.count)
                for i in 0..<bin.count {
                    XCTAssertEqual(try bin.sample(i).label, try py.sample(i).label)
                    XCTAssertEqual(try bin.sample(i).image, try py.sample(i).image)
                }
                // The generator's pixel rule: value p of image j is ((start + j)·7 + p) mod 251.
                let start = classes == 10 ? (train ? 0 : 20) : (train ? 100 : 104)
                XCTAssertEqual(try bin.sample(1).image[5], Float(((start + 1) * 7 + 5) % 251) / 255, accuracy: 1e-7)
            }
        }
        // The parent folder works too, as downloaded archives extract into a subfolder.
        XCTAssertEqual(try CIFARDataset(path: Self.cifar, classes: 10, train: false).count, 4)
    }

    /// ImageFolder: classes from sorted folder names; evaluation = the official eval transform,
    /// training = random resized crops of the requested size.
    func testImageFolder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vm-folder-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../MambaIOTests/Resources")
        for (split, cls, file) in [("train", "cat", "rgb.jpg"), ("train", "ant", "rgb.png"), ("train", "ant", "grey.png"),
                                   ("val", "cat", "rgb.jpg"), ("val", "ant", "palette.png")] {
            let dir = root.appendingPathComponent("\(split)/\(cls)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: images.appendingPathComponent(file), to: dir.appendingPathComponent(file))
        }
        let val = try ImageFolderDataset(root: root.path, split: "val", size: 16, train: false)
        XCTAssertEqual(val.classNames, ["ant", "cat"])
        XCTAssertEqual(val.count, 2)
        let (image, label) = try val.sample(1)
        XCTAssertEqual(label, 1)
        XCTAssertEqual(image.count, 3 * 16 * 16)
        let decoded = try ImageDecoder.decode(images.appendingPathComponent("rgb.jpg").path)
        let expected = EvalTransform.centerCrop(EvalTransform.resizeShorterSide(decoded, to: 18), size: 16)
        XCTAssertEqual(image, (0..<768).map { Float(expected.pixels[($0 % 256) * 3 + $0 / 256]) / 255 })
        let train = try ImageFolderDataset(root: root.path, split: "train", size: 16, train: true)
        XCTAssertEqual(train.count, 3)
        var r1 = SeededGenerator(seed: 1), r2 = SeededGenerator(seed: 2), r1b = SeededGenerator(seed: 1)
        let a = try train.sample(2, rng: &r1).image, b = try train.sample(2, rng: &r2).image, c = try train.sample(2, rng: &r1b).image
        XCTAssertEqual(a.count, 768)
        XCTAssertEqual(a, c)
        XCTAssertNotEqual(a, b)
        XCTAssertThrowsError(try ImageFolderDataset(root: root.path, split: "test", size: 16, train: false)) { error in
            XCTAssertEqual(error as? DatasetError, .missingFolder(path: root.appendingPathComponent("test").path))
        }
    }

    func testMissingDatasetNamesThePathAndWhatWasExpected() {
        XCTAssertThrowsError(try CIFARDataset(path: "/nonexistent/cifar", classes: 10, train: true)) { error in
            XCTAssertEqual(error as? DatasetError, .missingCIFAR(path: "/nonexistent/cifar", classes: 10, train: true))
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("/nonexistent/cifar: ") && text.contains("data_batch_1"), text)
        }
        XCTAssertThrowsError(try makeDataset(.cifar10, path: nil, train: true)) { error in
            XCTAssertEqual(error as? TrainingError, .missingDataPath(dataset: "cifar10"))
        }
        XCTAssertThrowsError(try DatasetKind(name: "mnist")) { error in
            XCTAssertTrue("\(error)".contains("digits, cifar10, cifar100, imagefolder"))
        }
    }
}
