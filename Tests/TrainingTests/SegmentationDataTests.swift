import Foundation
import XCTest
import MambaIO
import MambaTensor
@testable import VisionMambaData
@testable import VisionMambaTraining

/// The digit-scenes demo and mmseg's segmentation metrics.
final class SegmentationDataTests: XCTestCase {
    /// Areas by hand from mmseg's definition: 255 ignored, a label outside the classes dropped
    /// from the label areas but its prediction still counted, NaN classes left out of the means.
    func testMetricsMatchMmsegsDefinition() throws {
        var m = SegmentationMetrics(numClasses: 4)
        try m.add(prediction: [0, 1, 1, 2, 2, 0, 3], labels: [0, 1, 2, 2, 255, 5, 0])
        XCTAssertEqual(m.intersection, [1, 1, 1, 0])
        XCTAssertEqual(m.predicted, [2, 2, 1, 1])
        XCTAssertEqual(m.labelled, [2, 1, 2, 0])
        XCTAssertEqual(m.union, [3, 2, 2, 1])
        XCTAssertEqual(m.allAccuracy, 3.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(m.iou, [1.0 / 3, 0.5, 0.5, 0])
        XCTAssertEqual(Array(m.accuracy.prefix(3)), [0.5, 1, 0.5])
        XCTAssertTrue(m.accuracy[3].isNaN)
        XCTAssertEqual(m.meanIoU, (1.0 / 3 + 0.5 + 0.5) / 4, accuracy: 1e-12)
        XCTAssertEqual(m.meanAccuracy, 2.0 / 3, accuracy: 1e-12)

        // Two shards merged are the same as one pass over both.
        var a = SegmentationMetrics(numClasses: 4), b = SegmentationMetrics(numClasses: 4)
        try a.add(prediction: [0, 1, 1, 2], labels: [0, 1, 2, 2])
        try b.add(prediction: [2, 0, 3], labels: [255, 5, 0])
        a.merge(b)
        XCTAssertEqual(a, m)

        XCTAssertThrowsError(try m.add(prediction: [0, 1], labels: [0])) {
            XCTAssertEqual($0 as? TrainingError, .labelMapMismatch(predicted: 2, labelled: 1))
        }
    }

    func testDigitScenesAreDeterministicAndLabelEveryStroke() throws {
        let scenes = try DigitScenesDataset(split: .train), again = try DigitScenesDataset(split: .train)
        let digits = try DigitsDataset(split: .train)
        XCTAssertEqual(scenes.count, 1437)
        var seen = Set<UInt8>(), counts = [Int](repeating: 0, count: 5)
        for i in 0..<200 {
            let s = try scenes.sample(i), t = try again.sample(i)
            XCTAssertEqual(s.image, t.image)
            XCTAssertEqual(s.labels, t.labels)
            XCTAssertEqual([s.height, s.width], [64, 64])
            XCTAssertEqual(s.image.count, 3 * 64 * 64)
            // A pixel is labelled exactly where some digit's ink reaches one half.
            for p in 0..<(64 * 64) {
                XCTAssertEqual(s.labels[p] != 0, s.image[p] >= DigitScenesDataset.strokeThreshold, "scene \(i) pixel \(p)")
                XCTAssertLessThanOrEqual(s.labels[p], 10)
            }
            // Scene i's own digit is drawn last, so its class is always there.
            XCTAssertTrue(s.labels.contains(UInt8(try digits.sample(i).label + 1)), "scene \(i)")
            let layout = scenes.layout(i)
            counts[layout.count] += 1
            XCTAssertEqual(layout.last?.digit, i)
            for d in layout {
                let extent = Int((8 * d.scale).rounded(.up))
                XCTAssertTrue(d.scale >= 2 && d.scale <= 6 && d.x + extent <= 64 && d.y + extent <= 64, "\(d)")
            }
            seen.formUnion(s.labels)
        }
        XCTAssertEqual(seen, Set(0...10))
        XCTAssertEqual(counts[0], 0)
        XCTAssertTrue(counts[1...4].allSatisfy { $0 > 30 }, "\(counts)")
    }

    /// Validation scenes draw only validation digits: the layouts index the split they belong to.
    func testDigitScenesKeepTheDigitsSplit() throws {
        let val = try DigitScenesDataset(split: .val, size: 96)
        XCTAssertEqual(val.count, 360)
        for i in 0..<val.count { XCTAssertTrue(val.layout(i).allSatisfy { (0..<360).contains($0.digit) }) }
        XCTAssertEqual(try val.sample(359).labels.count, 96 * 96)
        XCTAssertThrowsError(try DigitScenesDataset(split: .train, size: 32)) {
            XCTAssertEqual($0 as? DatasetError, .invalidSceneSize(size: 32, allowed: 64...1024))
        }
    }

    /// mmseg's folder layout: images/<split> paired with annotations/<split> by relative path,
    /// ADE20K's reduce_zero_label (0 → 255, v → v − 1, 255 kept), and each broken pair refused
    /// by name.
    func testSegmentationFolderPairsImagesWithLabelMaps() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("seg-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        func write(_ data: Data, _ relative: String) throws {
            let url = URL(fileURLWithPath: root).appendingPathComponent(relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url)
        }
        // A 3×2 image whose red channel counts pixels, and its label map.
        let pixels: [UInt8] = (0..<6).flatMap { [UInt8($0 * 40), 7, 200] }
        let image = RGBImage(width: 3, height: 2, pixels: pixels)
        try write(PNGEncoder.rgb(image), "images/training/a.png")
        try write(PNGEncoder.grey([0, 1, 2, 150, 255, 3], width: 3, height: 2), "annotations/training/a.png")
        try write(PNGEncoder.rgb(image), "images/training/sub/b.png")
        try write(PNGEncoder.grey([1, 1, 1, 1, 1, 1], width: 3, height: 2), "annotations/training/sub/b.png")
        try FileManager.default.createDirectory(atPath: root + "/images/validation", withIntermediateDirectories: true)

        let ade = try SegmentationFolderDataset.ade20k(root: root, split: .training)
        XCTAssertEqual(ade.count, 2)
        XCTAssertEqual(ade.pairs.map(\.labels), [root + "/annotations/training/a.png", root + "/annotations/training/sub/b.png"])
        let a = try ade.sample(0)
        XCTAssertEqual([a.height, a.width], [2, 3])
        XCTAssertEqual(a.labels, [255, 0, 1, 149, 255, 2])
        XCTAssertEqual(a.image.count, 18)
        XCTAssertEqual(Array(a.image[0..<6]), (0..<6).map { Float($0 * 40) / 255 })   // CHW: the red plane first
        XCTAssertEqual(Array(a.image[6..<12]), [Float](repeating: 7.0 / 255, count: 6))
        XCTAssertEqual(try ade.sample(1).labels, [0, 0, 0, 0, 0, 0])

        // Without reduce_zero_label, 150 is out of range for 150 classes; 255 stays ignored.
        let raw = try SegmentationFolderDataset(root: root, split: .training, numClasses: 150)
        XCTAssertThrowsError(try raw.sample(0)) {
            XCTAssertEqual($0 as? DatasetError, .labelOutOfRange(path: root + "/annotations/training/a.png", record: 3, label: 150, classes: 150))
        }
        XCTAssertEqual(try SegmentationFolderDataset(root: root, split: .training, numClasses: 151).sample(0).labels, [0, 1, 2, 150, 255, 3])

        XCTAssertThrowsError(try SegmentationFolderDataset.ade20k(root: root, split: .validation)) {
            XCTAssertEqual($0 as? DatasetError, .missingSegmentationFolder(path: root + "/annotations/validation"))
        }
        XCTAssertThrowsError(try SegmentationFolderDataset(root: root, split: .training, numClasses: 256)) {
            XCTAssertEqual($0 as? DatasetError, .invalidSegmentationClasses(path: root, classes: 256))
        }
        // A label map of another size, and then an image without one.
        try write(PNGEncoder.grey([1, 1], width: 2, height: 1), "annotations/training/sub/b.png")
        XCTAssertThrowsError(try ade.sample(1)) {
            XCTAssertEqual($0 as? DatasetError, .labelMapSizeMismatch(path: root + "/annotations/training/sub/b.png", found: [1, 2], image: [2, 3]))
        }
        try write(PNGEncoder.rgb(image), "images/training/c.jpg.png")
        XCTAssertThrowsError(try SegmentationFolderDataset.ade20k(root: root, split: .training)) {
            XCTAssertEqual($0 as? DatasetError, .missingLabelMap(image: root + "/images/training/c.jpg.png", expected: root + "/annotations/training/c.jpg.png"))
        }
    }

