import Foundation

/// A line chart as SVG text: the learning curve and the fusion study draw with it. Both axes
/// have titles, an integer x axis (epochs) gets whole-number ticks, and every point carries a
/// marker, so a run of one epoch still shows its values.
struct LinePlot {
    struct Axis {
        var title: String
        var max: Double
        var integer = false
        /// Tick label for a value (the default prints it as %g).
        var label: (Double) -> String = { String(format: "%g", $0) }
    }

    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
        /// Drawn against the right axis, when there is one.
        var right = false
    }

    var x: Axis
    var y: Axis
    var rightY: Axis?
    var series: [Series]

    private let width = 640.0, height = 400.0, left = 70.0, top = 40.0, bottom = 50.0
    private var right: Double { rightY == nil ? 30 : 70 }

    func svg() -> String {
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ v: Double) -> Double { left + plotW * v / max(x.max, 1e-12) }
        func py(_ v: Double, _ axis: Axis) -> Double { top + plotH * (1 - v / max(axis.max, 1e-12)) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#888\"/>\n"
        for v in ticks(x) {
            s += "<text x=\"\(f(px(v)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(x.label(v))</text>\n"
        }
        for v in ticks(y) {
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v, y) + 4))\" text-anchor=\"end\">\(y.label(v))</text>\n"
        }
        if let rightY {
            for v in ticks(rightY) {
                s += "<text x=\"\(f(left + plotW + 6))\" y=\"\(f(py(v, rightY) + 4))\">\(rightY.label(v))</text>\n"
            }
        }
        // Axis titles: x below, y turned along the left edge, the right axis along the right.
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(escaped(x.title))</text>\n"
        s += "<text transform=\"translate(16 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escaped(y.title))</text>\n"
        if let rightY {
            s += "<text transform=\"translate(\(f(width - 12)) \(f(top + plotH / 2))) rotate(90)\" text-anchor=\"middle\">\(escaped(rightY.title))</text>\n"
        }
        var legendX = left
        for line in series {
            let axis = line.right ? (rightY ?? y) : y
            let points = line.points.filter { $0.x.isFinite && $0.y.isFinite }.map { (px($0.x), py($0.y, axis)) }
            if points.count > 1 {
                s += "<polyline points=\"\(points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"/>\n"
            }
            for (cx, cy) in points { s += "<circle cx=\"\(f(cx))\" cy=\"\(f(cy))\" r=\"3\" fill=\"\(line.color)\"/>\n" }
            s += "<text x=\"\(f(legendX))\" y=\"\(f(top - 12))\" fill=\"\(line.color)\">\(escaped(line.name))</text>\n"
            legendX += 14 + 7 * Double(line.name.count)
        }
        return s + "</svg>\n"
    }

    /// Five evenly spaced ticks from 0 to the axis maximum, or for an integer axis whole
    /// numbers at a step that gives at most about ten.
    func ticks(_ axis: Axis) -> [Double] {
        guard axis.integer else { return (0...4).map { axis.max * Double($0) / 4 } }
        let top = Int(axis.max.rounded(.down))
        let step = max(1, (top + 9) / 10)
        return stride(from: 0, through: top, by: step).map(Double.init)
    }

    private func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
