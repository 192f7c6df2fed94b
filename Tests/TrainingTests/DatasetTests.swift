import Foundation
import XCTest
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

    func testMissingDatasetNamesThePathAndWhatWasExpected() {
        XCTAssertThrowsError(try CIFARDataset(path: "/nonexistent/cifar", classes: 10, train: true)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/nonexistent/cifar") && text.contains("data_batch_1"), text)
        }
        XCTAssertThrowsError(try makeDataset("cifar10", path: nil, train: true)) { error in
            XCTAssertTrue("\(error)".contains("--data-path"))
        }
        XCTAssertThrowsError(try makeDataset("mnist", path: nil, train: true)) { error in
            XCTAssertTrue("\(error)".contains("digits, cifar10, cifar100"))
        }
    }
}
