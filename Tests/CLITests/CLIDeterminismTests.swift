import Foundation
import XCTest

/// `--threads` changes the speed, never the numbers: `forward` and `gradients` write
/// byte-identical files on 1, 2 and 4 threads for the fixture cases.
final class CLIDeterminismTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("vm-cli-det-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// Runs `command` on a fixture case with `--threads threads`; returns the output file's bytes.
    func output(_ command: String, case name: String, threads: Int) throws -> Data {
        let fixture = { (suffix: String) in CLITests.fixtures.appendingPathComponent(name + suffix).path }
        let out = tmp.appendingPathComponent("\(name).\(command).\(threads).safetensors")
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = [command, "--config", fixture(".json"), "--weights", fixture(".pth"), "--input", fixture(".io.safetensors"),
                       "--output", out.path, "--threads", String(threads)]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(command) \(name) --threads \(threads): \(String(decoding: message, as: UTF8.self))")
        return try Data(contentsOf: out)
    }

    func assertSameBytes(_ command: String, cases: [String]) throws {
        for name in cases {
            let one = try output(command, case: name, threads: 1)
            XCTAssertGreaterThan(one.count, 0)
            for threads in [2, 4] {
                XCTAssertTrue(try output(command, case: name, threads: threads) == one,
                              "\(command) \(name): --threads \(threads) wrote different bytes from --threads 1")
            }
        }
    }

    /// Plain Vim (both patch layouts) and a DyVM training case: loss and every parameter gradient.
    func testGradientsAreTheSameBytesOnAnyThreadCount() throws {
        try assertSameBytes("gradients", cases: ["vim-micro", "vim-micro-overlap", "dyvm-micro-train"])
    }

    /// Logits and block outputs, with Famba-V token fusion and DyVM pruning among the cases.
    func testForwardIsTheSameBytesOnAnyThreadCount() throws {
        try assertSameBytes("forward", cases: ["vim-micro", "vim-micro-overlap", "famba-micro-all", "dyvm-micro"])
    }
}
