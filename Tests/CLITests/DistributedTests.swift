import Foundation
import XCTest

/// `mpirun -np 2 vision-mamba-mpi train` on loopback: equal to one process with the doubled batch,
/// quiet ranks, and a killed rank stopping the job with a resumable checkpoint left behind.
final class DistributedTests: XCTestCase {
    static let mpirun = "/usr/bin/mpirun"
    /// The data-parallel build of the command line, beside the single-process one.
    static let mpiBinary = CLITests.binary.deletingLastPathComponent().appendingPathComponent("vision-mamba-mpi")
    var tmp: URL!
    var config: String!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.mpirun) else {
            throw XCTSkip("mpirun not found; install openmpi-bin")
        }
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        config = tmp.appendingPathComponent("small.json").path
        try #"{"name": "small", "img_size": 8, "patch_size": 2, "stride": 2, "embed_dim": 32, "depth": 2, "num_classes": 10}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { if let tmp { try? FileManager.default.removeItem(at: tmp) } }

    func process(_ executable: String, _ args: [String]) -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        // Containers run tests as root; Open MPI wants both variables to allow it.
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        return (p, out, err)
    }

    @discardableResult
    func run(_ executable: String, _ args: [String]) throws -> (code: Int32, out: String, err: String) {
        let (p, out, err) = process(executable, args)
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func train(_ dir: String, batch: Int, epochs: Int) -> [String] {
        ["train", "--model", config, "--epochs", "\(epochs)", "--batch-size", "\(batch)", "--lr", "4e-2",
         "--warmup-epochs", "1", "--threads", "1", "--output-dir", dir]
    }

    func metrics(_ dir: String) throws -> [[String: Double]] {
        try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return ["train_loss", "val_loss", "top1", "top5", "lr"].reduce(into: [:]) { $0[$1] = (o[$1] as! NSNumber).doubleValue }
        }
    }

    /// Two ranks with batch 32 take the same steps, to float32 rounding, as one process with 64.
    func testTwoRanksEqualOneProcessWithTheDoubledBatch() throws {
        let one = tmp.appendingPathComponent("one").path, two = tmp.appendingPathComponent("two").path
        let a = try run(CLITests.binary.path, train(one, batch: 64, epochs: 3))
        XCTAssertEqual(a.code, 0, a.err)
        let b = try run(Self.mpirun, ["--oversubscribe", "-np", "2", Self.mpiBinary.path] + train(two, batch: 32, epochs: 3))
        XCTAssertEqual(b.code, 0, b.err)
        // Only rank 0 speaks.
        XCTAssertEqual(b.out.components(separatedBy: "done: top-1").count - 1, 1, b.out)
        XCTAssertTrue(b.out.contains("2 processes"), b.out)
        let m1 = try metrics(one), m2 = try metrics(two)
        XCTAssertEqual(m1.count, 3)
        XCTAssertEqual(m2.count, 3)
        for (x, y) in zip(m1, m2) {
            for key in ["train_loss", "val_loss"] { XCTAssertEqual(x[key]!, y[key]!, accuracy: 1e-4 * abs(x[key]!), key) }
            XCTAssertEqual(x["lr"], y["lr"])
            XCTAssertEqual(x["top1"]!, y["top1"]!, accuracy: 0.6)   // at most two of 360 images may flip
        }
    }

    /// Segmentation: two ranks with batch 2 take the same steps as one process with 4: the same
    /// crops, drop-path and dropout draws per image, BatchNorm statistics synchronised over the
    /// ranks, gradients averaged, and the evaluation split between them.
    func testSegmentationTwoRanksEqualOneProcessWithTheDoubledBatch() throws {
        func segmentation(_ dir: String, batch: Int) -> [String] {
            ["train", "--model", "upernet-vim-digits", "--iterations", "4", "--batch-size", "\(batch)", "--lr", "1e-3",
             "--warmup-iters", "1", "--eval-interval", "2", "--eval-images", "6", "--threads", "1", "--output-dir", dir]
        }
        let one = tmp.appendingPathComponent("one").path, two = tmp.appendingPathComponent("two").path
        let a = try run(CLITests.binary.path, segmentation(one, batch: 4))
        XCTAssertEqual(a.code, 0, a.err)
        let b = try run(Self.mpirun, ["--oversubscribe", "-np", "2", Self.mpiBinary.path] + segmentation(two, batch: 2))
        XCTAssertEqual(b.code, 0, b.err)
        XCTAssertTrue(b.out.contains("2 processes"), b.out)
        func rows(_ dir: String) throws -> [[String: Double]] {
            try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                return try ["train_loss", "val_miou", "val_aacc", "val_macc", "lr"].reduce(into: [:]) { $0[$1] = try XCTUnwrap(o[$1] as? NSNumber, $1).doubleValue }
            }
        }
        let m1 = try rows(one), m2 = try rows(two)
        XCTAssertEqual(m1.count, 2)
        XCTAssertEqual(m2.count, 2)
        for (x, y) in zip(m1, m2) {
            XCTAssertEqual(x["train_loss"]!, y["train_loss"]!, accuracy: 1e-4 * abs(x["train_loss"]!))
            XCTAssertEqual(x["lr"], y["lr"])
            for key in ["val_miou", "val_aacc", "val_macc"] { XCTAssertEqual(x[key]!, y[key]!, accuracy: 0.05, key) }
        }
    }

    /// A killed rank stops the whole job quickly with a message naming it; the last checkpoint
    /// is intact and the run resumes on one process.
    func testKilledRankStopsTheJobAndTheRunResumesOnFewerRanks() throws {
        let dir = tmp.appendingPathComponent("run").path
        let (job, out, err) = process(Self.mpirun, ["--oversubscribe", "-np", "2", Self.mpiBinary.path] + train(dir, batch: 32, epochs: 8))
        try job.run()
        let state = dir + "/checkpoint.json"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: state) && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: state), "no checkpoint appeared")
        // Rank 1 is the child of mpirun whose environment says so.
        let children = try run("/usr/bin/pgrep", ["-P", "\(job.processIdentifier)"]).out.split(separator: "\n").compactMap { Int32($0) }
        let rank1 = children.first { pid in
            let env = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            return String(decoding: env, as: UTF8.self).split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1")
        }
        let victim = try XCTUnwrap(rank1, "rank 1 not found among \(children)")
        let killedAt = Date()
        kill(victim, SIGKILL)
        _ = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(killedAt), 30, "the job took too long to stop")
        XCTAssertNotEqual(job.terminationStatus, 0)
        XCTAssertTrue(message.contains("rank 1"), message)

        let done = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))) as! [String: Any]
        XCTAssertLessThan(done["epochsDone"] as! Int, 8, "the run finished before it could be killed")
        let r = try run(CLITests.binary.path, ["train", "--resume", dir, "--output-dir", dir, "--threads", "2"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("resuming a run of 2 process(es) on 1"), r.out)
        XCTAssertEqual(try metrics(dir).count, 8)
    }

    /// The single-process build never links MPI; started as one of several ranks it says which
    /// build to run instead of training alone on every rank.
    func testSingleProcessBuildUnderMPIRunPointsToTheMPIBuild() throws {
        let dir = tmp.appendingPathComponent("alone").path
        let r = try run(Self.mpirun, ["--oversubscribe", "-np", "2", CLITests.binary.path] + train(dir, batch: 32, epochs: 1))
        XCTAssertNotEqual(r.code, 0)
        XCTAssertTrue(r.err.contains("run vision-mamba-mpi under mpirun"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/checkpoint.safetensors"))
        let linked = try run("/usr/bin/ldd", [CLITests.binary.path]).out
        XCTAssertFalse(linked.contains("libmpi"), linked)
    }
}
