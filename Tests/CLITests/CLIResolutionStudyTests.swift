import Foundation
import XCTest

/// `study resolution` and the DeiT paths of `models`, `flops`, `bench` and `forward`.
extension CLITests {
    /// The table's rows for every size and model with finite, positive numbers, the chart, and
    /// the refusal to replace them without --overwrite. No timing is asserted.
    func testStudyResolutionWritesTableAndChart() throws {
        let dir = tmp.appendingPathComponent("study").path
        let args = ["study", "resolution", "--sizes", "64,100", "--repeats", "1", "--batch", "3", "--threads", "2", "--output-dir", dir]
        let r = try run(args)
        XCTAssertEqual(r.code, 0, r.err)
        let md = try String(contentsOfFile: dir + "/resolution-study.md", encoding: .utf8)
        let svg = try String(contentsOfFile: dir + "/resolution-study.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("DeiT-T ms/image") && svg.contains("Vim-T peak MiB"))
        // | size | run at | model | tokens | ms | images/s | peak MiB | MiB per image | largest batch | MiB at 64 |
        let rows = md.split(separator: "\n").map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
            .filter { $0.count == 10 && Int($0[0]) != nil }
        XCTAssertEqual(rows.map { "\($0[0]) \($0[1]) \($0[2]) \($0[3])" },
                       ["64 64 Vim-T 16", "64 64 DeiT-T 17", "100 96 Vim-T 36", "100 96 DeiT-T 37"])
        for row in rows {
            for cell in row[4...7] + [row[9]] {
                let v = try XCTUnwrap(Double(cell), "\(row)")
                XCTAssertTrue(v.isFinite && v > 0, "\(row)")
            }
            XCTAssertGreaterThan(try XCTUnwrap(Int(row[8]), "\(row)"), 0)
        }
        // The measured batch-3 pass: | size | model | ms / image | images/s | peak MiB |, finite and positive,
        // its peak above batch 1's.
        XCTAssertTrue(md.contains("Measured at batch 3"), md)
        let measured = md.split(separator: "\n").map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
            .filter { $0.count == 5 && Int($0[0]) != nil }
        XCTAssertEqual(measured.map { "\($0[0]) \($0[1])" }, ["64 Vim-T", "64 DeiT-T", "100 Vim-T", "100 DeiT-T"])
        for (row, one) in zip(measured, rows) {
            XCTAssertTrue(try row[2...4].allSatisfy { try XCTUnwrap(Double($0)) > 0 }, "\(row)")
            XCTAssertGreaterThan(try XCTUnwrap(Double(row[4])), try XCTUnwrap(Double(one[6])), "\(row)")
        }
        XCTAssertTrue(md.contains("memory Vim-T saves, batch 3 (measured)"), md)
        XCTAssertEqual(try run(["study", "resolution", "--batch", "1"]).code, 64)
        // The comparison rows: speed ratio and memory saved, per size.
        XCTAssertTrue(md.contains("| 64 | ") && md.contains("× |"), md)
        XCTAssertTrue(md.contains("100 px runs") || md.contains("multiple of 32 below"), md)
        // Another run's files are kept unless --overwrite.
        try assertFails(args, mentioning: ["resolution-study.md", "already exists"])
        XCTAssertEqual(try run(args + ["--overwrite", "--models", "deit-tiny"]).code, 0)
        XCTAssertFalse(try String(contentsOfFile: dir + "/resolution-study.md", encoding: .utf8).contains("Vim-T |"))
        try assertUsageError(["study", "resolution", "--sizes", "64,x"], mentioning: "--sizes")
    }

    func testDeiTInModelsFlopsBenchAndForward() throws {
        let models = try run(["models"])
        XCTAssertEqual(models.code, 0)
        XCTAssertTrue(models.out.contains("deit_tiny_patch16_224") && models.out.contains("deit-tiny") && models.out.contains("5717416"), models.out)
        XCTAssertTrue(models.out.contains("upernet-deit-tiny"))
        // timm's deit_tiny_patch16_224: 5,717,416 parameters, about 1.26 G multiply-adds.
        let flops = try run(["flops", "--model", "deit_tiny_patch16_224", "--json"])
        XCTAssertEqual(flops.code, 0, flops.err)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(flops.out.utf8)) as? [String: Any])
        XCTAssertEqual(json["tokens"] as? Int, 197)
        XCTAssertEqual(json["parameters"] as? Int, 5_717_416)
        XCTAssertEqual(try XCTUnwrap(json["gflop"] as? Double), 2.51, accuracy: 0.02)
        for model in ["deit-tiny", "upernet-deit-tiny"] {
            let bench = try run(["bench", "--model", model, "--img-size", "64", "--batch", "2", "--iterations", "1", "--json"])
            XCTAssertEqual(bench.code, 0, bench.err)
            let b = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bench.out.utf8)) as? [String: Any])
            XCTAssertEqual(b["tokens"] as? Int, 17)
            XCTAssertGreaterThan(try XCTUnwrap(b["images_per_second"] as? Double), 0)
        }
        // A size whose attention cannot fit this machine is refused with the estimate, before allocating.
        try assertFails(["bench", "--model", "deit-tiny", "--img-size", "16384", "--batch", "1"], mentioning: ["needs about", "more than"])
        try assertFails(["bench", "--model", "deit-tiny", "--img-size", "100"], mentioning: ["img_size is 100", "multiple of patch_size (16)"])
        // Weights of another shape: one line naming the tensor and both shapes.
        try assertFails(["forward", "--model", "deit-tiny", "--weights", fixture("deit/deit-micro.safetensors"),
                         "--input", fixture("deit/deit-micro.io.safetensors"),
                         "--output", tmp.appendingPathComponent("out.safetensors").path],
                        mentioning: ["pos_embed", "[1, 197, 192]", "[1, 17, 48]"])
    }
}
