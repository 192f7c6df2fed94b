import Foundation
import MambaIO
import XCTest

/// The command line from outside: exit codes and one-line errors for bad input, and the
/// `forward` contract on the fixtures.
final class CLITests: XCTestCase {
    static let binary: URL = {
        // The test bundle sits beside the built products.
        var dir = Bundle.main.bundleURL
        for _ in 0..<3 where !FileManager.default.fileExists(atPath: dir.appendingPathComponent("vision-mamba").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("vision-mamba")
    }()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../VisionMambaTests/Resources").standardized

    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    @discardableResult
    func run(_ args: [String], environment: [String: String] = [:]) throws -> (code: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func fixture(_ name: String) -> String { Self.fixtures.appendingPathComponent(name).path }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = tmp.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// A failure: exit code 1 and exactly one line on stderr containing every `needle`.
    func assertFails(_ args: [String], mentioning needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertEqual(r.code, 1, "exit code; stderr: \(r.err)", file: file, line: line)
        let lines = r.err.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line on stderr, got: \(r.err)", file: file, line: line)
        for needle in needles { XCTAssertTrue(r.err.contains(needle), "stderr lacks '\(needle)': \(r.err)", file: file, line: line) }
    }

    func testForwardWritesLogitsAndBlocksMatchingFixture() throws {
        let out = tmp.appendingPathComponent("out.safetensors").path
        let r = try run(["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.pth"),
                         "--input", fixture("vim-micro.io.safetensors"), "--output", out, "--threads", "2"])
        XCTAssertEqual(r.code, 0, r.err)
        let got = try SafeTensors.read(out), want = try SafeTensors.read(fixture("vim-micro.io.safetensors"))
        for name in ["logits", "block.0.out", "block.3.out"] {
            let a = try XCTUnwrap(got[name]).floats(), b = try XCTUnwrap(want[name]).floats()
            var num = 0.0, den = 0.0
            for i in b.indices { num += Double(a[i] - b[i]) * Double(a[i] - b[i]); den += Double(b[i]) * Double(b[i]) }
            XCTAssertLessThan((num / den).squareRoot(), 1e-5, name)
        }
        XCTAssertNil(got["block.4.out"])
    }

    func testMissingWeightsFile() throws {
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", tmp.appendingPathComponent("nope.pth").path,
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["nope.pth"])
    }

