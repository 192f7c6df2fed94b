import Foundation
import XCTest
@testable import MambaTensor

/// The row softmax and multi-head attention ops (DeiT's): backward against finite differences,
/// forward against the textbook formula, the same bits on any number of threads, bad shapes refused.
extension OpGradientTests {
    /// Odd shapes (T = 7, head width 5, rows of 7 run the softmax's SIMD tail) and a strided qkv
    /// (columns 2..<47 of a wider tensor): the two unused columns of each row get nothing.
    func testAttention() throws {
        let (B, T, H, d) = (2, 7, 3, 5), W = 3 * H * d
        let (g, _) = try checkGradients("attention", [Input(name: "qkv", values: random(B * T * (W + 4)))]) { v, tape in
            let wide = try Tensor(shape: [B, T, W + 4], values: v[0])
            return ([wide], [try attention(wide.columns(2..<(2 + W)), heads: H, scale: 0.45, tape: tape)])
        }
        for r in 0..<(B * T) { XCTAssertEqual(Array(g[0][(r * (W + 4))..<(r * (W + 4) + 2)]), [0, 0]) }
        XCTAssertThrowsError(try attention(try Tensor(zeros: [1, 4, 10]), heads: 3, scale: 1, tape: nil)) { error in
            XCTAssertTrue("\(error)".contains("10"), "\(error)")
        }
        XCTAssertThrowsError(try attention(try Tensor(zeros: [4, 9]), heads: 3, scale: 1, tape: nil))
        XCTAssertThrowsError(try attention(try Tensor(zeros: [1, 4, 9]), heads: 0, scale: 1, tape: nil))
    }

    func testSoftmax() throws {
        let values = random(3 * 11, scale: 2)
        try checkGradients("softmax", [Input(name: "x", values: values)]) { v, tape in
            let x = try Tensor(shape: [3, 11], values: v[0])
            return ([x], [try softmax(x, tape: tape)])
        }
        let ys = try softmax(Tensor(shape: [3, 11], values: values), tape: nil).array
        for r in 0..<3 {
            let row = values[(r * 11)..<(r * 11 + 11)].map(Double.init), m = row.max()!
            let s = row.reduce(0) { $0 + exp($1 - m) }
            for c in 0..<11 { XCTAssertEqual(Double(ys[r * 11 + c]), exp(row[c] - m) / s, accuracy: 1e-6) }
        }
        let threads = Parallel.threads
        defer { EngineSettings.configure(threads: threads) }
        EngineSettings.configure(threads: 1)
        XCTAssertEqual(try softmax(Tensor(shape: [3, 11], values: values), tape: nil).array, ys)
    }
}
