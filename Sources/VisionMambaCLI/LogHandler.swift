import Foundation
import Logging

/// The command line's log handler: one line per record on stderr, `level label: message
/// key=value…`. VISION_MAMBA_LOG_LEVEL (trace, debug, info, notice, warning, error, critical)
/// chooses what shows; the default, warning, keeps a run's output to its progress lines.
struct CommandLineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let text = (["\(event.level) \(label): \(event.message)"] + fields).joined(separator: " ")
        FileHandle.standardError.write(Data((text.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
    }

    /// Installs the handler for the whole process; called once, first thing.
    static func install() {
        let level = ProcessInfo.processInfo.environment["VISION_MAMBA_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .warning
        LoggingSystem.bootstrap { CommandLineLogHandler(label: $0, logLevel: level) }
    }
}
