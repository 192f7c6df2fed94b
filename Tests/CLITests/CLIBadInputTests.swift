import Foundation
import MambaIO
import XCTest

/// Bad input at the command line: one line on stderr and exit code 1 (argument-parser's own
/// code for a flag value that validation refuses), never a trap.
extension CLITests {
    /// A usage error: argument-parser's exit code and a message naming the flag.
    func assertUsageError(_ args: [String], mentioning needle: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertEqual(r.code, 64, "exit code; stderr: \(r.err)", file: file, line: line)   // EX_USAGE
        XCTAssertTrue(r.err.contains(needle), "stderr lacks '\(needle)': \(r.err)", file: file, line: line)
    }

    /// The reported case: `eval --weights` of a 2-class ImageFolder checkpoint on the 10-class
    /// digits indexed a logit row past its end ("double free or corruption").
    func testEvalOfATwoClassCheckpointOnTheDigits() throws {
        // A 2-class ImageFolder of one photo per class and split, and a small model trained on it for one epoch.
        let photo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../MambaIOTests/Resources/rgb.jpg").standardized
        let data = tmp.appendingPathComponent("two-classes")
        for split in ["train", "val"] {
            for name in ["cat", "dog"] {
                let dir = data.appendingPathComponent(split).appendingPathComponent(name)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: photo, to: dir.appendingPathComponent("a.jpg"))
            }
        }
        let config = tmp.appendingPathComponent("two.json").path
        try #"{"name": "two", "img_size": 8, "patch_size": 2, "stride": 2, "embed_dim": 16, "depth": 1, "num_classes": 2}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let runDir = tmp.appendingPathComponent("run").path
        let trained = try run(["train", "--model", config, "--data-set", "imagefolder", "--data-path", data.path, "--epochs", "1",
                               "--batch-size", "2", "--warmup-epochs", "0", "--output-dir", runDir, "--threads", "1"])
        XCTAssertEqual(trained.code, 0, trained.err)
        try assertFails(["eval", "--weights", runDir + "/checkpoint.safetensors", "--data-set", "digits", "--threads", "1"],
                        mentioning: ["dataset digits has 10 classes; the model has 2"])
    }

    /// A 16 px input into the 32 px model: refused, naming both shapes (also at an --img-size override).
    func testForwardInputOfAnotherSize() throws {
        var file = TensorFile()
        file.append("input", StoredTensor(shape: [1, 3, 32, 32], floats: [Float](repeating: 0, count: 3072)))
        let path = tmp.appendingPathComponent("input32.safetensors").path
        try SafeTensors.write(file, to: path)
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors"),
                         "--img-size", "48", "--input", path, "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["[1, 3, 32, 32]", "[B, 3, 48, 48]"])
        // 50 px is not a whole number of vim-micro's 8 px patches.
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors"),
                         "--img-size", "50", "--input", path, "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["img_size", "50"])
    }

    /// An input without its batch dimension: refused, naming both shapes.
    func testGradientsOfAnImageOfTheWrongRank() throws {
        var file = TensorFile()
        file.append("input", StoredTensor(shape: [3, 32, 32], floats: [Float](repeating: 0, count: 3072)))
        file.append("labels", StoredTensor(shape: [1], int64s: [0]))
        let path = tmp.appendingPathComponent("rank3.safetensors").path
        try SafeTensors.write(file, to: path)
        try assertFails(["gradients", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors"),
                         "--input", path, "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["[3, 32, 32]", "[B, 3, 32, 32]"])
    }

    /// Values the library would divide by or allocate from are refused by validation.
    func testSizesThatValidationRefuses() throws {
        try assertUsageError(["train", "--batch-size", "0"], mentioning: "--batch-size")
        try assertUsageError(["train", "--patch-size", "0"], mentioning: "--patch-size")
        try assertUsageError(["train", "--input-size", "30", "--patch-size", "4"], mentioning: "--input-size 30")
        try assertUsageError(["train", "--data-set", "cifar10"], mentioning: "--data-path")
        try assertUsageError(["train", "--lr", "nan"], mentioning: "--lr")
        try assertUsageError(["eval", "--weights", "w.safetensors", "--batch-size", "0"], mentioning: "--batch-size")
        try assertUsageError(["bench", "--patch-size", "0"], mentioning: "--patch-size")
        try assertUsageError(["bench", "--img-size", "50", "--patch-size", "16"], mentioning: "--img-size 50")
        try assertUsageError(["flops", "--num-classes", "0"], mentioning: "--num-classes")
        try assertUsageError(["train", "--token-keep-ratio", "0"], mentioning: "--token-keep-ratio")
        try assertUsageError(["forward", "--model", "vim-tiny", "--weights", "w", "--input", "i", "--output", "o", "--img-size", "0"],
                             mentioning: "--img-size")
    }

    /// A RandAugment setting out of its range is a usage error before anything loads.
    func testRandAugmentOutOfRange() throws {
        try assertUsageError(["train", "--aa", "rand-m9-mstd0.5-inc1-n2.5"], mentioning: "'n2.5'")
        try assertUsageError(["study", "fusion", "--aa", "rand-m31"], mentioning: "--aa: rand-m31")
    }

    /// Famba-V's r above what a fusion of all the model's tokens can remove: one line with the
    /// value and the maximum, from every command that builds the model.
    func testFusionTokensAboveTheMaximum() throws {
        // vim-tiny at 224 px: 197 tokens, at most 98 per fusion.
        let needles = ["fusion.tokens is 99", "removes at most 98"]
        try assertFails(["flops", "--model", "vim-tiny", "--fusion-strategy", "all", "--fusion-tokens", "99"], mentioning: needles)
        try assertFails(["bench", "--model", "vim-tiny", "--fusion-blocks", "3", "--fusion-tokens", "99"], mentioning: needles)
        // At 32 px with patch 4: 65 tokens, at most 32.
        try assertFails(["train", "--model", "vim-tiny", "--input-size", "32", "--patch-size", "4", "--fusion-strategy", "all",
                         "--fusion-tokens", "33", "--output-dir", tmp.appendingPathComponent("run").path],
                        mentioning: ["fusion.tokens is 33", "removes at most 32"])
        let r = try run(["flops", "--model", "vim-tiny", "--fusion-strategy", "all", "--fusion-tokens", "98", "--json"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("\"tokens\":[99,50,"), r.out)
    }

    /// A checkpoint edited to a negative epochsDone trapped when the run resumed: now one line naming
    /// the checkpoint, the field and its value.
    func testResumeFromAnEditedCheckpoint() throws {
        let config = tmp.appendingPathComponent("tiny.json").path
        try #"{"name": "tiny", "img_size": 8, "patch_size": 4, "stride": 4, "embed_dim": 16, "depth": 1, "num_classes": 10}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let runDir = tmp.appendingPathComponent("run").path
        let trained = try run(["train", "--model", config, "--epochs", "2", "--warmup-epochs", "0", "--input-size", "8",
                               "--output-dir", runDir, "--threads", "1"])
        XCTAssertEqual(trained.code, 0, trained.err)
        var file = try SafeTensors.read(runDir + "/checkpoint.safetensors")
        file.metadata["training_state"] = file.metadata["training_state"]!
            .replacingOccurrences(of: "\"epochsDone\" : 2", with: "\"epochsDone\" : -5")
        let edited = tmp.appendingPathComponent("edited.safetensors").path
        try SafeTensors.write(file, to: edited)
        try assertFails(["train", "--resume", edited, "--output-dir", tmp.appendingPathComponent("again").path, "--threads", "1"],
                        mentioning: [edited, "epochsDone is -5", "allowed: 0...2"])
    }

    /// An output folder whose parent is a regular file: one line naming it, before any training.
    func testTrainOutputUnderARegularFile() throws {
        let file = write("file", [1])
        try assertFails(["train", "--output-dir", file + "/run", "--threads", "1"],
                        mentioning: [file + "/run", "cannot create the output folder"])
    }

    /// Batches and images far past the machine's memory: one line with the estimate, before the
    /// model or a batch is allocated (an allocation that size ended the process).
    func testTooLargeForMemory() throws {
        try assertFails(["bench", "--batch", "10000000"], mentioning: ["a forward pass of 10000000 image(s) needs about", "TiB (estimated)"])
        try assertFails(["bench", "--img-size", "65536", "--patch-size", "16"], mentioning: ["a forward pass of 8 image(s)", "(estimated)"])
        try assertFails(["bench", "--train", "--batch", "100000"], mentioning: ["a training step of 100000 image(s)", "(estimated)"])
        try assertFails(["train", "--repeated-aug", "64", "--batch-size", "100000000", "--output-dir", tmp.appendingPathComponent("run").path],
                        mentioning: ["vim-digits: a training step of 100000000 image(s)", "(estimated)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("run").path))
        try assertFails(["forward", "--config", fixture("vim-micro.json"), "--weights", fixture("vim-micro.safetensors"), "--img-size", "65536",
                         "--input", fixture("vim-micro.io.safetensors"), "--output", tmp.appendingPathComponent("o.safetensors").path],
                        mentioning: ["a forward pass of", "(estimated)"])
        // Past the largest image size a model takes: refused by the model's own bounds.
        try assertFails(["bench", "--img-size", "100000", "--patch-size", "16"], mentioning: ["img_size is 100000", "1...65536"])
    }

    /// Every floating-point flag refuses NaN and both infinities as a usage error naming the flag
    /// (its checks are written so that NaN fails them). The list is every Double or Float option
    /// of the commands, with the commands that take it.
    func testEveryFloatFlagRefusesNaNAndInfinity() throws {
        let recipe = ["--lr", "--min-lr", "--warmup-lr", "--weight-decay", "--smoothing", "--clip-grad", "--model-ema-decay",
                      "--drop-path", "--mixup", "--cutmix", "--mixup-prob", "--mixup-switch-prob", "--reprob"]
        let dyvm = ["--token-keep-ratio", "--block-keep-ratio", "--gate-threshold"]
        let dyvmLoss = ["--token-pruning-weight", "--block-pruning-weight", "--distill-weight", "--token-ratio-divisor"]
        let commands: [([String], [String])] = [
            (["train"], recipe + dyvm + dyvmLoss), (["study", "fusion"], recipe),
            (["bench"], dyvm + ["--gate-rate"]), (["flops"], dyvm + ["--gate-rate"]),
        ]
        for (command, flags) in commands {
            for flag in flags {
                for value in ["nan", "inf", "-inf"] {
                    try assertUsageError(command + ["\(flag)=\(value)"], mentioning: "\(flag) must be")
                }
            }
        }
    }

    /// A thread count above eight per core is refused, naming the allowed range, instead of being clamped.
    func testThreadsAboveTheMaximum() throws {
        let maximum = 8 * ProcessInfo.processInfo.activeProcessorCount
        try assertUsageError(["bench", "--threads", "\(maximum + 1)"], mentioning: "--threads must be in 1...\(maximum)")
        try assertUsageError(["train", "--threads", "0"], mentioning: "--threads must be in 1...\(maximum)")
        let r = try run(["bench", "--model", "vim-tiny", "--img-size", "32", "--patch-size", "16", "--batch", "1", "--warmup", "0",
                         "--iterations", "1", "--json", "--threads", "\(maximum)"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("\"threads\":\(maximum)"), r.out)
    }

    /// A model description with a value the model cannot be built with: one line naming the field.
    func testConfigWithAZeroPatchSize() throws {
        let config = tmp.appendingPathComponent("zero.json").path
        try #"{"name": "zero", "img_size": 8, "patch_size": 0, "embed_dim": 16, "depth": 1, "num_classes": 2}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        try assertFails(["flops", "--model", config], mentioning: ["zero", "patch_size", "0"])
    }
}
