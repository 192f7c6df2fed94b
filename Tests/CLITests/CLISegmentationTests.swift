import Foundation
import MambaIO
import XCTest

/// A segmentation run from the command line: train on the digit scenes, resume it, evaluate it,
/// draw a mask and an overlay, time it.
extension CLITests {
    func testSegmentationTrainResumeEvalPredictBench() throws {
        let out = tmp.appendingPathComponent("seg").path
        let train = ["train", "--model", "upernet-vim-digits", "--iterations", "2", "--eval-interval", "2", "--eval-images", "2",
                     "--batch-size", "2", "--output-dir", out, "--threads", "1"]
        let r = try run(train)
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("on digit-scenes for 2 iterations"), r.out)
        XCTAssertTrue(r.out.contains("done: mIoU"), r.out)
        let resumed = try run(["train", "--resume", out, "--iterations", "4", "--threads", "1"])
        XCTAssertEqual(resumed.code, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("extending the schedule from 2 to 4 iterations"), resumed.out)
        XCTAssertEqual(try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count, 2)
        // Refused before anything runs (usage errors: argument-parser's exit code).
        for (args, needle) in [(["train", "--resume", out, "--iterations", "6", "--lr", "1e-2"], "remove --lr"),
                               (["train", "--model", "vim-digits", "--iterations", "3"], "need a segmentation model")] {
            let refused = try run(args)
            XCTAssertNotEqual(refused.code, 0)
            XCTAssertTrue(refused.err.contains(needle), refused.err)
        }

        let checkpoint = out + "/checkpoint.safetensors"
        let e = try run(["eval", "--weights", checkpoint, "--threads", "1"])
        XCTAssertEqual(e.code, 0, e.err)
        XCTAssertTrue(e.out.contains("on digit-scenes (360 images): mIoU"), e.out)
        XCTAssertTrue(e.out.contains("digit 9"), e.out)

        let image = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../MambaIOTests/Resources/rgb.png").standardized.path
        let mask = tmp.appendingPathComponent("mask.png").path, overlay = tmp.appendingPathComponent("overlay.png").path
        let p = try run(["predict", image, "--weights", checkpoint, "--output", mask, "--overlay", overlay, "--threads", "1"])
        XCTAssertEqual(p.code, 0, p.err)
        let picture = try ImageDecoder.decode(image), drawn = try ImageDecoder.decode(mask), blended = try ImageDecoder.decode(overlay)
        XCTAssertEqual([drawn.width, drawn.height], [picture.width, picture.height])
        XCTAssertEqual([blended.width, blended.height], [picture.width, picture.height])
        // Every mask pixel is a palette colour; the overlay halves the image and the mask.
        XCTAssertTrue(stride(from: 0, to: drawn.pixels.count, by: 3).allSatisfy { i in
            (0..<11).contains { c in [[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80],
                                      [140, 140, 140], [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255]][c] == drawn.pixels[i..<(i + 3)].map(Int.init) }
        })
        XCTAssertEqual(Int(blended.pixels[0]), Int((Double(picture.pixels[0]) / 2 + Double(drawn.pixels[0]) / 2).rounded()))
        let again = try run(["predict", image, "--weights", checkpoint, "--output", mask])
        XCTAssertNotEqual(again.code, 0)
        XCTAssertTrue(again.err.contains("exists"), again.err)

        let pyramid = tmp.appendingPathComponent("pyramid.safetensors").path
        let f = try run(["features", image, image, "--weights", checkpoint, "--output", pyramid, "--threads", "1"])
        XCTAssertEqual(f.code, 0, f.err)
        let levels = try SafeTensors.read(pyramid)
        XCTAssertEqual((0..<4).map { levels["level.\($0)"]?.shape ?? [] }, [[2, 64, 16, 16], [2, 64, 8, 8], [2, 64, 4, 4], [2, 64, 2, 2]])

        let b = try run(["bench", "--model", "upernet-vim-digits", "--batch", "1", "--iterations", "1", "--json", "--threads", "1"])
        XCTAssertEqual(b.code, 0, b.err)
        XCTAssertTrue(b.out.contains("\"images_per_second\""), b.out)
    }

    /// flops of the segmentors: by part, DyVM's token schedule, and only the options that apply.
    func testFlopsOfSegmentors() throws {
        let vim = try run(["flops", "--model", "upernet-vim-tiny", "--json"])
        XCTAssertEqual(vim.code, 0, vim.err)
        let dyvm = try run(["flops", "--model", "upernet-dyvm-tiny", "--json"])
        XCTAssertEqual(dyvm.code, 0, dyvm.err)
        func parsed(_ out: String) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        }
        let (v, d) = (try parsed(vim.out), try parsed(dyvm.out))
        XCTAssertEqual(d["tokens"] as? [Int], [1024, 819, 655, 524].flatMap { Array(repeating: $0, count: 6) })
        let (vb, db) = (try XCTUnwrap(v["backbone_gflop"] as? Double), try XCTUnwrap(d["backbone_gflop"] as? Double))
        XCTAssertLessThan(db, vb * 0.8)
        XCTAssertEqual(v["decode_head_gflop"] as? Double, d["decode_head_gflop"] as? Double)
        let text = try run(["flops", "--model", "upernet-vim-small", "--img-size", "640"])
        XCTAssertEqual(text.code, 0, text.err)
        XCTAssertTrue(text.out.contains("at 640×640 px"), text.out)
        let refused = try run(["flops", "--model", "upernet-vim-tiny", "--fusion-strategy", "all", "--fusion-tokens", "2"])
        XCTAssertEqual(refused.code, 64)
        XCTAssertTrue(refused.err.contains("--img-size, --gate-rate and --json"), refused.err)
    }
}
