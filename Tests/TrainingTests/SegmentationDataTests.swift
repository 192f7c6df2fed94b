import Foundation
import XCTest
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
}
