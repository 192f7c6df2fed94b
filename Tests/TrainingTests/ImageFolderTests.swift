import Foundation
import XCTest
@testable import MambaIO
import MambaTensor
@testable import VisionMambaModels
@testable import VisionMambaData
@testable import VisionMambaTraining

/// ImageFolder as torchvision walks it (nested files, links to folders, empty classes refused),
/// with link cycles and unreadable images found when the dataset is built.
final class ImageFolderTests: XCTestCase {
    static let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../MambaIOTests/Resources").standardized

    var root: URL!
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("vm-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws {
        EngineSettings.configure(threads: Parallel.defaultThreads)
        try? FileManager.default.removeItem(at: root)
    }

    /// Writes `bytes` (default: a copy of the test image its extension names) at `relative`.
    @discardableResult
    func put(_ relative: String, _ bytes: [UInt8]? = nil) throws -> String {
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let data = try bytes.map { Data($0) } ?? Data(contentsOf: Self.images.appendingPathComponent(url.pathExtension.lowercased() == "png" ? "rgb.png" : "rgb.jpg"))
        try data.write(to: url)
        return url.path
    }

    func link(_ relative: String, to destination: String) throws {
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent(relative).path, withDestinationPath: destination)
    }

    /// The dataset's files relative to the split folder, with their labels.
    func listing(_ data: ImageFolderDataset) -> [String] {
        data.files.map { "\($0.label) " + String($0.path.dropFirst(data.folder.count + 1)) }
    }

    func assertThrows<E: Error & Equatable>(_ expected: E, _ body: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), file: file, line: line)
        }
    }

    /// rgb.png with IHDR width 0 (and its CRC made right): libpng refuses it.
    func zeroWidthPNG() throws -> [UInt8] {
        var png = [UInt8](try Data(contentsOf: Self.images.appendingPathComponent("rgb.png")))
        png.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        let crc = StoredZipWriter.crc32(Array(png[12..<29]))
        png.replaceSubrange(29..<33, with: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: crc >> UInt32($0)) })
        return png
    }

    /// Files at any depth count, links to folders are followed, hidden names and other extensions
    /// are left out, and the order is that of the sorted relative paths ("sub.x/…" before "sub/…",
    /// as "." sorts before "/").
    func testNestedFilesAndLinkedFolders() throws {
        for file in ["train/cat/a.png", "train/cat/sub/b.jpg", "train/cat/sub/deeper/c.png", "train/cat/sub.x/e.PNG",
                     "train/dog/z.jpeg", "train/dog/y/x.png", "elsewhere/s.png", "elsewhere/more/t.jpg"] {
            try put(file)
        }
        try put("train/cat/.hidden/h.png")
        try put("train/cat/._a.png", [0, 5, 22, 7])                 // macOS metadata, not an image
        try put("train/cat/notes.txt", Array("text".utf8))
        try put("train/.ipynb_checkpoints/k.png")                  // not a class
        try link("train/dog/linked", to: root.appendingPathComponent("elsewhere").path)
        try link("train/dog/y/sibling", to: "../../cat/sub/deeper")   // a folder seen twice is no cycle
        let data = try ImageFolderDataset(root: root.path, split: "train", size: 16, train: true)
        XCTAssertEqual(data.classNames, ["cat", "dog"])
        XCTAssertEqual(listing(data), ["0 cat/a.png", "0 cat/sub.x/e.PNG", "0 cat/sub/b.jpg", "0 cat/sub/deeper/c.png",
                                       "1 dog/linked/more/t.jpg", "1 dog/linked/s.png", "1 dog/y/sibling/c.png", "1 dog/y/x.png",
                                       "1 dog/z.jpeg"])
        XCTAssertEqual(data.count, 9)
        XCTAssertEqual(data.skipped, [])
        XCTAssertEqual(try data.sample(4).label, 1)
    }

    /// Every class folder without an image is named at once.
    func testEmptyClassFolders() throws {
        try put("val/ant/a.png")
        try put("val/bee/notes.txt", Array("text".utf8))
        try FileManager.default.createDirectory(at: root.appendingPathComponent("val/cat/nested/deeper"), withIntermediateDirectories: true)
        try put("val/dog/.hidden.png")
        let split = root.appendingPathComponent("val").path
        assertThrows(DatasetError.emptyClasses(path: split, classes: ["bee", "cat", "dog"]),
                     try ImageFolderDataset(root: root.path, split: "val", size: 16, train: false))
        XCTAssertEqual("\(DatasetError.emptyClasses(path: split, classes: ["bee", "cat", "dog"]))",
                       "\(split): no .jpg, .jpeg or .png images in class folders bee, cat, dog")
    }

    /// A link to a folder that contains it is refused, naming the link, whether it points at the
    /// class folder, the split folder or higher up.
    func testLinkCycles() throws {
        try put("train/cat/a.png")
        try put("train/dog/b.png")
        let split = root.appendingPathComponent("train").path
        for (name, destination) in [("cat/sub/back", ".."), ("cat/up", ".."), ("dog/top", root.path), ("dog/self", ".")] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent("train/cat/sub"), withIntermediateDirectories: true)
            try link("train/" + name, to: destination)
            assertThrows(DatasetError.linkCycle(path: split + "/" + name), try ImageFolderDataset(root: root.path, split: "train", size: 16, train: true))
            try FileManager.default.removeItem(atPath: split + "/" + name)
        }
        XCTAssertEqual(try ImageFolderDataset(root: root.path, split: "train", size: 16, train: true).count, 2)
    }

    /// A truncated JPEG and a PNG with a bad IHDR are both listed in one error, with their
    /// reasons, in file order on any number of threads; skipped, the dataset holds exactly the
    /// good images.
    func testUnreadableImagesAreListedTogetherOrSkipped() throws {
        let jpeg = [UInt8](try Data(contentsOf: Self.images.appendingPathComponent("rgb.jpg")))
        try put("val/cat/good.png")
        let cut = try put("val/cat/nested/cut.jpg", Array(jpeg.prefix(300)))        // inside a Huffman table ending at 393
        try put("val/dog/good.jpg")
        let badPNG = try put("val/dog/bad.png", try zeroWidthPNG())
        let expected = [FileError.truncated(path: cut, needed: 393, available: 300),
                        FileError.decodeFailed(path: badPNG, format: "PNG", reason: "IHDR: width 0 outside 1...1000000")]
        let split = root.appendingPathComponent("val").path
        for threads in [1, 2, 3] {
            EngineSettings.configure(threads: threads)
            assertThrows(DatasetError.unreadableImages(path: split, images: expected),
                         try ImageFolderDataset(root: root.path, split: "val", size: 16, train: false))
        }
        let message = "\(DatasetError.unreadableImages(path: split, images: expected))"
        XCTAssertTrue(message.hasPrefix("\(split): 2 image files cannot be read: \(cut): truncated"), message)
        XCTAssertTrue(message.contains("; \(badPNG): cannot decode PNG: IHDR: width 0"), message)

        let kept = try ImageFolderDataset(root: root.path, split: "val", size: 16, train: false, skipBadImages: true)
        XCTAssertEqual(listing(kept), ["0 cat/good.png", "1 dog/good.jpg"])
        XCTAssertEqual(kept.skipped, expected)
        XCTAssertEqual(try kept.sample(1).label, 1)

        // A class whose only image is bad is empty once it is skipped.
        try put("val/eel/bad.png", try zeroWidthPNG())
        assertThrows(DatasetError.emptyClasses(path: split, classes: ["eel"]),
                     try ImageFolderDataset(root: root.path, split: "val", size: 16, train: false, skipBadImages: true))
    }

    /// The trainer passes `skipBadImages` on and reports what was left out as events, once per split.
    func testTrainerReportsSkippedImages() throws {
        for split in ["train", "val"] {
            try put("\(split)/cat/a.png")
            try put("\(split)/dog/b.jpg")
        }
        try put("train/cat/bad.png", try zeroWidthPNG())
        var options = TrainOptions(model: VimConfig(name: "two", imgSize: 8, patchSize: 2, stride: 2, embedDim: 16, depth: 1, numClasses: 2))
        options.dataset = .imagefolder
        options.dataPath = root.path
        options.batchSize = 2
        let out = root.appendingPathComponent("run").path
        XCTAssertThrowsError(try ClassificationTrainer(options: options, outputDir: out, events: { _ in })) { error in
            guard case .unreadableImages(_, let images)? = error as? DatasetError else { return XCTFail("\(error)") }
            XCTAssertEqual(images.count, 1)
        }
        options.skipBadImages = true
        let box = EventBox()
        _ = try ClassificationTrainer(options: options, outputDir: out, events: box.append)
        let skipped = box.events.compactMap { event -> String? in
            if case let .skippedImages(path, count) = event { return "\(path) \(count)" }
            return nil
        }
        XCTAssertEqual(skipped, [root.appendingPathComponent("train").path + " 1"])
    }

    /// Checkpoints written before the option existed decode with it off; it round-trips.
    func testSkipBadImagesOptionDecodesFromOldCheckpoints() throws {
        var options = TrainOptions(model: VimConfig(name: "two", imgSize: 8, patchSize: 2, stride: 2, embedDim: 16, depth: 1, numClasses: 2))
        options.skipBadImages = true
        let json = try JSONEncoder().encode(options)
        XCTAssertEqual(try JSONDecoder().decode(TrainOptions.self, from: json).skipBadImages, true)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        XCTAssertNotNil(object.removeValue(forKey: "skipBadImages"))
        let old = try JSONDecoder().decode(TrainOptions.self, from: try JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(old.skipBadImages, false)
    }
}
