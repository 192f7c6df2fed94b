import Foundation
import XCTest
import MambaIO
@testable import VisionMambaData

/// Damaged or missing dataset files, built in a temporary folder: each is refused with the
/// exact DatasetError (or FileError, for what the unpickler refuses), never a trap.
final class BadFileDatasetTests: XCTestCase {
    static let cifar = Bundle.module.bundleURL.appendingPathComponent("Resources/cifar")

    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-bad-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// A copy of the test CIFAR folder `name` in which `file` is replaced by `bytes`.
    func cifarCopy(_ name: String, replacing file: String, with bytes: [UInt8]) throws -> (folder: String, file: String) {
        let dir = tmp.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Self.cifar.appendingPathComponent(name), to: dir)
        let path = dir.appendingPathComponent(file).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (dir.path, path)
    }

    func record(label: UInt8, labelBytes: Int = 1) -> [UInt8] {
        [UInt8](repeating: label, count: labelBytes) + [UInt8](repeating: 7, count: 3072)
    }

    func assertThrows<E: Error & Equatable>(_ expected: E, _ body: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? E, expected, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), file: file, line: line)
        }
    }

    func testTruncatedCIFARBatch() throws {
        let good = [UInt8](try Data(contentsOf: Self.cifar.appendingPathComponent("cifar-10-batches-bin/data_batch_3.bin")))
        let (folder, file) = try cifarCopy("cifar-10-batches-bin", replacing: "data_batch_3.bin", with: Array(good.dropLast(100)))
        assertThrows(DatasetError.recordSizeMismatch(path: file, recordBytes: 3073, fileSize: good.count - 100),
                     try CIFARDataset(path: folder, classes: 10, train: true))
    }

    func testCIFARBatchOfTheWrongRecordSize() throws {
        // CIFAR-100 records (two label bytes) where CIFAR-10's are expected: 4 × 3,074 bytes.
        let records = (0..<4).flatMap { _ in record(label: 3, labelBytes: 2) }
        let (folder, file) = try cifarCopy("cifar-10-batches-bin", replacing: "test_batch.bin", with: records)
        assertThrows(DatasetError.recordSizeMismatch(path: file, recordBytes: 3073, fileSize: 4 * 3074),
                     try CIFARDataset(path: folder, classes: 10, train: false))
    }

    func testEmptyCIFARBatch() throws {
        let (folder, file) = try cifarCopy("cifar-10-batches-bin", replacing: "test_batch.bin", with: [])
        assertThrows(DatasetError.recordSizeMismatch(path: file, recordBytes: 3073, fileSize: 0),
                     try CIFARDataset(path: folder, classes: 10, train: false))
    }

    func testCIFARLabelOutOfRange() throws {
        let (folder, file) = try cifarCopy("cifar-10-batches-bin", replacing: "test_batch.bin",
                                           with: record(label: 1) + record(label: 12))
        assertThrows(DatasetError.labelOutOfRange(path: file, record: 1, label: 12, classes: 10),
                     try CIFARDataset(path: folder, classes: 10, train: false))
    }

    func testCIFARClassCountMustBe10Or100() {
        assertThrows(DatasetError.unsupportedClassCount(path: Self.cifar.path, classes: 7),
                     try CIFARDataset(path: Self.cifar.path, classes: 7, train: true))
    }

    func testMissingCIFAR() {
        assertThrows(DatasetError.missingCIFAR(path: tmp.path, classes: 100, train: false),
                     try CIFARDataset(path: tmp.path, classes: 100, train: false))
    }

    func testCIFARPythonBatchThatIsNotADict() throws {
        // PROTO 2, EMPTY_LIST, STOP: a valid pickle of the wrong shape.
        let (folder, file) = try cifarCopy("cifar-100-python", replacing: "test", with: [0x80, 0x02, 0x5D, 0x2E])
        assertThrows(DatasetError.malformedBatch(path: file, classes: 100), try CIFARDataset(path: folder, classes: 100, train: false))
    }

    func testCIFARPythonBatchWithAForeignGlobal() throws {
        let pickle: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [0x2E]
        let (folder, file) = try cifarCopy("cifar-100-python", replacing: "test", with: pickle)
        assertThrows(FileError.refusedGlobal(path: file, name: "os.system"), try CIFARDataset(path: folder, classes: 100, train: false))
    }

    func testImageFolderMissingOrEmpty() throws {
        assertThrows(DatasetError.missingFolder(path: tmp.appendingPathComponent("train").path),
                     try ImageFolderDataset(root: tmp.path, split: "train", size: 16, train: true))
        let split = tmp.appendingPathComponent("val")
        try FileManager.default.createDirectory(at: split, withIntermediateDirectories: true)
        assertThrows(DatasetError.noClassFolders(path: split.path), try ImageFolderDataset(root: tmp.path, split: "val", size: 16, train: false))
        // A class folder holding no images (a text file is not one).
        try FileManager.default.createDirectory(at: split.appendingPathComponent("cat"), withIntermediateDirectories: true)
        try Data("not an image".utf8).write(to: split.appendingPathComponent("cat/notes.txt"))
        assertThrows(DatasetError.emptyClasses(path: split.path, classes: ["cat"]), try ImageFolderDataset(root: tmp.path, split: "val", size: 16, train: false))
    }

    /// An ImageFolder image whose header reads and that ends as a JPEG should, but whose
    /// compressed pixels are damaged, passes the check when the dataset is built and fails when
    /// its batch is prepared, naming it.
    func testImageFolderWithDamagedPixels() throws {
        let cat = tmp.appendingPathComponent("val/cat")
        try FileManager.default.createDirectory(at: cat, withIntermediateDirectories: true)
        let bad = cat.appendingPathComponent("broken.jpg")
        let jpeg = [UInt8](try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../MambaIOTests/Resources/rgb.jpg")))
        // rgb.jpg's headers end at byte 623; its scan replaced by zeros, then EOI.
        try Data(jpeg.prefix(623) + [UInt8](repeating: 0, count: 100) + [0xFF, 0xD9]).write(to: bad)
        let data = try ImageFolderDataset(root: tmp.path, split: "val", size: 16, train: false)
        XCTAssertEqual(data.count, 1)
        XCTAssertThrowsError(try data.sample(0)) { error in
            guard case .decodeFailed(bad.path, "JPEG", _)? = error as? FileError else { return XCTFail("\(error)") }
        }
    }
}
