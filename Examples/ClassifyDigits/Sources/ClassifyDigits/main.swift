import Foundation
import VisionMamba

// Classifies the bundled photos of handwritten digits with the bundled model (a Vim trained on
// the UCI digits by `vision-mamba train`), then compares their features.
// Usage, from this folder: swift run ClassifyDigits [MODEL [FOLDER]]
let arguments = Array(CommandLine.arguments.dropFirst())
let model = URL(fileURLWithPath: arguments.count > 0 ? arguments[0] : "Model/vim-digits.safetensors")
let folder = URL(fileURLWithPath: arguments.count > 1 ? arguments[1] : "Images")

do {
    Runtime.configure()
    let photos = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        .filter { ["png", "jpg", "jpeg"].contains($0.pathExtension.lowercased()) }
        .sorted { $0.lastPathComponent < $1.lastPathComponent }
    let images = photos.map { ImageInput.file($0) }

    let classifier = try ImageClassifier(checkpoint: model)
    for (photo, top) in zip(photos, try classifier.classify(images, top: 2)) {
        let guesses = top.map { "\($0.label) (\(String(format: "%.1f", 100 * $0.probability))%)" }
        print("\(photo.lastPathComponent): \(guesses.joined(separator: ", "))")
    }

    // The pooled features the head reads: each photo's nearest other photo by cosine similarity.
    let features = try FeatureExtractor(checkpoint: model).pooled(images)
    func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    func cosine(_ a: [Float], _ b: [Float]) -> Float { dot(a, b) / (dot(a, a) * dot(b, b)).squareRoot() }
    for (i, f) in features.enumerated() {
        let nearest = features.indices.filter { $0 != i }.max { cosine(f, features[$0]) < cosine(f, features[$1]) }!
        print("\(photos[i].lastPathComponent): \(f.count) features, nearest \(photos[nearest].lastPathComponent)")
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
