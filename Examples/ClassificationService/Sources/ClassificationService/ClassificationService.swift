import ArgumentParser
import ClassificationServiceApp
import Foundation
import VisionMamba

@main
struct ClassificationService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classifies images sent to POST /classify with one shared VisionMamba classifier.")

    @Option(help: ArgumentHelp(
        "A classifier checkpoint of VisionMamba's training (.safetensors).",
        discussion: "Default: $CLASSIFICATION_SERVICE_MODEL, else the ClassifyDigits example's model."))
    var model: String?

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port = 8080

    @Option(help: "Threads the model's kernels use (default: one per core).")
    var threads: Int?

    // A small PNG can hold a huge blank image: the limit refuses it from its header.
    @Option(name: .customLong("max-pixels"), help: "The largest image accepted, in pixels (default 4096 × 4096).")
    var maxPixels = 4096 * 4096

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() async throws {
        // Process-wide engine settings, once, before the first model runs.
        Runtime.configure(threads: threads ?? Runtime.defaultThreads)
        let url = modelURL
        let classifier = try ImageClassifier(checkpoint: url, options: InferenceOptions(maxImagePixels: maxPixels))
        // Written straight to stdout, not through print's buffer, so that it shows at once when
        // stdout is a pipe or a file (a service manager's log).
        FileHandle.standardOutput.write(Data(
            "Loaded \(classifier.modelName) (\(classifier.classNames.count) classes) from \(url.path); serving on http://\(host):\(port)\n".utf8))
        let app = buildApplication(classifier: classifier, configuration: ServiceConfiguration(host: host, port: port))
        // Runs until SIGINT or SIGTERM, then finishes the requests in flight.
        try await app.runService()
    }

    /// `--model`, else the environment, else the model beside this example in the repository:
    /// found from this file's path so that `swift run` works from any directory.
    private var modelURL: URL {
        if let path = model ?? ProcessInfo.processInfo.environment["CLASSIFICATION_SERVICE_MODEL"], !path.isEmpty {
            return URL(fileURLWithPath: path).standardizedFileURL
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()   // Sources/ClassificationService
            .deletingLastPathComponent()   // Sources
            .deletingLastPathComponent()   // the package
            .appendingPathComponent("../ClassifyDigits/Model/vim-digits.safetensors")
            .standardizedFileURL
    }
}
