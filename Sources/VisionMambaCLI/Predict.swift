import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMamba
import VisionMambaModels
import VisionMambaData
import VisionMambaTraining

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images (JPEG/PNG files, or folders of them) and print or write each one's top classes.",
        discussion: """
        Images go through the model's own eval transform: the one a training checkpoint of this package stores, \
        else the official ImageNet one. Classes are named by the checkpoint's dataset, by --labels, or, for the \
        released ImageNet models, by the bundled ImageNet-1k names.
        """)

    @Argument(help: "Images, or folders searched at any depth for .jpg, .jpeg and .png files.") var images: [String]
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Class names, one per line (line i names class i); default: the checkpoint's, or ImageNet's for 1,000 classes.")
    var labels: String?
    @Option(help: "How many classes to report per image.") var top: Int = 5
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.") var batchSize: Int = 16
    @Option(help: "Write the predictions to this file instead of printing them: .csv (one row per image) or .jsonl (one JSON object per line).")
    var output: String?
    @Flag(help: "Let --output replace an existing file.") var overwrite = false
    @Option(help: "Segmentation models: also write the colour mask blended over the image to this PNG (one image), or into this folder (several).")
    var overlay: String?
    @Flag(help: "Print one JSON line per image (without --output).") var json = false
    @OptionGroup var threadOptions: ThreadOptions

    enum OutputFormat { case csv, jsonl }

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image or folder") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if output != nil && json { throw ValidationError("--json prints to the terminal; --output chooses its format by extension") }
    }

    func run() throws {
        let stored = try SegmentationTrainer.storedState(modelOptions.weights)
        if stored != nil || modelOptions.model.map(ModelZoo.isSegmentation) == true { return try runSegmentation(stored: stored) }
        if overlay != nil { throw ValidationError("--overlay draws segmentation masks; \(modelOptions.weights) holds a classifier") }
        // Everything that can be refused is refused before the model runs.
        let format = try output.map(Self.format)
        if let output, !overwrite, FileManager.default.fileExists(atPath: output) {
            throw ValidationError("\(output) exists; choose another --output or pass --overwrite")
        }
        threadOptions.apply()
        let description = try modelOptions.describe()
        let files = try ImageFiles.expand(images)
        let classes = description.config.numClasses
        let names = try labels.map(readLabels) ?? description.classNames ?? (0..<classes).map { "class \($0)" }
        if names.count != classes {
            throw FileError.countMismatch(path: labels ?? modelOptions.weights, what: "class names (one per class)", expected: classes, found: names.count)
        }
        let batch = min(batchSize, files.count)
        let model = try modelOptions.makeModel(description, batch: batch)
        var lines: [String] = []
        if format == .csv {
            lines.append((["image"] + (1...min(top, classes)).flatMap { ["class_\($0)", "label_\($0)", "probability_\($0)"] })
                .joined(separator: ","))
        }
        for start in stride(from: 0, to: files.count, by: batch) {
            let paths = Array(files[start..<min(start + batch, files.count)])
            let logits = try model(try loadImageBatch(paths, transform: description.transform)).array
            for (row, path) in paths.enumerated() {
                let probs = ImageClassifier.softmax(logits[(row * classes)..<((row + 1) * classes)])
                let best = probs.indices.sorted { probs[$0] > probs[$1] }.prefix(top)
                switch format {
                case .csv:
                    lines.append(([csvField(path)] + best.flatMap { ["\($0)", csvField(names[$0]), String(format: "%.6f", probs[$0])] })
                        .joined(separator: ","))
                case .jsonl: lines.append(jsonLine(path, best, probs, names))
                case nil:
                    if json { print(jsonLine(path, best, probs, names)); continue }
                    print(path)
                    for i in best { print(String(format: "  %6.2f%%  %5d  ", 100 * probs[i], i) + names[i]) }
                }
            }
        }
        if let output {
            try writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: output)
            print("\(files.count) image\(files.count == 1 ? "" : "s") → \(output)")
        }
    }

    /// Segmentation: each image's label map drawn in the ADE20K palette as a PNG (`--output`),
    /// and optionally blended over the image (`--overlay`); without --output, the classes found
    /// and their share of the pixels are printed.
    func runSegmentation(stored: SegmentationTrainingState?) throws {
        threadOptions.apply()
        let files = try ImageFiles.expand(images)
        func destination(_ path: String?, for image: String) -> String? {
            guard let path else { return nil }
            if files.count == 1 && path.lowercased().hasSuffix(".png") { return path }
            let stem = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
            return (path as NSString).appendingPathComponent(stem + ".png")
        }
        for path in [output, overlay].compactMap({ $0 }) where files.count > 1 || !path.lowercased().hasSuffix(".png") {
            if files.count == 1 { throw FileError.unsupportedExtension(path: path, supported: [".png"]) }
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        for image in files {
            for out in [destination(output, for: image), destination(overlay, for: image)].compactMap({ $0 })
                where !overwrite && FileManager.default.fileExists(atPath: out) {
                throw ValidationError("\(out) exists; choose another --output/--overlay or pass --overwrite")
            }
        }
        var config = try stored?.options.model ?? ModelZoo.segmentationEntry(named: modelOptions.model!).config
        if let modelName = modelOptions.model, stored != nil, try ModelZoo.segmentationEntry(named: modelName).name != config.name {
            throw ValidationError("--model \(modelName): \(modelOptions.weights) holds \(config.name)")
        }
        config.dropPathRate = 0
        let model = try Segmentor(config: config)
        try model.load(stateDict: try VimModel.modelTensors(modelOptions.weights), strict: !modelOptions.nonStrict, source: modelOptions.weights)
        let names: [String]
        if let stored { names = stored.classNames } else if config.numClasses == 150 { names = try SegmentationPalette.ade20k().names }
        else { names = (0..<config.numClasses).map { "class \($0)" } }
        let palette = try SegmentationPalette.standard(classes: config.numClasses)
        let transform = stored?.options.transform ?? SegmentationTransform.ade20k(crop: config.backbone.imgSize)
        // Images of any size: always by sliding window (a run on same-size scenes stores none).
        let stride = stored?.options.slideStride ?? config.backbone.imgSize * 2 / 3
        for path in files {
            let picture = try ImageDecoder.decode(path)
            let labels = try segmentImage(picture, model: model, transform: transform, stride: stride)
            let mask = palette.draw(labels: labels.map { UInt8(clamping: $0) }, width: picture.width, height: picture.height)
            if let out = destination(output, for: path) { try writeAtomically(PNGEncoder.rgb(mask), to: out) }
            if let out = destination(overlay, for: path) { try writeAtomically(PNGEncoder.rgb(palette.overlay(mask, on: picture)), to: out) }
            var counts = [Int](repeating: 0, count: config.numClasses)
            for l in labels { counts[l] += 1 }
            let shares = counts.enumerated().filter { $0.element > 0 }.sorted { $0.element > $1.element }.prefix(top)
            print(path + ": " + shares.map { String(format: "%@ %.1f%%", names[$0.offset], 100 * Double($0.element) / Double(labels.count)) }
                .joined(separator: ", "))
        }
        if let output { print("\(files.count) mask\(files.count == 1 ? "" : "s") → \(output)" + (overlay.map { ", overlays → \($0)" } ?? "")) }
    }

    static func format(_ path: String) throws -> OutputFormat {
        switch (path as NSString).pathExtension.lowercased() {
        case "csv": return .csv
        case "jsonl": return .jsonl
        default: throw FileError.unsupportedExtension(path: path, supported: [".csv", ".jsonl"])
        }
    }

    private func jsonLine(_ path: String, _ best: ArraySlice<Int>, _ probs: [Float], _ names: [String]) -> String {
        let items = best.map { "{\"class\":\($0),\"label\":\(jsonString(names[$0])),\"probability\":\(String(format: "%.6f", probs[$0]))}" }
        return "{\"image\":\(jsonString(path)),\"top\":[\(items.joined(separator: ","))]}"
    }

    private func readLabels(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw FileError.unreadable(path: path, reason: "not a UTF-8 text file") }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
            .reversed().drop(while: { $0.isEmpty }).reversed()
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
        }
    }
    return out + "\""
}
