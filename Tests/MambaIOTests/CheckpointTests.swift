import Foundation
import XCTest
@testable import MambaIO

/// Reading checkpoints as released, and refusing damaged or hostile ones with one clear line.
final class CheckpointTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources")
    static let vimFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../VisionMambaTests/Resources").standardized

    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func resource(_ name: String) -> String { Self.resources.appendingPathComponent(name).path }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = tmp.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func assertThrows(_ expected: FileError, _ body: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? FileError, expected, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)", file: file, line: line)
        }
    }

    func testPthAndSafetensorsOfTheFixtureAgree() throws {
        let pth = try CheckpointFile.readStateDict(Self.vimFixtures.appendingPathComponent("vim-micro.pth").path)
        let st = try CheckpointFile.readStateDict(Self.vimFixtures.appendingPathComponent("vim-micro.safetensors").path)
        XCTAssertEqual(Set(pth.names), Set(st.names))
        XCTAssertEqual(pth.names.count, 75)
        for name in st.names {
            XCTAssertEqual(pth[name]!.shape, st[name]!.shape, name)
            XCTAssertEqual(pth[name]!.floats(), st[name]!.floats(), name)
        }
        // The .pth keeps the official state_dict order.
        XCTAssertEqual(Array(pth.names.prefix(3)), ["cls_token", "pos_embed", "patch_embed.proj.weight"])
    }

    func testFullTrainingCheckpointLoadsAsInertData() throws {
        let ckpt = try TorchCheckpoint.read(resource("training-checkpoint.pth"))
        XCTAssertEqual(ckpt.topLevelKeys, ["model", "optimizer", "lr_scheduler", "epoch", "model_ema", "scaler", "args"])
        guard case .dict(let top) = ckpt.root, case .object(let args)? = top["args"] else { return XCTFail("args") }
        XCTAssertEqual(args.type, "argparse.Namespace")
        XCTAssertEqual(args["model"]?.stringValue, "vim_tiny")
        if case .int(let epochs)? = args["epochs"] { XCTAssertEqual(epochs, 300) } else { XCTFail("epochs") }
        XCTAssertEqual(top["scaler"]?.stringValue, "none")

        // "model" wins over "model_ema"; "module." is stripped; every dtype converts.
        let sd = try ckpt.stateDict()
        XCTAssertEqual(sd.names, ["weight", "half", "bf16", "double", "tail", "transposed", "num_batches"])
        let w = (0..<12).map { Float($0) / 8 - 0.5 }
        XCTAssertEqual(sd["weight"]!.floats(), w)
        XCTAssertEqual(sd["weight"]!.dtype, .float32)
        XCTAssertEqual(sd["half"]!.floats(), [1.5, -2.25, 65504, 0.000061035156])
        XCTAssertEqual(sd["bf16"]!.floats(), [1.0, -3.5, 0x1p100, 0.15625])
        XCTAssertEqual(sd["double"]!.floats(), [0.1, -7])
        XCTAssertEqual(sd["tail"]!.floats(), [6, 7, 8, 9])                 // storage offset 6
        XCTAssertEqual(sd["transposed"]!.shape, [4, 3])
        XCTAssertEqual(sd["transposed"]!.floats(), (0..<12).map { w[($0 % 3) * 4 + $0 / 3] })  // copied to row-major
        XCTAssertEqual(sd["num_batches"]!.shape, [])
        XCTAssertEqual(sd["num_batches"]!.int64s(), [5])
    }

    func testModelEmaIsUsedWhenItIsTheOnlyStateDict() throws {
        let sd = try CheckpointFile.readStateDict(resource("ema-only.pth"))
        XCTAssertEqual(sd.names, ["weight"])
        XCTAssertEqual(sd["weight"]!.floats(), [0, 1, 2])
    }

    func testForeignGlobalIsRefusedByName() throws {
        assertThrows(.refusedGlobal(path: resource("evil.pth"), name: "posix.system"), try CheckpointFile.readStateDict(resource("evil.pth")))
        // The same with builtins.eval spelt as a GLOBAL opcode inside a valid zip.
        let pickle: [UInt8] = [0x80, 0x02] + Array("cbuiltins\neval\n".utf8) + [0x58, 1, 0, 0, 0, 0x31, 0x85, 0x52, 0x2E]
        let path = tmp.appendingPathComponent("eval.pth").path
        try StoredZip.write([("archive/data.pkl", pickle)], to: path)
        assertThrows(.refusedGlobal(path: path, name: "builtins.eval"), try CheckpointFile.readStateDict(path))
        XCTAssertTrue("\(FileError.refusedGlobal(path: path, name: "builtins.eval"))".contains("refusing pickle global 'builtins.eval'"))
    }

    func testDamagedFilesGiveOneLineErrors() throws {
        let good = [UInt8](try Data(contentsOf: Self.vimFixtures.appendingPathComponent("vim-micro.pth")))
        let noDirectory = "no end-of-central-directory record (truncated?)"
        let half = write("half.pth", Array(good.prefix(good.count / 2)))
        assertThrows(.damagedArchive(path: half, detail: noDirectory), try CheckpointFile.readStateDict(half))
        let head = write("head.pth", Array(good.prefix(40)))
        assertThrows(.damagedArchive(path: head, detail: noDirectory), try CheckpointFile.readStateDict(head))
        // Random bytes read as safetensors: whatever the header length, one line naming the file.
        var g = SeededBytes(seed: 1)
        let random = write("random.bin", (0..<5000).map { _ in g.next() })
        XCTAssertThrowsError(try CheckpointFile.readStateDict(random)) { error in
            XCTAssertTrue(error is FileError && "\(error)".hasPrefix(random) && !"\(error)".contains("\n"), "\(error)")
        }
        let empty = write("empty.pth", [])
        assertThrows(.empty(path: empty), try CheckpointFile.readStateDict(empty))
        let missing = tmp.appendingPathComponent("missing.pth").path
        assertThrows(.notFound(path: missing), try CheckpointFile.readStateDict(missing))
        assertThrows(.isDirectory(path: tmp.path), try CheckpointFile.readStateDict(tmp.path))
        let legacy = write("legacy.pth", [0x80, 0x02, 0x8A, 0x0A] + [UInt8](repeating: 0, count: 20))
        assertThrows(.legacyTorchFormat(path: legacy), try CheckpointFile.readStateDict(legacy))
        // A pickle cut short inside an intact zip: BINUNICODE at byte 5 claims 65,535 bytes from byte 10.
        let cut: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x58, 0xFF, 0xFF, 0, 0]
        let path = tmp.appendingPathComponent("cut.pth").path
        try StoredZip.write([("archive/data.pkl", cut)], to: path)
        assertThrows(.malformedPickle(path: path, offset: 10, detail: "truncated"), try CheckpointFile.readStateDict(path))
    }

    func testDamagedSafetensors() throws {
        func header(_ json: String, data: Int = 0) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: 8)
            let j = Array(json.utf8)
            withUnsafeBytes(of: UInt64(j.count).littleEndian) { for i in 0..<8 { b[i] = $0[i] } }
            return b + j + [UInt8](repeating: 0, count: data)
        }
        var huge = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { for i in 0..<8 { huge[i] = $0[i] } }
        let hugePath = write("huge.safetensors", huge)
        assertThrows(.headerTooLarge(path: hugePath, length: 1 << 40, limit: SafeTensors.maxHeaderBytes), try SafeTensors.read(hugePath))
        let json = write("json.safetensors", header("{not json"))
        assertThrows(.malformedHeader(path: json, detail: "not a JSON object"), try SafeTensors.read(json))
        let off = write("off.safetensors", header(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 8))
        assertThrows(.dataOutOfBounds(path: off, tensor: "w", begin: 0, end: 16, available: 8), try SafeTensors.read(off))
        let dtype = write("dtype.safetensors", header(#"{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: 4))
        assertThrows(.unsupportedDType(path: dtype, tensor: "w", dtype: "Q7"), try SafeTensors.read(dtype))
        let shape = write("shape.safetensors", header(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8))
        assertThrows(.byteCountMismatch(path: shape, tensor: "w", expected: 12, found: 8), try SafeTensors.read(shape))
        XCTAssertEqual("\(FileError.byteCountMismatch(path: shape, tensor: "w", expected: 12, found: 8))",
                       "\(shape): tensor 'w': shape and dtype need 12 bytes, data_offsets give 8")
    }

    func testSafetensorsRoundTrip() throws {
        var file = TensorFile(metadata: ["format": "pt"])
        file.append("b", StoredTensor(shape: [2, 3], floats: [1, -2, 3.5, 0, .greatestFiniteMagnitude, -0.125]))
        file.append("a", StoredTensor(shape: [3], int64s: [Int64.min, 0, 42]))
        let path = tmp.appendingPathComponent("rt.safetensors").path
        try SafeTensors.write(file, to: path)
        let back = try SafeTensors.read(path)
        XCTAssertEqual(back.names, ["b", "a"])
        XCTAssertEqual(back["b"]!.floats(), [1, -2, 3.5, 0, .greatestFiniteMagnitude, -0.125])
        XCTAssertEqual(back["a"]!.int64s(), [Int64.min, 0, 42])
        XCTAssertEqual(back.metadata["format"], "pt")
        // The write was atomic: no temporary file is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["rt.safetensors"])
    }
}

