import XCTest
@testable import VisionMambaTraining

/// The learning curve and fusion-study charts: titled axes, whole-number epoch ticks, and a
/// marker per point so that a single epoch is visible.
final class LinePlotTests: XCTestCase {
    func epoch(_ e: Int, top1: Double = 50) -> EpochMetrics {
        EpochMetrics(epoch: e, trainLoss: 2, valLoss: 1.5, top1: top1, top5: 90, lr: 1e-3,
                     imagesPerSecond: 100, epochSeconds: 10, peakRSSMiB: 100)
    }

    /// The text of every element `<text ...>label</text>` whose attributes contain `marker`.
    func labels(_ svg: String, where marker: String) -> [String] {
        svg.split(separator: "\n").filter { $0.hasPrefix("<text") && $0.contains(marker) }.map { line in
            let start = line.firstIndex(of: ">")!, end = line.range(of: "</text>")!.lowerBound
            return String(line[line.index(after: start)..<end])
        }
    }

    func testOneEpochIsDrawnAsMarkers() {
        let svg = MetricsWriter.learningCurveSVG([epoch(0)])
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 3)   // train loss, val loss, top-1
        XCTAssertFalse(svg.contains("<polyline"))
        XCTAssertEqual(labels(svg, where: "y=\"366.0\""), ["0", "1"])       // the x ticks, below the frame
        for title in ["epoch", "cross-entropy loss", "validation top-1 (%)"] { XCTAssertTrue(svg.contains(">\(title)</text>"), title) }
    }

    func testEpochTicksAreWholeAndDistinct() {
        let plot = LinePlot(x: .init(title: "epoch", max: 25, integer: true), y: .init(title: "loss", max: 1), series: [])
        XCTAssertEqual(plot.ticks(plot.x), [0, 3, 6, 9, 12, 15, 18, 21, 24])
        let three = LinePlot(x: .init(title: "epoch", max: 3, integer: true), y: .init(title: "loss", max: 1), series: [])
        XCTAssertEqual(three.ticks(three.x), [0, 1, 2, 3])
        let svg = MetricsWriter.learningCurveSVG((0..<30).map { epoch($0, top1: Double($0)) })
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 3)
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 90)
    }

    func testFusionStudyChartHasTitledAxes() {
        let row = FusionStudy.Row(strategy: .none, fusion: nil, schedule: [4], secondsPerEpoch: 10, peakTensorMiB: 1,
                                  top1: 50, history: [epoch(0)])
        let svg = FusionStudy.svg([row])
        XCTAssertTrue(svg.contains(">training time (s)</text>"))
        XCTAssertTrue(svg.contains(">validation top-1 (%)</text>"))
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 1)
    }
}
