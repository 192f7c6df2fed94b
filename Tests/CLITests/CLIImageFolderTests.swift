import Foundation
import MambaIO
import XCTest

/// ImageFolder data with an unreadable image: refused up front in one line naming it, or, with
/// --skip-bad-images, left out with one line that counts it.
extension CLITests {
    /// val/cat/good.png, val/cat/bad.png (IHDR with a wrong CRC), val/dog/good.jpg; the same in train/.
    func folderWithABadImage() throws -> (folder: URL, bad: String) {
        let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../MambaIOTests/Resources").standardized
        let folder = tmp.appendingPathComponent("bad-folder")
        var png = [UInt8](try Data(contentsOf: images.appendingPathComponent("rgb.png")))
        png.replaceSubrange(16..<20, with: [0, 0, 0, 0])                 // IHDR width 0, so its CRC no longer matches
        for split in ["train", "val"] {
            for (cls, file, source) in [("cat", "good.png", "rgb.png"), ("dog", "good.jpg", "rgb.jpg")] {
                let dir = folder.appendingPathComponent("\(split)/\(cls)")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: images.appendingPathComponent(source), to: dir.appendingPathComponent(file))
            }
            try Data(png).write(to: folder.appendingPathComponent("\(split)/cat/bad.png"))
        }
        return (folder, folder.appendingPathComponent("val/cat/bad.png").path)
    }

    func testEvalOnAFolderWithABadImage() throws {
        let (folder, bad) = try folderWithABadImage()
        let args = ["eval", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors"),
                    "--data-set", "imagefolder", "--data", folder.path, "--threads", "1"]
        try assertFails(args, mentioning: ["1 image file cannot be read", bad, "IHDR: CRC error"])
        let r = try run(args + ["--skip-bad-images"])
        XCTAssertEqual(r.code, 0, r.err)
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.first.map(String.init), "skipped 1 unreadable image file in \(folder.path)/val", r.out)
        XCTAssertEqual(lines.count, 2, r.out)
        XCTAssertTrue(r.out.contains("(2 images)"), r.out)
    }

    func testTrainOnAFolderWithABadImage() throws {
        let (folder, _) = try folderWithABadImage()
        let config = tmp.appendingPathComponent("two.json").path
        try #"{"name": "two", "img_size": 8, "patch_size": 2, "stride": 2, "embed_dim": 16, "depth": 1, "num_classes": 2}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let args = ["train", "--model", config, "--data-set", "imagefolder", "--data-path", folder.path, "--epochs", "1",
                    "--batch-size", "2", "--warmup-epochs", "0", "--output-dir", tmp.appendingPathComponent("run").path, "--threads", "1"]
        try assertFails(args, mentioning: ["\(folder.path)/train: 1 image file cannot be read"])
        let r = try run(args + ["--skip-bad-images"])
        XCTAssertEqual(r.code, 0, r.err)
        let skipped = r.out.split(separator: "\n").filter { $0.hasPrefix("skipped") }
        XCTAssertEqual(skipped, ["skipped 1 unreadable image file in \(folder.path)/train", "skipped 1 unreadable image file in \(folder.path)/val"], r.out)
    }
}
