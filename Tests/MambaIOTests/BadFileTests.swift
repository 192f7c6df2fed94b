import Foundation
import XCTest
@testable import MambaIO

/// Damaged and hostile files, built byte by byte: each is refused with the exact FileError case,
/// before any allocation or copy its sizes would ask for, and its message is one bounded line.
final class BadFileTests: XCTestCase {
    static let resources = Bundle.module.bundleURL.appendingPathComponent("Resources")

    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = tmp.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func assertThrows(_ expected: FileError, _ body: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? FileError, expected, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)", file: file, line: line)
        }
    }

    // MARK: - safetensors

    /// An 8-byte header length, the JSON header, then `data` zero bytes of data section.
    func safetensors(_ json: String, data: Int = 0, claimedLength: UInt64? = nil) -> [UInt8] {
        let j = Array(json.utf8)
        let length = withUnsafeBytes(of: (claimedLength ?? UInt64(j.count)).littleEndian) { Array($0) }
        return length + j + [UInt8](repeating: 0, count: data)
    }

    func testSafetensorsShorterThanItsLengthField() {
        let path = write("short.safetensors", [1, 0, 0, 0, 0])
        assertThrows(.truncated(path: path, needed: 8, available: 5), try SafeTensors.read(path))
    }

    func testSafetensorsHeaderLengthBeyondTheFile() {
        let path = write("beyond.safetensors", safetensors(#"{"w":{}}"#, claimedLength: 100))
        assertThrows(.truncated(path: path, needed: 108, available: 16), try SafeTensors.read(path))
    }

    func testSafetensorsHeaderLengthOverTheLimit() {
        let path = write("huge.safetensors", safetensors("{}", data: 8, claimedLength: UInt64.max))
        assertThrows(.headerTooLarge(path: path, length: UInt64.max, limit: SafeTensors.maxHeaderBytes), try SafeTensors.read(path))
    }

    func testSafetensorsShapeTimesDTypeThatWouldWrap() {
        // 2^31 · 2^31 · 4 bytes = 2^64: a wrapping product would be 0 and match offsets [0, 0].
        let path = write("wrap.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}}"#))
        assertThrows(.sizeOverflow(path: path, tensor: "w"), try SafeTensors.read(path))
        // 2^62 one-byte elements fit in an Int, and then do not match the offsets.
        let big = write("big.safetensors", safetensors(#"{"w":{"dtype":"U8","shape":[2147483648,2147483648],"data_offsets":[0,0]}}"#))
        assertThrows(.byteCountMismatch(path: big, tensor: "w", expected: 1 << 62, found: 0), try SafeTensors.read(big))
    }

    func testSafetensorsOffsetsOutOfRange() {
        let beyond = write("beyond-data.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 8))
        assertThrows(.dataOutOfBounds(path: beyond, tensor: "w", begin: 0, end: 16, available: 8), try SafeTensors.read(beyond))
        let negative = write("negative.safetensors",
                             safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-9223372036854775808,4]}}"#, data: 8))
        assertThrows(.dataOutOfBounds(path: negative, tensor: "w", begin: Int.min, end: 4, available: 8), try SafeTensors.read(negative))
        let reversed = write("reversed.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: 8))
        assertThrows(.dataOutOfBounds(path: reversed, tensor: "w", begin: 8, end: 4, available: 8), try SafeTensors.read(reversed))
        let far = write("far.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775803,9223372036854775807]}}"#))
        assertThrows(.dataOutOfBounds(path: far, tensor: "w", begin: Int.max - 4, end: Int.max, available: 0), try SafeTensors.read(far))
    }

    func testSafetensorsUnsupportedDTypeAndBadEntries() {
        let dtype = write("dtype.safetensors", safetensors(#"{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: 4))
        assertThrows(.unsupportedDType(path: dtype, tensor: "w", dtype: "Q7"), try SafeTensors.read(dtype))
        let shape = write("shape.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: 4))
        assertThrows(.invalidShape(path: shape, tensor: "w", shape: [-1]), try SafeTensors.read(shape))
        let entry = write("entry.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: 4))
        assertThrows(.malformedEntry(path: entry, tensor: "w"), try SafeTensors.read(entry))
        let json = write("json.safetensors", safetensors("[1, 2]"))
        assertThrows(.malformedHeader(path: json, detail: "not a JSON object"), try SafeTensors.read(json))
    }

    /// Names, dtypes and shapes from a file are clipped in messages.
    func testMessagesStayShortWhateverTheFileHolds() {
        let name = String(repeating: "n", count: 10_000), dtype = String(repeating: "Q\n", count: 5_000)
        let path = write("long.safetensors", safetensors(#"{"\#(name)":{"dtype":"\#(dtype.replacingOccurrences(of: "\n", with: "\\n"))","shape":[1],"data_offsets":[0,4]}}"#, data: 4))
        XCTAssertThrowsError(try SafeTensors.read(path)) { error in
            XCTAssertEqual(error as? FileError, .unsupportedDType(path: path, tensor: name, dtype: dtype))
            XCTAssertLessThan("\(error)".count, path.count + 300, "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        let dims = write("dims.safetensors", safetensors(#"{"w":{"dtype":"F32","shape":[\#((0..<1000).map { _ in "-1" }.joined(separator: ","))],"data_offsets":[0,4]}}"#, data: 4))
        XCTAssertThrowsError(try SafeTensors.read(dims)) { XCTAssertLessThan("\($0)".count, dims.count + 200, "\($0)") }
    }

    // MARK: - .pth

    /// A torch.save-style archive holding one tensor "w" rebuilt from storage "0" (float32,
    /// `numel` elements declared, `storageBytes` bytes present) with the given view.
    func pth(_ name: String, numel: Int, storageBytes: Int, offset: Int = 0, shape: [Int], stride: [Int],
             storageKey: String = "0") throws -> String {
        var p = Pickle()
        p.op(0x80); p.byte(2); p.op(0x7D); p.op(0x28)                         // PROTO 2, {, MARK
        p.string("w")
        p.global("torch._utils", "_rebuild_tensor_v2")
        p.op(0x28)                                                             // MARK (args)
        p.op(0x28); p.string("storage"); p.global("torch", "FloatStorage"); p.string(storageKey); p.string("cpu"); p.int(numel)
        p.op(0x74); p.op(0x51)                                                 // TUPLE, BINPERSID
        p.int(offset); p.tuple(shape); p.tuple(stride); p.op(0x89)
        p.global("collections", "OrderedDict"); p.op(0x29); p.op(0x52)
        p.op(0x74); p.op(0x52)                                                 // TUPLE, REDUCE
        p.op(0x75); p.op(0x2E)                                                 // SETITEMS, STOP
        let path = tmp.appendingPathComponent(name).path
        try StoredZip.write([("archive/data.pkl", p.bytes), ("archive/data/0", [UInt8](repeating: 0, count: storageBytes))], to: path)
        return path
    }

    func testPthViewsAreReadWhenTheyFit() throws {
        let path = try pth("ok.pth", numel: 12, storageBytes: 48, offset: 1, shape: [2, 3], stride: [1, 2])
        XCTAssertEqual(try CheckpointFile.readStateDict(path)["w"]?.shape, [2, 3])
    }

    func testPthStrideThatWouldWrap() throws {
        let s = (1 << 62) + (1 << 60)
        // Two steps of 2^62 + 2^60 pass Int.max: the reach of the view overflows.
        let wrap = try pth("stride-wrap.pth", numel: 4, storageBytes: 16, shape: [3], stride: [s])
        assertThrows(.sizeOverflow(path: wrap, tensor: "w"), try CheckpointFile.readStateDict(wrap))
        // One step fits in an Int and lies far outside the storage.
        let far = try pth("stride-far.pth", numel: 4, storageBytes: 16, shape: [2], stride: [s])
        assertThrows(.viewOutOfStorage(path: far, tensor: "w", lastElement: s, storageElements: 4), try CheckpointFile.readStateDict(far))
    }

    func testPthStorageWhoseByteCountWouldWrap() throws {
        // 2^62 float32 elements = 2^64 bytes, which a wrapping product makes 0: "fits" in an empty entry.
        let path = try pth("numel-wrap.pth", numel: 1 << 62, storageBytes: 0, shape: [1], stride: [1])
        assertThrows(.sizeOverflow(path: path, tensor: "w"), try CheckpointFile.readStateDict(path))
    }

    func testPthShapeWhoseElementCountWouldWrap() throws {
        let path = try pth("shape-wrap.pth", numel: 1, storageBytes: 4, shape: [1 << 32, 1 << 31], stride: [0, 0])
        assertThrows(.sizeOverflow(path: path, tensor: "w"), try CheckpointFile.readStateDict(path))
    }

    func testPthStrideZeroExpansionIsBounded() throws {
        // 2^62 elements, every one of them element 0 of a 1-element storage: no 16 EiB copy.
        let path = try pth("expand.pth", numel: 1, storageBytes: 4, shape: [1 << 31, 1 << 31], stride: [0, 0])
        assertThrows(.expansionTooLarge(path: path, tensor: "w", elements: 1 << 62, storageElements: 1), try CheckpointFile.readStateDict(path))
        // A modest expansion (as `expand` saves it) still loads.
        let small = try pth("expand-small.pth", numel: 3, storageBytes: 12, shape: [4, 3], stride: [0, 1])
        XCTAssertEqual(try CheckpointFile.readStateDict(small)["w"]?.shape, [4, 3])
    }

    func testPthViewWithManyUnitDimensionsIsGatheredInLinearTime() throws {
        // 2^20 elements expanded (stride 0) from one, then 5,000 dimensions of size 1: the gather
        // once took 5,000 index steps per element (5 · 10^9 in all).
        let ones = [Int](repeating: 1, count: 5000)
        let path = try pth("unit-dims.pth", numel: 1, storageBytes: 4, shape: [1 << 20] + ones, stride: [0] + ones)
        let t = try XCTUnwrap(CheckpointFile.readStateDict(path)["w"])
        XCTAssertEqual(t.shape.count, 5001)
        XCTAssertEqual(t.elementCount, 1 << 20)
    }

    func testPthEntriesNamingOneExpandedViewAreBounded() throws {
        // w0: 2^24 float32 elements expanded from one (64 MiB once copied), memoized; w1 … w99
        // name it again with 2 bytes of BINGET each. Two copies fit the allowance (the archive's
        // size plus 128 MiB); the third is refused before it is allocated.
        var p = Pickle()
        p.op(0x80); p.byte(2); p.op(0x7D); p.op(0x28)                         // PROTO 2, {, MARK
        p.string("w0")
        p.global("torch._utils", "_rebuild_tensor_v2")
        p.op(0x28)                                                             // MARK (args)
        p.op(0x28); p.string("storage"); p.global("torch", "FloatStorage"); p.string("0"); p.string("cpu"); p.int(1)
        p.op(0x74); p.op(0x51)                                                 // TUPLE, BINPERSID
        p.int(0); p.tuple([1 << 12, 1 << 12]); p.tuple([0, 0]); p.op(0x89)
        p.global("collections", "OrderedDict"); p.op(0x29); p.op(0x52)
        p.op(0x74); p.op(0x52); p.op(0x71); p.byte(0)                          // TUPLE, REDUCE, BINPUT 0
        for i in 1..<100 { p.string("w\(i)"); p.op(0x68); p.byte(0) }          // "wi", BINGET 0
        p.op(0x75); p.op(0x2E)                                                 // SETITEMS, STOP
        let path = tmp.appendingPathComponent("shared-expansion.pth").path
        try StoredZip.write([("archive/data.pkl", p.bytes), ("archive/data/0", [0, 0, 0, 0])], to: path)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        assertThrows(.copiesTooLarge(path: path, tensor: "w2", bytes: 3 << 26, limit: size + TorchCheckpoint.maxExpandedElements * 8),
                     try CheckpointFile.readStateDict(path))
    }

    func testPthViewOutsideItsStorage() throws {
        // Offset 1 + (3 − 1)·4 + (4 − 1)·1 = element 12 of a 12-element storage.
        let path = try pth("outside.pth", numel: 12, storageBytes: 48, offset: 1, shape: [3, 4], stride: [4, 1])
        assertThrows(.viewOutOfStorage(path: path, tensor: "w", lastElement: 12, storageElements: 12), try CheckpointFile.readStateDict(path))
    }

    func testPthStorageEntryShorterThanDeclared() throws {
        let path = try pth("short-storage.pth", numel: 12, storageBytes: 40, shape: [12], stride: [1])
        assertThrows(.storageTooSmall(path: path, tensor: "w", needed: 48, available: 40), try CheckpointFile.readStateDict(path))
    }

    func testPthStorageEntryMissing() throws {
        let path = try pth("no-storage.pth", numel: 1, storageBytes: 4, shape: [1], stride: [1], storageKey: "7")
        assertThrows(.missingEntry(path: path, entry: "archive/data/7"), try CheckpointFile.readStateDict(path))
    }

    func testPthNegativeStrideIsMalformed() throws {
        let path = try pth("negative.pth", numel: 4, storageBytes: 16, shape: [2], stride: [-1])
        XCTAssertThrowsError(try CheckpointFile.readStateDict(path)) { error in
            guard case .malformedPickle(path, _, "bad tensor stride")? = error as? FileError else { return XCTFail("\(error)") }
        }
    }

    func testPthRefusedGlobals() throws {
        let evil = Self.resources.appendingPathComponent("evil.pth").path
        assertThrows(.refusedGlobal(path: evil, name: "posix.system"), try CheckpointFile.readStateDict(evil))
        // STACK_GLOBAL: module and name as strings on the stack.
        var p = Pickle()
        p.op(0x80); p.byte(2); p.string("os"); p.string("system"); p.op(0x93); p.op(0x2E)
        let path = tmp.appendingPathComponent("stack-global.pth").path
        try StoredZip.write([("archive/data.pkl", p.bytes)], to: path)
        assertThrows(.refusedGlobal(path: path, name: "os.system"), try CheckpointFile.readStateDict(path))
        // An allowed global may still not be called unless it is a constructor we know.
        var q = Pickle()
        q.op(0x80); q.byte(2); q.global("torch", "FloatStorage"); q.op(0x29); q.op(0x52); q.op(0x2E)
        let call = tmp.appendingPathComponent("call.pth").path
        try StoredZip.write([("archive/data.pkl", q.bytes)], to: call)
        assertThrows(.malformedPickle(path: call, offset: q.bytes.count - 1, detail: "torch.FloatStorage cannot be called"),
                     try CheckpointFile.readStateDict(call))
    }

    func testPthUnknownOpcodeAndNoStateDict() throws {
        let op = tmp.appendingPathComponent("opcode.pth").path
        try StoredZip.write([("archive/data.pkl", [0x80, 0x02, 0x69, 0x2E])], to: op)      // INST: not a torch.save opcode
        assertThrows(.unsupportedOpcode(path: op, opcode: 0x69, offset: 2), try CheckpointFile.readStateDict(op))
        var p = Pickle()
        p.op(0x80); p.byte(2); p.op(0x7D); p.string("epoch"); p.int(3); p.op(0x73); p.op(0x2E)
        let none = tmp.appendingPathComponent("no-tensors.pth").path
        try StoredZip.write([("archive/data.pkl", p.bytes)], to: none)
        assertThrows(.noStateDict(path: none, keys: ["epoch"]), try CheckpointFile.readStateDict(none))
        let nopkl = tmp.appendingPathComponent("no-pkl.pth").path
        try StoredZip.write([("archive/version", [0x33])], to: nopkl)
        assertThrows(.missingEntry(path: nopkl, entry: "data.pkl"), try CheckpointFile.readStateDict(nopkl))
    }

    /// A numpy array record whose shape product overflows is refused, not trapped on.
    func testNumpyRecordWithAWrappingShape() {
        let array = PickleObject(type: "numpy.ndarray")
        let uint8 = PickleValue.object(PickleObject(type: "numpy.dtype", args: .tuple(PickleTuple([.string("u1"), .bool(false), .bool(true)]))))
        func state(_ dims: [Int], _ bytes: Int) -> PickleValue {
            .tuple(PickleTuple([.int(1), .tuple(PickleTuple(dims.map { .int($0) })), uint8, .bool(false), .bytes([UInt8](repeating: 0, count: bytes))]))
        }
        array.state = state([1 << 32, 1 << 32], 0)
        XCTAssertNil(array.uint8Array())
        array.state = state([-2, -3], 6)
        XCTAssertNil(array.uint8Array())
        array.state = state([2, 3], 6)
        XCTAssertEqual(array.uint8Array()?.shape, [2, 3])
    }

    // MARK: - images

    func testUnreadableImages() throws {
        let jpeg = [UInt8](try Data(contentsOf: Self.resources.appendingPathComponent("rgb.jpg")))
        let png = [UInt8](try Data(contentsOf: Self.resources.appendingPathComponent("rgb.png")))
        let cases: [(String, [UInt8], String)] = [("cut.jpg", Array(jpeg.prefix(jpeg.count / 3)), "JPEG"), ("cut.png", Array(png.prefix(60)), "PNG"),
                                                  ("noise.jpg", [0xFF, 0xD8, 0xFF] + (0..<200).map { UInt8($0 * 37 & 0xFF) }, "JPEG")]
        for (name, bytes, format) in cases {
            let path = write(name, bytes)
            XCTAssertThrowsError(try ImageDecoder.decode(path), name) { error in
                guard case .decodeFailed(path, format, _)? = error as? FileError else { return XCTFail("\(name): \(error)") }
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        let text = write("text.png", Array("hello".utf8))
        assertThrows(.unsupportedImage(path: text), try ImageDecoder.decode(text))
        let empty = write("empty.png", [])
        assertThrows(.empty(path: empty), try ImageDecoder.decode(empty))
        let missing = tmp.appendingPathComponent("missing.png").path
        assertThrows(.notFound(path: missing), try ImageDecoder.decode(missing))
        assertThrows(.isDirectory(path: tmp.path), try ImageDecoder.decode(tmp.path))
    }

    /// Headers that claim billions of pixels are refused before the pixel buffer is allocated.
    func testImagesClaimingTooManyPixels() throws {
        var jpeg = [UInt8](try Data(contentsOf: Self.resources.appendingPathComponent("rgb.jpg")))
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg.replaceSubrange((sof + 5)..<(sof + 9), with: [0xFD, 0xE8, 0xFD, 0xE8])    // height, width = 65000
        let bigJPEG = write("big.jpg", jpeg)
        assertThrows(.imageTooLarge(path: bigJPEG, width: 65000, height: 65000), try ImageDecoder.decode(bigJPEG))

        var png = [UInt8](try Data(contentsOf: Self.resources.appendingPathComponent("rgb.png")))
        png.replaceSubrange(16..<24, with: [0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60])          // IHDR width, height = 60000
        let crc = StoredZipWriter.crc32(Array(png[12..<29]))                               // over "IHDR" and its data
        png.replaceSubrange(29..<33, with: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: crc >> UInt32($0)) })
        let bigPNG = write("big.png", png)
        assertThrows(.imageTooLarge(path: bigPNG, width: 60000, height: 60000), try ImageDecoder.decode(bigPNG))
    }
}