    /// What the encoder writes, the decoders read back exactly.
    func testPNGEncoderRoundTrips() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let grey = (0..<35).map { UInt8($0 * 7) }
        try PNGEncoder.grey(grey, width: 7, height: 5).write(to: URL(fileURLWithPath: path))
        let map = try LabelMap.decode(path)
        XCTAssertEqual([map.width, map.height], [7, 5])
        XCTAssertEqual(map.labels, grey)
        let rgb = RGBImage(width: 5, height: 7, pixels: (0..<105).map { UInt8(($0 * 37) % 256) })
        try PNGEncoder.rgb(rgb).write(to: URL(fileURLWithPath: path))
        let back = try ImageDecoder.decode(path)
        XCTAssertEqual([back.width, back.height], [5, 7])
        XCTAssertEqual(back.pixels, rgb.pixels)
        XCTAssertThrowsError(try PNGEncoder.grey([1, 2, 3], width: 2, height: 2))
    }

    /// mmcv's keep-ratio rescale, the label resize (nearest, floor), flips and padding.
    func testSegmentationTransformGeometry() throws {
        XCTAssertTrue(SegmentationTransform.keepRatioSize(height: 375, width: 500, long: 2048, short: 512) == (512, 683))
        XCTAssertTrue(SegmentationTransform.keepRatioSize(height: 100, width: 1000, long: 2048, short: 512) == (205, 2048))
        let s = SegmentationSample(image: (0..<(3 * 6)).map { Float($0) / 18 }, labels: [0, 1, 2, 3, 4, 5], height: 2, width: 3)
        let up = SegmentationTransform.resize(s, height: 4, width: 6)
        XCTAssertEqual(up.labels, [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5])
        // Half-pixel bilinear: output x 1 of 6 sits at input 0.25 (edge-clamped at x 0).
        XCTAssertEqual(up.image[1], (0 * 0.75 + 1.0 / 18 * 0.25) * 1, accuracy: 1e-6)
        XCTAssertEqual(up.image[0], 0)
        let flipped = SegmentationTransform.flipped(s)
        XCTAssertEqual(flipped.labels, [2, 1, 0, 5, 4, 3])
        XCTAssertEqual(Array(flipped.image[0..<3]), Array(s.image[0..<3].reversed()))
        XCTAssertEqual(SegmentationTransform.flipped(flipped).image, s.image)
        var t = SegmentationTransform.ade20k(crop: 4)
        t.mean = [0, 0, 0]; t.std = [1, 1, 1]
        let padded = t.pad(s, to: 4)
        XCTAssertEqual([padded.height, padded.width], [4, 4])
        XCTAssertEqual(padded.labels, [0, 1, 2, 255, 3, 4, 5, 255, 255, 255, 255, 255, 255, 255, 255, 255])
        XCTAssertEqual(padded.image[5], s.image[4])
        XCTAssertEqual(padded.image[15], 0)
    }

    /// The whole training pipeline on digit scenes: a fixed-size, normalised, deterministic crop
    /// whose labels are the scene's own (or 255 where padded), and an evaluation resize that keeps
    /// the original labels.
    func testSegmentationTrainingPipeline() throws {
        let scenes = try DigitScenesDataset(split: .train)
        var t = SegmentationTransform.ade20k(crop: 48)
        t.scale = (256, 64)
        var sawPadding = false
        for i in 0..<20 {
            let sample = try scenes.sample(i)
            var a = SeededGenerator(seed: UInt64(i)), b = SeededGenerator(seed: UInt64(i))
            let x = t.train(sample, rng: &a), y = t.train(sample, rng: &b)
            XCTAssertEqual(x.image, y.image)
            XCTAssertEqual(x.labels, y.labels)
            XCTAssertEqual([x.height, x.width], [48, 48])
            XCTAssertEqual(x.image.count, 3 * 48 * 48)
            XCTAssertTrue(x.labels.allSatisfy { $0 <= 10 || $0 == 255 })
            XCTAssertTrue(x.image.allSatisfy { $0.isFinite && abs($0) < 3 })
            sawPadding = sawPadding || x.labels.contains(255)
        }
        XCTAssertTrue(sawPadding, "ratios below 0.75 leave a 64 px scene smaller than the crop")
        var c = SeededGenerator(seed: 1), d = SeededGenerator(seed: 2)
        XCTAssertNotEqual(t.train(try scenes.sample(0), rng: &c).image, t.train(try scenes.sample(0), rng: &d).image)
        let eval = t.evaluate(try scenes.sample(0))
        XCTAssertEqual([eval.height, eval.width], [64, 64])
        XCTAssertEqual(eval.labels, try scenes.sample(0).labels)
    }

    /// Photometric steps stay in range; an unchanged HSV round trip gives the pixels back.
    func testPhotometricDistortion() {
        var rng = SeededGenerator(seed: 3)
        let image = (0..<(3 * 50)).map { _ in Float(rng.uniform()) }
        for seed in 0..<10 {
            var r = SeededGenerator(seed: UInt64(seed))
            XCTAssertTrue(PhotometricDistortion.apply(image, plane: 50, rng: &r).allSatisfy { $0 >= 0 && $0 <= 1 })
        }
        var same = image
        PhotometricDistortion.mapHSV(&same, plane: 50) { _, _, _ in }
        for (a, b) in zip(same, image) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    /// ADE20K's bundled names and palette, extended for more classes; masks drawn and overlaid.
    func testPaletteAndMaskDrawing() throws {
        let (names, palette) = try SegmentationPalette.ade20k()
        XCTAssertEqual(names.count, 150)
        XCTAssertEqual(names[0], "wall")
        XCTAssertEqual(names[149], "flag")
        XCTAssertTrue(palette.colors[0] == (120, 120, 120))
        XCTAssertTrue(palette.colors[149] == (92, 0, 255))
        let more = try SegmentationPalette.standard(classes: 200)
        XCTAssertEqual(more.colors.count, 200)
        XCTAssertTrue(more.colors[3] == palette.colors[3])
        let mask = more.draw(labels: [0, 1, 255, 199], width: 2, height: 2)
        XCTAssertEqual(Array(mask.pixels[0..<6]), [120, 120, 120, 180, 120, 120])
        XCTAssertEqual(Array(mask.pixels[6..<9]), [0, 0, 0])
        let photo = RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 100, count: 12))
        let overlay = try more.overlay(mask, on: photo)
        XCTAssertEqual(Array(overlay.pixels[0..<3]), [110, 110, 110])
        XCTAssertThrowsError(try more.overlay(mask, on: RGBImage(width: 1, height: 1, pixels: [0, 0, 0])))
    }
}
