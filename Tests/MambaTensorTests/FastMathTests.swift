import Foundation
import XCTest
@testable import MambaTensor

final class FastMathTests: XCTestCase {
    /// exp8, log8, softplus8 and silu8 against double-precision references over the ranges the
    /// scan feeds them (Δ·A down to about −100, pre-activations of ±30).
    func testVectorMathMatchesDoublePrecision() {
        var worst = (exp: 0.0, log: 0.0, softplus: 0.0, silu: 0.0)
        var x: Float = -87
        while x < 88 {
            let v = Float8((0..<8).map { x + Float($0) * 0.0137 })
            let e = exp8(v), sp = softplus8(v), si = silu8(v)
            for i in 0..<8 {
                let d = Double(v[i])
                worst.exp = max(worst.exp, abs(Double(e[i]) - exp(d)) / exp(d))
                if abs(d) < 40 {
                    let spRef = d > 20 ? d : log1p(exp(d))
                    worst.softplus = max(worst.softplus, abs(Double(sp[i]) - spRef) / max(spRef, 1e-30))
                    let siRef = d / (1 + exp(-d))
                    worst.silu = max(worst.silu, abs(Double(si[i]) - siRef) / max(abs(siRef), 1e-30))
                }
            }
            x += 0.37
        }
        var y: Float = 1e-30
        while y < 1e30 {
            let v = Float8((0..<8).map { y * (1 + Float($0) * 0.1) })
            let l = log8(v)
            for i in 0..<8 {
                let d = Double(v[i])
                worst.log = max(worst.log, abs(Double(l[i]) - log(d)) / max(abs(log(d)), 1e-3))
            }
            y *= 1.7
        }
        XCTAssertLessThan(worst.exp, 3e-7, "exp8")
        XCTAssertLessThan(worst.log, 3e-7, "log8")
        XCTAssertLessThan(worst.softplus, 5e-7, "softplus8")
        XCTAssertLessThan(worst.silu, 5e-7, "silu8")
    }

    func testSoftplusIsIdentityAboveTwenty() {
        let v = Float8(20.5, 25, 30, 100, 19.5, 0, -5, -100)
        let s = softplus8(v)
        XCTAssertEqual(s[0], 20.5); XCTAssertEqual(s[3], 100)
        XCTAssertEqual(Double(s[4]), log1p(exp(19.5)), accuracy: 1e-5)
        XCTAssertEqual(Double(s[7]), exp(-100.0), accuracy: 1e-30)
    }
}
