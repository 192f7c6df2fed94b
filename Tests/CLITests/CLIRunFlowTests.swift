import Foundation
import MambaIO
import XCTest

/// The flows a new user takes from training to inference: the dataset inferred from its folder,
/// checkpoints that describe their model, data, classes and transform, predict and features on
/// folders, resume that refuses conflicting flags, and plain progress lines in logs.
extension CLITests {
    static let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../MambaIOTests/Resources").standardized

    /// train/ and val/ with classes cat (rgb.png, grey.png) and dog (rgb.jpg, grey.jpg).
    func twoClassFolder() throws -> URL {
        let folder = tmp.appendingPathComponent("pets")
        for split in ["train", "val"] {
            for (cls, files) in [("cat", ["rgb.png", "grey.png"]), ("dog", ["rgb.jpg", "grey.jpg"])] {
                let dir = folder.appendingPathComponent("\(split)/\(cls)")
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                for file in files { try FileManager.default.copyItem(at: Self.images.appendingPathComponent(file), to: dir.appendingPathComponent(file)) }
            }
        }
        return folder
    }

    func smallConfig(classes: Int = 10) throws -> String {
        let config = tmp.appendingPathComponent("small-\(classes).json").path
        try #"{"name": "small", "img_size": 8, "patch_size": 2, "stride": 2, "embed_dim": 16, "depth": 2, "num_classes": \#(classes)}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    /// Findings 3, 4 and 5: without --data-set the folder's kind is recognised, the head takes its
    /// class count without --num-classes, the banner names it before the first step, and eval with
    /// the checkpoint alone evaluates on the stored dataset (the run's own last top-1).
    func testDatasetInferredAndEvalFromTheCheckpointAlone() throws {
        let folder = try twoClassFolder(), runDir = tmp.appendingPathComponent("run").path
        let r = try run(["train", "--model", try smallConfig(), "--data-path", folder.path, "--epochs", "1", "--batch-size", "2",
                         "--warmup-epochs", "0", "--output-dir", runDir, "--threads", "1"])
        XCTAssertEqual(r.code, 0, r.err)
        let first = try XCTUnwrap(r.out.split(separator: "\n").first)
        XCTAssertTrue(first.hasPrefix("training small") && first.contains("on imagefolder"), String(first))
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/checkpoint.json"))) as! [String: Any]
        XCTAssertEqual(state["classNames"] as? [String], ["cat", "dog"])
        let options = state["options"] as! [String: Any], model = options["model"] as! [String: Any]
        XCTAssertEqual(model["numClasses"] as? Int, 2)
        XCTAssertEqual(options["dataset"] as? String, "imagefolder")

        let e = try run(["eval", "--weights", runDir + "/checkpoint.safetensors", "--threads", "1"])
        XCTAssertEqual(e.code, 0, e.err)
        let history = state["history"] as! [[String: Any]]
        let top1 = String(format: "top-1 %.2f%%", (history[0]["top1"] as! NSNumber).doubleValue)
        XCTAssertTrue(e.out.contains("on \(folder.path) (4 images)") && e.out.contains(top1), e.out + " expected " + top1)
    }

    /// Finding 5: a model's head that differs from the dataset is one line naming both counts.
    func testClassCountMismatchIsOneLine() throws {
        let folder = try twoClassFolder()
        try assertFails(["train", "--model", try smallConfig(), "--data-path", folder.path, "--num-classes", "3", "--epochs", "1",
                         "--output-dir", tmp.appendingPathComponent("run").path, "--threads", "1"],
                        mentioning: ["has 2 classes; the model has 3"])
    }

    /// A fine-tune onto a dataset of another class count replaces the head, as the official
    /// --finetune does, and keeps every other trained tensor.
    func testFineTuneOntoFewerClassesReplacesTheHead() throws {
        let config = try smallConfig(), digits = tmp.appendingPathComponent("digits").path, pets = tmp.appendingPathComponent("pets-run").path
        let d = try run(["train", "--model", config, "--epochs", "1", "--batch-size", "64", "--output-dir", digits, "--threads", "1"])
        XCTAssertEqual(d.code, 0, d.err)
        let f = try run(["train", "--model", config, "--data-path", try twoClassFolder().path, "--finetune", digits + "/checkpoint.safetensors",
                         "--epochs", "1", "--batch-size", "2", "--lr", "1e-9", "--warmup-epochs", "0", "--output-dir", pets, "--threads", "1"])
        XCTAssertEqual(f.code, 0, f.err)
        let start = try SafeTensors.read(digits + "/checkpoint.safetensors"), tuned = try SafeTensors.read(pets + "/checkpoint.safetensors")
        XCTAssertEqual(start["head.weight"]?.shape, [10, 16])
        XCTAssertEqual(tuned["head.weight"]?.shape, [2, 16])
        // With a vanishing lr the body is still the digits model's, not a fresh one.
        let a = try XCTUnwrap(tuned["patch_embed.proj.weight"]).floats(), b = try XCTUnwrap(start["patch_embed.proj.weight"]).floats()
        XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-6)
    }