    func testRandomBytesAsWeights() throws {
        var g = SystemRandomNumberGenerator()
        let path = write("random.pth", (0..<4096).map { _ in UInt8.random(in: 0...255, using: &g) })
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", path,
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["random.pth"])
    }

    func testTruncatedCheckpoint() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("vim-micro.pth"))))
        let path = write("truncated.pth", Array(bytes.prefix(bytes.count / 2)))
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", path,
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["truncated.pth"])
    }

    func testHugeSafetensorsHeader() throws {
        var bytes = [UInt8](repeating: 0, count: 64)
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
        let path = write("huge.safetensors", bytes)
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", path,
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["huge.safetensors"])
    }

    func testWeightsOfAnotherModelNameTheTensorAndShapes() throws {
        // vim-micro-overlap weights (D = 48) into the vim-micro model (D = 32).
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro-overlap.safetensors"),
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["cls_token", "[1, 1, 32]", "[1, 1, 48]"])
    }

    func testInputOfTheWrongShape() throws {
        var file = TensorFile()
        file.append("input", StoredTensor(shape: [1, 3, 16, 16], floats: [Float](repeating: 0, count: 768)))
        let path = tmp.appendingPathComponent("small.safetensors").path
        try SafeTensors.write(file, to: path)
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors"),
                         "--input", path, "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["input", "[1, 3, 16, 16]", "[B, 3, 32, 32]"])
    }

    func testUnreadableImage() throws {
        let path = write("broken.jpg", [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 0x4A, 0x46])
        try assertFails(["predict", path, "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors")],
                        mentioning: ["broken.jpg"])
    }

    func testUnknownModelName() throws {
        try assertFails(["predict", "x.png", "--model", "vim-huge", "--weights", fixture("vim-micro.pth")],
                        mentioning: ["vim-huge", "vim-tiny"])
    }

    func testWrongFlagIsAUsageError() throws {
        let r = try run(["bench", "--no-such-flag"])
        XCTAssertEqual(r.code, 64, r.err)  // EX_USAGE: swift-argument-parser's own code
        XCTAssertTrue(r.err.contains("--no-such-flag"), r.err)
    }

    func testConvertPthToSafetensorsKeepsEveryTensor() throws {
        let out = tmp.appendingPathComponent("converted.safetensors").path
        let r = try run(["convert", fixture("vim-micro.pth"), out])
        XCTAssertEqual(r.code, 0, r.err)
        let a = try SafeTensors.read(out), b = try SafeTensors.read(fixture("vim-micro.safetensors"))
        XCTAssertEqual(Set(a.names), Set(b.names))
        for name in b.names { XCTAssertEqual(a[name]!.floats(), b[name]!.floats(), name) }
    }

    func testOutputFormatFollowsTheExtension() throws {
        // An unknown extension is refused before anything is read or computed, and nothing is written.
        for (args, out) in [(["convert", fixture("vim-micro.pth")], "m.onnx"),
                            (["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.pth"),
                              "--input", fixture("vim-micro.io.safetensors"), "--output"], "x.npy")] {
            let path = tmp.appendingPathComponent(out).path
            let r = try run(args + [path])
            XCTAssertEqual(r.code, 1)
            XCTAssertEqual(r.err, "error: \(path): unknown file type; the extension must be one of .safetensors, .pth, .pt\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        }
        // .pth round-trips through convert.
        let pth = tmp.appendingPathComponent("m.PTH").path
        XCTAssertEqual(try run(["convert", fixture("vim-micro.pth"), pth]).code, 0)
        let a = try CheckpointFile.readStateDict(pth), b = try CheckpointFile.readStateDict(fixture("vim-micro.pth"))
        XCTAssertEqual(Set(a.names), Set(b.names))
        for name in b.names { XCTAssertEqual(a[name]!.floats(), b[name]!.floats(), name) }
    }

    func testForeignPickleGlobalIsRefused() throws {
        let evil = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../MambaIOTests/Resources/evil.pth").standardized.path
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", evil,
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["evil.pth", "posix.system"])
    }

    func testPredictPrintsTopClassesAsJSON() throws {
        let image = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../MambaIOTests/Resources/rgb.jpg").standardized.path
        let labels = tmp.appendingPathComponent("labels.txt").path
        try (0..<10).map { "label \($0)" }.joined(separator: "\n").write(toFile: labels, atomically: true, encoding: .utf8)
        let r = try run(["predict", image, image, "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.pth"),
                         "--labels", labels, "--json", "--threads", "1"])
        XCTAssertEqual(r.code, 0, r.err)
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let obj = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        let top = obj["top"] as! [[String: Any]]
        XCTAssertEqual(top.count, 5)
        let probs = top.map { $0["probability"] as! Double }
        XCTAssertEqual(probs, probs.sorted(by: >))
        XCTAssertLessThanOrEqual(probs.reduce(0, +), 1.0001)
        XCTAssertEqual(top[0]["label"] as? String, "label \(top[0]["class"] as! Int)")
        // A label file of the wrong length is an error naming it.
        try "a\nb".write(toFile: labels, atomically: true, encoding: .utf8)
        try assertFails(["predict", image, "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.pth"), "--labels", labels],
                        mentioning: ["labels.txt", "expected 10 class names", "found 2"])
    }

    /// `forward --model vim-tiny --image` writes the preprocessed input and the official logits.
    func testForwardOnAnImageWithAZooModel() throws {
        let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/fixtures").standardized
        let root = ProcessInfo.processInfo.environment["VISION_MAMBA_FIXTURES"].map { URL(fileURLWithPath: $0) } ?? shared
        let weights = root.appendingPathComponent("vim/vim-tiny-224.pth").path
        guard FileManager.default.fileExists(atPath: weights) else { throw XCTSkip("vim-tiny-224 fixture not found under \(root.path)") }
        let out = tmp.appendingPathComponent("coffee.safetensors").path
        let r = try run(["forward", "--model", "vim-tiny", "--weights", weights,
                         "--image", root.appendingPathComponent("predict/coffee.png").path, "--output", out])
        XCTAssertEqual(r.code, 0, r.err)
        let got = try SafeTensors.read(out), want = try SafeTensors.read(root.appendingPathComponent("predict/expected.safetensors").path)
        XCTAssertEqual(got["input"]!.shape, [1, 3, 224, 224])
        XCTAssertEqual(got["input"]!.floats(), want["pre.coffee"]!.floats())
        let a = got["logits"]!.floats(), b = want["logits.coffee"]!.floats()
        let err = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot() / b.map { Double($0 * $0) }.reduce(0, +).squareRoot()
        XCTAssertLessThan(err, 1e-5)
        XCTAssertNotNil(got["block.23.out"])
    }

    func testBenchJSONLine() throws {
        let r = try run(["bench", "--model", "vim-tiny", "--batch", "1", "--iterations", "1", "--warmup", "0", "--json", "--threads", "1"])
        XCTAssertEqual(r.code, 0, r.err)
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        for key in ["images_per_second", "batch", "threads", "model", "img_size", "peak_rss_mib", "estimated_peak_mib"] { XCTAssertNotNil(obj[key], key) }
        XCTAssertEqual(obj["batch"] as? Int, 1)
        XCTAssertEqual(obj["threads"] as? Int, 1)
        XCTAssertEqual(obj["img_size"] as? Int, 224)
        XCTAssertGreaterThan(obj["images_per_second"] as! Double, 0)
    }

    /// `train` killed with SIGKILL in the middle of an epoch, then resumed from its directory,
    /// ends with the same metrics as a run that was never interrupted.
    func testTrainingKilledMidEpochResumesToTheSameMetrics() throws {
        let config = tmp.appendingPathComponent("small.json").path
        try #"{"name": "small", "img_size": 8, "patch_size": 2, "stride": 2, "embed_dim": 32, "depth": 2, "num_classes": 10}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let whole = tmp.appendingPathComponent("whole").path, killed = tmp.appendingPathComponent("killed").path
        let common = ["train", "--model", config, "--epochs", "4", "--batch-size", "32", "--lr", "4e-2", "--warmup-epochs", "1", "--threads", "2"]
        XCTAssertEqual(try run(common + ["--output-dir", whole]).code, 0)

        let p = Process()
        p.executableURL = Self.binary
        p.arguments = common + ["--output-dir", killed]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for the first epoch's checkpoint, then kill during the second epoch.
        let state = killed + "/checkpoint.json"
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: state) && Date() < deadline { usleep(5_000) }
        usleep(120_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let done = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))) as! [String: Any]
        XCTAssertLessThan(done["epochsDone"] as! Int, 4, "the run finished before it could be killed")

        let r = try run(["train", "--resume", killed, "--output-dir", killed, "--threads", "2"])
        XCTAssertEqual(r.code, 0, r.err)
        func metrics(_ dir: String) throws -> [[String: Double]] {
            try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return ["train_loss", "val_loss", "top1", "top5", "lr", "epoch"].reduce(into: [:]) { $0[$1] = (o[$1] as! NSNumber).doubleValue }
            }
        }
        let a = try metrics(whole), b = try metrics(killed)
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(a, b)
    }

    /// A second `train` into a folder that holds a run is refused and leaves the run as it was;
    /// `--resume DIR` continues in DIR (not in another --output-dir), and a larger --epochs
    /// extends its schedule.
    func testRunsAreNeverOverwritten() throws {
        let config = tmp.appendingPathComponent("small.json").path
        try #"{"name": "small", "img_size": 8, "patch_size": 2, "stride": 2, "embed_dim": 16, "depth": 1, "num_classes": 10}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let runDir = tmp.appendingPathComponent("run").path, other = tmp.appendingPathComponent("other").path
        let common = ["train", "--model", config, "--batch-size", "32", "--warmup-epochs", "0", "--threads", "2"]
        XCTAssertEqual(try run(common + ["--epochs", "1", "--output-dir", runDir]).code, 0)
        let metrics = try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)
        let again = try run(common + ["--epochs", "1", "--output-dir", runDir])
        XCTAssertEqual(again.code, 1)
        XCTAssertTrue(again.err.contains("already holds a run"), again.err)
        XCTAssertTrue(again.err.contains("--resume") && again.err.contains("--overwrite"), again.err)
        XCTAssertEqual(try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8), metrics)
        let elsewhere = try run(["train", "--resume", runDir, "--output-dir", other, "--threads", "2"])
        XCTAssertEqual(elsewhere.code, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: other))
        let extended = try run(["train", "--resume", runDir, "--epochs", "2", "--threads", "2"])
        XCTAssertEqual(extended.code, 0, extended.err)
        XCTAssertTrue(extended.out.contains("extending the schedule from 1 to 2 epochs"), extended.out)
        XCTAssertEqual(try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count, 2)
    }

    func testModelsListsTheZooWithParameterCounts() throws {
        let r = try run(["models"])
        XCTAssertEqual(r.code, 0)
        XCTAssertTrue(r.out.contains("vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2"))
        XCTAssertTrue(r.out.contains("7148008"))
        XCTAssertTrue(r.out.contains("97598440"))
        let digits = r.out.split(separator: "\n").first { $0.hasPrefix("vim-digits ") }
        XCTAssertNotNil(digits, "vim-digits, the default of train, is listed")
        XCTAssertTrue(r.out.contains("https://huggingface.co/hustvl/Vim-tiny-midclstok/resolve/main/vim_t_midclstok_76p1acc.pth"))
    }

    func testDyVMOnASmallModelUsesStagesScaledToItsDepth() throws {
        let r = try run(["flops", "--model", "vim-digits", "--dyvm"])
        XCTAssertEqual(r.code, 0, r.err)
        // 4 blocks: stages before blocks 1, 2 and 3 keep int(0.7^s · 16) of the 16 patch tokens, plus the class token.
        XCTAssertTrue(r.out.contains("tokens per block: 17 12 8 6"), r.out)
    }

    func testOnlyTrainingListsTheDyVMLossWeights() throws {
        for command in ["bench", "flops"] {
            let help = try run(["help", command]).out
            XCTAssertTrue(help.contains("--pruning-loc"), command)
            XCTAssertFalse(help.contains("--distill-weight"), command)
        }
        XCTAssertTrue(try run(["help", "train"]).out.contains("--distill-weight"))
        let r = try run(["train", "--distill-weight", "1", "--epochs", "1"])
        XCTAssertEqual(r.code, 64)
        XCTAssertTrue(r.err.contains("the DyVM loss weights need --dyvm or a DyVM model"), r.err)
    }

    func testVersion() throws {
        let r = try run(["--version"])
        XCTAssertEqual(r.code, 0)
        XCTAssertNotNil(r.out.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+\n$"#, options: .regularExpression), r.out)
    }

    func testTimmUnderscoreModelNames() throws {
        let r = try run(["flops", "--model", "vim_tiny"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(r.out, try run(["flops", "--model", "vim-tiny"]).out)
    }
}
