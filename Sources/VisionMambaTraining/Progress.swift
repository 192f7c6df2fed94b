import Foundation

/// A progress bar on a terminal (redrawn in place on stderr); plain periodic lines otherwise.
final class ProgressReporter {
    let total: Int
    let isTerminal = isatty(STDERR_FILENO) != 0
    var epoch = 0, epochs = 0
    var lastPrint = 0.0
    let start = Date()

    /// Only the leading rank of a data-parallel run reports.
    let enabled: Bool

    init(total: Int, enabled: Bool = true) {
        self.total = total
        self.enabled = enabled
    }

    func begin(epoch: Int, epochs: Int) {
        self.epoch = epoch
        self.epochs = epochs
        epochStart = Date().timeIntervalSince(start)
        lastPrint = epochStart
    }

    func update(step: Int, loss: Double, lr: Double, imagesPerSecond: Double) {
        guard enabled else { return }
        let now = Date().timeIntervalSince(start)
        let remaining = Double(total - step) * (now - epochStart) / Double(max(step, 1))
        let text = String(format: "epoch %d/%d %@ %d/%d loss %.4f lr %.3g %.1f img/s eta %@",
                          epoch + 1, epochs, bar(step), step, total, loss, lr, imagesPerSecond, duration(remaining))
        if isTerminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K" + text))
        } else if now - lastPrint >= 10 || step == total {
            FileHandle.standardError.write(Data((text + "\n").utf8))
            lastPrint = now
        }
    }

    private var epochStart: Double = 0

    func end(_ m: EpochMetrics) {
        guard enabled else { return }
        if isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(String(format: "epoch %d/%d  train loss %.4f  val loss %.4f  top-1 %.2f%%  top-5 %.2f%%  lr %.3g  %.1f img/s  %.1f s",
                     m.epoch + 1, epochs, m.trainLoss, m.valLoss, m.top1, m.top5, m.lr, m.imagesPerSecond, m.epochSeconds)
              + (m.directionRate.map { String(format: "  directions on %.1f%%", 100 * $0) } ?? ""))
        fflush(stdout)
    }

    private func bar(_ step: Int) -> String {
        let width = 20, filled = total > 0 ? width * step / total : width
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    private func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}

extension Data {
    init(_ s: String) { self.init(s.utf8) }
}