/// Deterministic bytes for damaged-file tests.
struct SeededBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt8 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

/// Writes a minimal stored zip (what torch.save writes) for hand-made pickles.
enum StoredZip {
    static func write(_ entries: [(String, [UInt8])], to path: String) throws {
        var out = [UInt8](), central = [UInt8]()
        func u16(_ v: Int, _ a: inout [UInt8]) { a += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int, _ a: inout [UInt8]) { u16(v & 0xFFFF, &a); u16(v >> 16 & 0xFFFF, &a) }
        for (name, data) in entries {
            let offset = out.count, n = Array(name.utf8)
            u32(0x0403_4b50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u32(0, &out); u32(0, &out)
            u32(data.count, &out); u32(data.count, &out); u16(n.count, &out); u16(0, &out); out += n + data
            u32(0x0201_4b50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(0, &central)
            u32(0, &central); u32(0, &central); u32(data.count, &central); u32(data.count, &central)
            u16(n.count, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central)
            u32(0, &central); u32(offset, &central); central += n
        }
        let dirOffset = out.count
        out += central
        u32(0x0605_4b50, &out); u16(0, &out); u16(0, &out); u16(entries.count, &out); u16(entries.count, &out)
        u32(central.count, &out); u32(dirOffset, &out); u16(0, &out)
        try Data(out).write(to: URL(fileURLWithPath: path))
    }
}

final class TorchWriterTests: XCTestCase {
    /// Writing the torch.save layout and reading it back gives the same tensors, with every
    /// storage 64-byte aligned and valid CRC-32s.
    func testPthRoundTrip() throws {
        var file = TensorFile()
        file.append("a.weight", StoredTensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, -6]))
        file.append("b", StoredTensor(shape: [4], floats: [0.5, 0.25, -1, 7]))
        file.append("steps", StoredTensor(shape: [], int64s: [12]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID().uuidString).pth").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try TorchCheckpointWriter.write(file, to: path)
        let ckpt = try TorchCheckpoint.read(path)
        XCTAssertEqual(ckpt.topLevelKeys, ["model"])
        let back = try ckpt.stateDict()
        XCTAssertEqual(back.names, file.names)
        XCTAssertEqual(back["a.weight"]!.shape, [2, 3])
        XCTAssertEqual(back["a.weight"]!.floats(), [1, 2, 3, 4, 5, -6])
        XCTAssertEqual(back["steps"]!.int64s(), [12])
        let archive = try ZipArchive(path)
        for name in archive.names where name.contains("/data/") { XCTAssertEqual(archive.entries[name]!.dataOffset % 64, 0, name) }
        XCTAssertEqual(StoredZipWriter.crc32(Array("123456789".utf8)), 0xCBF4_3926)   // the standard check value
    }
}

/// The hand-written half → float widening against Swift's Float16 for every bit pattern
/// (Float16 exists on this platform; the library avoids it for Intel Macs).
final class HalfPrecisionTests: XCTestCase {
    func testEveryHalfWidensLikeFloat16() {
        #if !(os(macOS) && arch(x86_64))
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let found = floatFromHalf(bits)
            if expected.isNaN {
                XCTAssertTrue(found.isNaN, "\(bits)")
            } else {
                XCTAssertEqual(found.bitPattern, expected.bitPattern, "\(bits)")
            }
        }
        #endif
    }
}
