import ArgumentParser
import Foundation
import MambaIO
import MambaTensor
import VisionMamba

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images (JPEG/PNG) with the official eval transform; print the top-5 classes.")

    @Argument(help: "Images to classify.") var images: [String]
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Class names, one per line (line i names class i).") var labels: String?
    @Option(help: "How many classes to print per image.") var top: Int = 5
    @Flag(help: "One JSON line per image.") var json = false
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        threadOptions.apply()
        let model = try modelOptions.makeModel(batch: 1)   // one image at a time
        let names = try labels.map(readLabels) ?? []
        if !names.isEmpty && names.count != model.config.numClasses {
            throw FileError.countMismatch(path: labels!, what: "labels (one per class)", expected: model.config.numClasses, found: names.count)
        }
        for path in images {
            let logits = try model(try loadImageBatch([path], imgSize: model.config.imgSize))
            let probs = softmax(logits.array)
            let best = probs.indices.sorted { probs[$0] > probs[$1] }.prefix(top)
            func label(_ i: Int) -> String { names.isEmpty ? "class \(i)" : names[i] }
            if json {
                let items = best.map { "{\"class\":\($0),\"label\":\(jsonString(label($0))),\"probability\":\(String(format: "%.6f", probs[$0]))}" }
                print("{\"image\":\(jsonString(path)),\"top\":[\(items.joined(separator: ","))]}")
            } else {
                print(path)
                for i in best { print(String(format: "  %6.2f%%  %5d  ", 100 * probs[i], i) + label(i)) }
            }
        }
    }

    private func readLabels(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw FileError.unreadable(path: path, reason: "not a UTF-8 text file") }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
            .reversed().drop(while: { $0.isEmpty }).reversed()
    }
}

func softmax(_ x: [Float]) -> [Float] {
    let m = x.max() ?? 0
    let e = x.map { Foundation.exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
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
