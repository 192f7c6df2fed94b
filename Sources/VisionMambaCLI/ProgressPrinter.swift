import Foundation
import VisionMambaTraining

/// Training events: notes and epoch summaries on stdout; progress as a bar redrawn in place on
/// stderr when both are a terminal, else (a log file, a pipe) as a plain line on stdout every
/// `logInterval` steps (default: about ten per epoch) and at the end of each epoch.
final class ProgressPrinter {
    private let isTerminal = isatty(STDOUT_FILENO) != 0 && isatty(STDERR_FILENO) != 0
    private let logInterval: Int?
    private let start = Date()
    private var epochStart = 0.0

    init(logInterval: Int? = nil) { self.logInterval = logInterval }

    func handle(_ event: TrainingEvent) {
        switch event {
        case .note(let text):
            print(text)
            fflush(stdout)
        case let .skippedImages(path, count):
            print(Self.skippedLine(path: path, count: count))
            fflush(stdout)
        case .epochStarted:
            epochStart = Date().timeIntervalSince(start)
        case let .step(epoch, epochs, step, steps, loss, lr, imagesPerSecond):
            let now = Date().timeIntervalSince(start)
            let remaining = Double(steps - step) * (now - epochStart) / Double(max(step, 1))
            let text = String(format: "loss %.4f lr %.3g %.1f img/s eta %@", loss, lr, imagesPerSecond, duration(remaining))
            progress(terminal: "epoch \(epoch + 1)/\(epochs) \(bar(step, of: steps)) \(step)/\(steps) " + text,
                     plain: "epoch \(epoch + 1)/\(epochs) step \(step)/\(steps) " + text,
                     due: step % (logInterval ?? max(1, steps / 10)) == 0 || step == steps)
        case let .epochEnded(m, epochs):
            if isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            print(String(format: "epoch %d/%d  train loss %.4f  val loss %.4f  top-1 %.2f%%  top-5 %.2f%%  lr %.3g  %.1f img/s  %.1f s",
                         m.epoch + 1, epochs, m.trainLoss, m.valLoss, m.top1, m.top5, m.lr, m.imagesPerSecond, m.epochSeconds)
                  + (m.directionRate.map { String(format: "  directions on %.1f%%", 100 * $0) } ?? ""))
            fflush(stdout)
        case let .iteration(iteration, iterations, loss, lr, imagesPerSecond):
            let now = Date().timeIntervalSince(start)
            let remaining = Double(iterations - iteration) * now / Double(max(iteration, 1))
            let text = String(format: "loss %.4f lr %.3g %.1f img/s eta %@", loss, lr, imagesPerSecond, duration(remaining))
            progress(terminal: "\(bar(iteration, of: iterations)) iteration \(iteration)/\(iterations) " + text,
                     plain: "iteration \(iteration)/\(iterations) " + text,
                     due: iteration % (logInterval ?? max(1, iterations / 20)) == 0 || iteration == iterations)
        case let .evaluated(m):
            if isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            print(String(format: "iteration %d  train loss %.4f  mIoU %.2f%%  aAcc %.2f%%  mAcc %.2f%%  lr %.3g  %.1f img/s",
                         m.iteration, m.trainLoss, m.valMIoU, m.valAAcc, m.valMAcc, m.lr, m.imagesPerSecond))
            fflush(stdout)
        case .checkpointSaved:
            break   // the closing lines name the checkpoints
        }
    }

    /// The one line that reports image files a dataset left out.
    static func skippedLine(path: String, count: Int) -> String {
        "skipped \(count) unreadable image file\(count == 1 ? "" : "s") in \(path)"
    }

    /// A progress update: redrawn in place on a terminal, else a plain line when one is due.
    private func progress(terminal: String, plain: String, due: Bool) {
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + terminal).utf8))
        } else if due {
            print(plain)
            fflush(stdout)
        }
    }

    private func bar(_ step: Int, of total: Int) -> String {
        let width = 20, filled = total > 0 ? width * step / total : width
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    private func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}