    /// Findings 6 and 14: predict on a folder with a DyVM training checkpoint and nothing else: the
    /// pruning heads load, classes are the dataset's names, and --output writes a CSV row per image.
    /// The checkpoint stores the digits' grey transform at the model's 8 px.
    func testPredictAFolderToCSVFromADyVMCheckpoint() throws {
        let runDir = tmp.appendingPathComponent("dyvm").path
        let t = try run(["train", "--dyvm", "--epochs", "1", "--batch-size", "64", "--output-dir", runDir, "--threads", "2"])
        XCTAssertEqual(t.code, 0, t.err)
        XCTAssertTrue(t.out.contains("warning: DyVM is starting from random weights"), t.out)   // finding 10
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/checkpoint.json"))) as! [String: Any]
        let transform = state["transform"] as! [String: Any]
        XCTAssertEqual(transform["size"] as? Int, 8)
        XCTAssertEqual(transform["grayscale"] as? Bool, true)
        XCTAssertEqual(transform["cropPct"] as? Double, 1)

        let photos = tmp.appendingPathComponent("photos/nested")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        for file in ["rgb.png", "grey.jpg"] { try FileManager.default.copyItem(at: Self.images.appendingPathComponent(file), to: photos.appendingPathComponent(file)) }
        let single = Self.images.appendingPathComponent("rgba.png").path
        let csv = tmp.appendingPathComponent("out.csv").path
        let p = try run(["predict", "--weights", runDir + "/checkpoint.safetensors", tmp.appendingPathComponent("photos").path, single,
                         "--top", "3", "--batch-size", "2", "--output", csv, "--threads", "1"])
        XCTAssertEqual(p.code, 0, p.err)
        XCTAssertEqual(p.out, "3 images → \(csv)\n")
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(rows.count, 4)
        XCTAssertEqual(rows[0].joined(separator: ","), "image,class_1,label_1,probability_1,class_2,label_2,probability_2,class_3,label_3,probability_3")
        XCTAssertEqual(rows.dropFirst().map { String($0[0]) }, [photos.path + "/grey.jpg", photos.path + "/rgb.png", single])
        for row in rows.dropFirst() {
            XCTAssertEqual(row.count, 10)
            XCTAssertEqual(row[2], row[1])            // digits are named by their class index
            let probs = [row[3], row[6], row[9]].map { Double($0)! }
            XCTAssertEqual(probs, probs.sorted(by: >))
        }
        // An existing output is never replaced without --overwrite, and only .csv and .jsonl are written.
        let again = try run(["predict", "--weights", runDir + "/checkpoint.safetensors", single, "--output", csv])
        XCTAssertEqual(again.code, 64, again.err)
        try assertFails(["predict", "--weights", runDir + "/checkpoint.safetensors", single, "--output", tmp.appendingPathComponent("o.txt").path],
                        mentioning: [".csv, .jsonl"])
        // The same images one at a time give the same probabilities as in batches.
        let jsonl = tmp.appendingPathComponent("one.jsonl").path
        XCTAssertEqual(try run(["predict", "--weights", runDir + "/checkpoint.safetensors", single, "--top", "3", "--output", jsonl]).code, 0)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jsonl))) as! [String: Any]
        let top = object["top"] as! [[String: Any]]
        XCTAssertEqual(top.map { String(format: "%.6f", ($0["probability"] as! NSNumber).doubleValue) }, [rows[3][3], rows[3][6], rows[3][9]].map(String.init))
    }

    /// Released weights still need their model named, and say so in one line.
    func testWeightsOnlyFileNeedsAModel() throws {
        let r = try run(["predict", "--weights", fixture("vim-micro.pth"), Self.images.appendingPathComponent("rgb.png").path])
        XCTAssertEqual(r.code, 64)
        XCTAssertTrue(r.err.contains("give --model or --config"), r.err)
    }

    /// `features`: the class-token feature is the class token's row of --all-tokens.
    func testFeaturesPooledAndAllTokens() throws {
        let pooled = tmp.appendingPathComponent("f.safetensors").path, all = tmp.appendingPathComponent("t.safetensors").path
        let common = ["features", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.pth"),
                      Self.images.appendingPathComponent("rgb.png").path, Self.images.appendingPathComponent("grey.jpg").path, "--threads", "1"]
        XCTAssertEqual(try run(common + ["--output", pooled]).code, 0)
        XCTAssertEqual(try run(common + ["--output", all, "--all-tokens", "--batch-size", "1"]).code, 0)
        let f = try SafeTensors.read(pooled), t = try SafeTensors.read(all)
        let features = try XCTUnwrap(f["features"]), tokens = try XCTUnwrap(t["tokens"]), cls = try XCTUnwrap(t["cls_index"]).int64s()
        XCTAssertEqual(features.shape, [2, 32])
        XCTAssertEqual(tokens.shape, [2, 17, 32])
        XCTAssertEqual(cls, [8, 8])
        let a = try features.floats(), b = try tokens.floats()
        for image in 0..<2 {
            for d in 0..<32 { XCTAssertEqual(a[image * 32 + d], b[(image * 17 + 8) * 32 + d], accuracy: 1e-5) }
        }
        XCTAssertEqual(f.metadata["images"], "[\"\(Self.images.path)/rgb.png\",\"\(Self.images.path)/grey.jpg\"]".replacingOccurrences(of: "/", with: "\\/"))
    }

    /// Findings 7 and 8, and the rule that a resumed run keeps its settings: flags that would
    /// change them are refused by name; equal values and a longer schedule are accepted.
    func testResumeRefusesConflictingFlagsByName() throws {
        let runDir = tmp.appendingPathComponent("run").path
        let common = ["train", "--model", try smallConfig(), "--batch-size", "64", "--warmup-epochs", "0", "--threads", "2"]
        XCTAssertEqual(try run(common + ["--epochs", "1", "--output-dir", runDir]).code, 0)
        let r = try run(["train", "--resume", runDir, "--lr", "1e-3", "--batch-size", "32", "--hflip"])
        XCTAssertEqual(r.code, 64)
        XCTAssertTrue(r.err.contains("remove --batch-size, --lr, --hflip") || r.err.contains("--lr") && r.err.contains("--batch-size") && r.err.contains("--hflip"), r.err)
        XCTAssertFalse(r.err.contains("--warmup-epochs"), r.err)
        let same = try run(common + ["--resume", runDir, "--epochs", "2"])
        XCTAssertEqual(same.code, 0, same.err)
        try assertFails(["train", "--resume", fixture("vim-micro.pth")], mentioning: ["not a training checkpoint", "--finetune"])
    }

    /// Finding 12: piped, training prints a plain line every --log-interval steps and at the end of
    /// the epoch: 1,437 digits in batches of 64 are 22 steps, so steps 5, 10, 15, 20 and 22.
    func testPipedTrainingPrintsProgressLines() throws {
        let r = try run(["train", "--model", try smallConfig(), "--epochs", "1", "--batch-size", "64", "--log-interval", "5",
                         "--output-dir", tmp.appendingPathComponent("run").path, "--threads", "2"])
        XCTAssertEqual(r.code, 0, r.err)
        let steps = r.out.split(separator: "\n").filter { $0.hasPrefix("epoch 1/1 step ") }.map { $0.split(separator: " ")[3] }
        XCTAssertEqual(steps, ["5/22", "10/22", "15/22", "20/22", "22/22"], r.out)
        XCTAssertFalse(r.err.contains("\r"), r.err)
    }

    /// The library logs through swift-log; the command line's handler writes one line per record
    /// on stderr at the level VISION_MAMBA_LOG_LEVEL asks for, and nothing by default.
    func testLogLevelShowsTheTrainersRecordsOnStderr() throws {
        let common = ["train", "--model", try smallConfig(), "--epochs", "1", "--batch-size", "64", "--threads", "2"]
        let quiet = try run(common + ["--output-dir", tmp.appendingPathComponent("quiet").path])
        XCTAssertEqual(quiet.code, 0, quiet.err)
        XCTAssertEqual(quiet.err, "")
        let folder = tmp.appendingPathComponent("logged").path
        let logged = try run(common + ["--output-dir", folder], environment: ["VISION_MAMBA_LOG_LEVEL": "debug"])
        XCTAssertEqual(logged.code, 0, logged.err)
        let lines = logged.err.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("debug vision-mamba.training: checkpoint saved path=\(folder)/checkpoint.safetensors"), logged.err)
        XCTAssertTrue(lines.contains { $0.hasPrefix("debug vision-mamba.training: epoch ended epoch=1/1 ") }, logged.err)
        XCTAssertFalse(lines.contains { $0.hasPrefix("trace ") }, "steps log at trace level")
    }

    /// Finding 15: every option and argument of every command has help text.
    func testEveryOptionHasHelp() throws {
        let r = try run(["--experimental-dump-help"])
        XCTAssertEqual(r.code, 0, r.err)
        let root = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        var missing: [String] = [], commands = 0
        func visit(_ command: [String: Any], _ path: String) {
            commands += 1
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                let names = (argument["names"] as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
                if ((argument["abstract"] as? String) ?? "").isEmpty && !names.contains("help") && !names.contains("version") {
                    missing.append("\(path) \(names.first ?? (argument["valueName"] as? String ?? "?"))")
                }
            }
            // `help` is swift-argument-parser's own command.
            for sub in command["subcommands"] as? [[String: Any]] ?? [] where sub["commandName"] as? String != "help" {
                visit(sub, path + " " + (sub["commandName"] as? String ?? "?"))
            }
        }
        visit(root["command"] as! [String: Any], "vision-mamba")
        XCTAssertGreaterThan(commands, 10)
        XCTAssertEqual(missing, [])
    }
}
